using System.Globalization;
using System.Text.RegularExpressions;

namespace Attune.Merging;

/// <summary>
/// λ for the tensors whose name matches <see cref="Pattern"/> (a regular expression, searched in the
/// Hugging Face name): one value, or a list spread across the layers — layer ℓ of L takes the list
/// linearly interpolated at ℓ/(L−1) (1 for a model of one layer), as mergekit's gradients do; tensors outside
/// the layers (embeddings, final norm, lm_head) take the list's first value, as mergekit evaluates them at t = 0.
/// The pattern <c>*</c> matches every tensor, as in mergekit's filters. The first matching rule wins; tensors no
/// rule matches take the run's λ.
/// </summary>
public sealed record TensorRule(string Pattern, IReadOnlyList<double> Values)
{
    readonly Regex _regex = Build(Pattern);

    static Regex Build(string pattern)
    {
        if (pattern == "*") return new Regex("", RegexOptions.CultureInvariant);
        try { return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException e) { throw new AttuneException(null, "rule", $"\"{pattern}\" is not a valid regular expression: {e.Message}"); }
    }

    public bool Matches(string tensor) => _regex.IsMatch(tensor);

    /// <summary>The λ for a tensor of layer <paramref name="layer"/> (−1: before the layers, int.MaxValue: after).</summary>
    public double ValueFor(int layer, int layers)
    {
        if (Values.Count == 1) return Values[0];
        if (layer < 0 || layer >= layers) return Values[0];
        double x = (layers == 1 ? 1 : (double)layer / (layers - 1)) * (Values.Count - 1);
        int i = Math.Min((int)Math.Floor(x), Values.Count - 2);
        return Values[i] + (x - i) * (Values[i + 1] - Values[i]);
    }

    /// <summary>The layer a tensor belongs to: its index, −1 for embeddings, int.MaxValue for the final norm and head.</summary>
    public static int LayerOf(string tensor)
    {
        const string prefix = "model.layers.";
        if (tensor.StartsWith(prefix, StringComparison.Ordinal))
        {
            int dot = tensor.IndexOf('.', prefix.Length);
            if (dot > 0 && int.TryParse(tensor.AsSpan(prefix.Length, dot - prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var l)) return l;
        }
        return tensor.Contains("embed_tokens", StringComparison.Ordinal) ? -1 : int.MaxValue;
    }

    public override string ToString() =>
        $"{Pattern}: {(Values.Count == 1 ? Values[0].ToString("R", CultureInfo.InvariantCulture) : "[" + string.Join(", ", Values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]")}";
}
