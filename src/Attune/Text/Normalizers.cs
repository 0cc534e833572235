using System.Text;
using System.Text.Json;

namespace Attune.Text;

/// <summary>A tokenizer.json <c>normalizer</c>: rewrites text before it is split.</summary>
public abstract class Normalizer
{
    public abstract string Normalize(string text);

    internal static Normalizer? FromJson(JsonElement e, TokenizerJson j, string field)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        var type = j.Type(e, field);
        return type switch
        {
            "NFC" => new UnicodeNormalizer(NormalizationForm.FormC),
            "NFD" => new UnicodeNormalizer(NormalizationForm.FormD),
            "NFKC" => new UnicodeNormalizer(NormalizationForm.FormKC),
            "NFKD" => new UnicodeNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            "Prepend" => new PrependNormalizer(j.String(e, "prepend", field)),
            "Replace" => new ReplaceNormalizer(j.Pattern(e, field), j.String(e, "content", field)),
            "Strip" => new StripNormalizer(j.Bool(e, "strip_left", field, true), j.Bool(e, "strip_right", field, true)),
            "Sequence" => new SequenceNormalizer(j.Array(e, "normalizers", field).EnumerateArray()
                .Select((x, i) => FromJson(x, j, $"{field}.normalizers[{i}]")).OfType<Normalizer>().ToArray()),
            _ => throw j.Error($"{field}.type", $"normalizer \"{type}\" is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)"),
        };
    }
}

public sealed class UnicodeNormalizer(NormalizationForm form) : Normalizer
{
    public override string Normalize(string text)
    {
        // Text with lone surrogates cannot be normalized; the reference leaves such text as it is.
        try { return text.IsNormalized(form) ? text : text.Normalize(form); }
        catch (ArgumentException) { return text; }
    }
}

public sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text) => text.ToLowerInvariant();
}

/// <summary>Prepends a string to non-empty text (SentencePiece's leading <c>▁</c>).</summary>
public sealed class PrependNormalizer(string prepend) : Normalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prepend + text;
}

public sealed class ReplaceNormalizer(Pattern pattern, string content) : Normalizer
{
    public override string Normalize(string text) => pattern.Replace(text, content);
}

public sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text)
    {
        var s = text.AsSpan();
        int a = 0, b = s.Length;
        if (left) while (a < b && char.IsWhiteSpace(s[a])) a++;
        if (right) while (b > a && char.IsWhiteSpace(s[b - 1])) b--;
        return a == 0 && b == s.Length ? text : text[a..b];
    }
}

public sealed class SequenceNormalizer(Normalizer[] steps) : Normalizer
{
    public override string Normalize(string text)
    {
        foreach (var n in steps) text = n.Normalize(text);
        return text;
    }
}
