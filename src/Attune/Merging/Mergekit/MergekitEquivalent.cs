using System.Globalization;
using System.Text;
using System.Text.Json;
using Attune.Tensors;

namespace Attune.Merging.Mergekit;

/// <summary>
/// The mergekit recipe that computes what a flag (or Attune-recipe) merge computed, written beside Attune's own record as
/// mergekit writes <c>mergekit_config.yml</c>: linear as mergekit's linear with weights 1 − λ and λ, slerp with t = λ,
/// task_arithmetic and ties with their weights, density, normalize and lambda; per-tensor rules become conditions on the
/// strength. None for Attune's dare (mergekit's DARE methods differ) or for rules that are regular expressions rather than
/// plain names (mergekit's filters are substrings).
/// </summary>
public static class MergekitEquivalent
{
    public static string? Write(string basePath, IReadOnlyList<string> modelPaths, double lambda, MergeOptions o)
    {
        if (o.Method is DareMethod) return null;
        // A rule's pattern must mean the same as a substring: no regex syntax at all (a '.' matches any character in a rule).
        if (o.Rules.Any(r => r.Pattern != "*" && System.Text.RegularExpressions.Regex.Escape(r.Pattern) != r.Pattern)) return null;
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        string Q(string s) => JsonSerializer.Serialize(Path.GetFullPath(s));
        string Values(IReadOnlyList<double> v, Func<double, double> map) => v.Count == 1 ? F(map(v[0])) : "[" + string.Join(", ", v.Select(x => F(map(x)))) + "]";
        // A setting of the strength: the rules as conditions (first match wins in both), then the run's value.
        string Setting(Func<double, double> map, string indent) => o.Rules.Count == 0 ? F(map(lambda))
            : "\n" + string.Concat(o.Rules.Select(r => $"{indent}- filter: {JsonSerializer.Serialize(r.Pattern)}\n{indent}  value: {Values(r.Values, map)}\n")) + $"{indent}- value: {F(map(lambda))}";
        var weights = o.MethodParameters.TryGetValue("weights", out var w) ? w.Trim('[', ']').Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToList() : [];
        var sb = new StringBuilder("# Written by attune merge: the mergekit recipe for the same merge.\n");
        switch (o.Method)
        {
            case LinearMethod:
                sb.Append($"merge_method: linear\nmodels:\n  - model: {Q(basePath)}\n    parameters:\n      weight: {Setting(l => 1 - l, "        ")}\n");
                sb.Append($"  - model: {Q(modelPaths[0])}\n    parameters:\n      weight: {Setting(l => l, "        ")}\n");
                break;
            case SlerpMethod:
                sb.Append($"merge_method: slerp\nbase_model: {Q(basePath)}\nmodels:\n  - model: {Q(basePath)}\n  - model: {Q(modelPaths[0])}\nparameters:\n  t: {Setting(l => l, "    ")}\n");
                break;
            default:
                sb.Append($"merge_method: {o.Method.Name}\nbase_model: {Q(basePath)}\nmodels:\n");
                for (int k = 0; k < modelPaths.Count; k++)
                {
                    sb.Append($"  - model: {Q(modelPaths[k])}\n    parameters:\n      weight: {F(weights[k])}\n");
                    if (o.MethodParameters.TryGetValue("density", out var density)) sb.Append($"      density: {density}\n");
                }
                sb.Append($"parameters:\n  lambda: {Setting(l => l, "    ")}\n");
                if (o.MethodParameters.TryGetValue("normalize", out var normalize)) sb.Append($"  normalize: {normalize}\n");
                break;
        }
        sb.Append("dtype: float32\n");
        if (o.DType is { } dt) sb.Append($"out_dtype: {dt.TorchName()}\n");
        // The tokenizer the output carries (models without tokenizer files carry none to choose from).
        if (File.Exists(Path.Combine(o.TokenizerFrom == "base" ? basePath : modelPaths[0], Formats.Checkpoint.TokenizerFileName)))
            sb.Append($"tokenizer_source: {(o.TokenizerFrom == "base" ? "base" : Q(modelPaths[0]))}\n");
        return sb.ToString();
    }
}
