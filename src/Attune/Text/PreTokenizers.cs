using System.Globalization;
using System.Text.Json;

namespace Attune.Text;

/// <summary>
/// A piece of text between pre-tokenization and the model: a range of <see cref="Source"/>.
/// <see cref="AtStart"/> says whether it begins the whole input (SentencePiece's "first" scheme).
/// </summary>
public readonly record struct Piece(string Source, int Start, int Length, bool AtStart)
{
    public ReadOnlySpan<char> Span => Source.AsSpan(Start, Length);
    public override string ToString() => Source.Substring(Start, Length);
    public static Piece Whole(string s, bool atStart) => new(s, 0, s.Length, atStart);
}

/// <summary>How the delimiters found by a split are kept (tokenizers' <c>SplitDelimiterBehavior</c>).</summary>
public enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>A tokenizer.json <c>pre_tokenizer</c>: cuts normalized text into words.</summary>
public abstract class PreTokenizer
{
    /// <summary>Replaces <paramref name="pieces"/> by their sub-pieces; <paramref name="scratch"/> is working space.</summary>
    public virtual void PreTokenize(List<Piece> pieces, List<Piece> scratch)
    {
        scratch.Clear();
        foreach (var p in pieces) Split(p, scratch);
        pieces.Clear();
        pieces.AddRange(scratch);
    }

    protected abstract void Split(Piece piece, List<Piece> output);

    /// <summary>True when words must be mapped to bytes (GPT-2's byte-level alphabet) before the model.</summary>
    public virtual bool IsByteLevel => false;

    [ThreadStatic] static List<(int, int)>? t_matches;

    /// <summary>Cuts <paramref name="piece"/> at the matches of <paramref name="pattern"/>.</summary>
    internal static void SplitBy(Piece piece, Pattern pattern, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        var matches = t_matches ??= [];
        matches.Clear();
        pattern.Matches(piece.Source, piece.Start, piece.Length, matches);
        SplitAt(piece, matches, behavior, invert, output);
    }

    /// <summary>Applies a split behaviour to sorted, non-overlapping match ranges (absolute offsets).</summary>
    internal static void SplitAt(Piece piece, List<(int Start, int Length)> matches, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        int first = output.Count;
        int cursor = piece.Start, end = piece.Start + piece.Length;
        bool previousMatch = false;
        void Emit(int s, int e, bool isMatch)
        {
            if (e <= s) return;
            if (invert) isMatch = !isMatch;
            switch (behavior)
            {
                case SplitBehavior.Removed:
                    if (!isMatch) output.Add(piece with { Start = s, Length = e - s });
                    break;
                case SplitBehavior.Isolated:
                    output.Add(piece with { Start = s, Length = e - s });
                    break;
                case SplitBehavior.MergedWithPrevious:
                    if (isMatch && !previousMatch && output.Count > first)
                        output[^1] = output[^1] with { Length = e - output[^1].Start };
                    else output.Add(piece with { Start = s, Length = e - s });
                    break;
                case SplitBehavior.Contiguous:
                    if (isMatch == previousMatch && output.Count > first)
                        output[^1] = output[^1] with { Length = e - output[^1].Start };
                    else output.Add(piece with { Start = s, Length = e - s });
                    break;
                case SplitBehavior.MergedWithNext:
                    // A match joins the piece that follows it: extend the previous match piece forward.
                    if (!isMatch && previousMatch && output.Count > first)
                        output[^1] = output[^1] with { Length = e - output[^1].Start };
                    else output.Add(piece with { Start = s, Length = e - s });
                    break;
            }
            previousMatch = isMatch;
        }
        foreach (var (s, len) in matches)
        {
            Emit(cursor, s, false);
            Emit(s, s + len, true);
            cursor = s + len;
        }
        Emit(cursor, end, false);
        for (int i = first; i < output.Count; i++)
            output[i] = output[i] with { AtStart = piece.AtStart && output[i].Start == piece.Start };
    }

    internal static PreTokenizer? FromJson(JsonElement e, TokenizerJson j, string field)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        var type = j.Type(e, field);
        return type switch
        {
            "Split" => new SplitPreTokenizer(j.Pattern(e, field), ParseBehavior(j.String(e, "behavior", field), j, field),
                j.Bool(e, "invert", field, false)),
            "ByteLevel" => new ByteLevelPreTokenizer(j.Bool(e, "add_prefix_space", field, true), j.Bool(e, "use_regex", field, true)),
            "Metaspace" => new MetaspacePreTokenizer(j.String(e, "replacement", field, "▁"), MetaspaceScheme(e, j, field),
                j.Bool(e, "split", field, true)),
            "Digits" => new DigitsPreTokenizer(j.Bool(e, "individual_digits", field, false)),
            "WhitespaceSplit" => new WhitespaceSplitPreTokenizer(),
            "Sequence" => new SequencePreTokenizer(j.Array(e, "pretokenizers", field).EnumerateArray()
                .Select((x, i) => FromJson(x, j, $"{field}.pretokenizers[{i}]")).OfType<PreTokenizer>().ToArray()),
            _ => throw j.Error($"{field}.type", $"pre-tokenizer \"{type}\" is not supported (Split, ByteLevel, Metaspace, Digits, WhitespaceSplit, Sequence)"),
        };
    }

    static SplitBehavior ParseBehavior(string s, TokenizerJson j, string field) =>
        Enum.TryParse<SplitBehavior>(s, ignoreCase: false, out var b) && Enum.IsDefined(b) ? b
            : throw j.Error($"{field}.behavior", $"\"{s}\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");

    internal static string MetaspaceScheme(JsonElement e, TokenizerJson j, string field)
    {
        var scheme = j.OptionalString(e, "prepend_scheme", field);
        if (scheme is null) return j.Bool(e, "add_prefix_space", field, true) ? "always" : "never";
        if (scheme is not ("always" or "first" or "never"))
            throw j.Error($"{field}.prepend_scheme", $"\"{scheme}\" is not one of always, first, never");
        return scheme;
    }
}

public sealed class SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    protected override void Split(Piece piece, List<Piece> output) => SplitBy(piece, pattern, behavior, invert, output);
}

/// <summary>
/// GPT-2's byte-level step. Optionally adds a leading space and splits with GPT-2's regex; the
/// byte-to-character mapping itself happens in the model (see <see cref="IsByteLevel"/>).
/// </summary>
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    static readonly Pattern Gpt2 = new(SplitScanner.Gpt2Pattern, new System.Text.RegularExpressions.Regex(SplitScanner.Gpt2Pattern), SplitScanner.Gpt2);

    public bool AddPrefixSpace => addPrefixSpace;
    public override bool IsByteLevel => true;

    protected override void Split(Piece piece, List<Piece> output)
    {
        if (addPrefixSpace && (piece.Length == 0 || piece.Span[0] != ' '))
            piece = Piece.Whole(" " + piece.ToString(), piece.AtStart);
        if (useRegex) SplitBy(piece, Gpt2, SplitBehavior.Isolated, false, output);
        else if (piece.Length > 0) output.Add(piece);
    }
}

/// <summary>SentencePiece's whitespace handling: spaces become <c>▁</c>, one is prepended, words start at each <c>▁</c>.</summary>
public sealed class MetaspacePreTokenizer(string replacement, string prependScheme, bool split) : PreTokenizer
{
    readonly Pattern _replacement = new(replacement, null, null);

    protected override void Split(Piece piece, List<Piece> output)
    {
        var text = piece.ToString().Replace(" ", replacement, StringComparison.Ordinal);
        bool prepend = prependScheme == "always" || (prependScheme == "first" && piece.AtStart);
        if (prepend && !text.StartsWith(replacement, StringComparison.Ordinal)) text = replacement + text;
        var whole = Piece.Whole(text, piece.AtStart);
        if (split) SplitBy(whole, _replacement, SplitBehavior.MergedWithNext, false, output);
        else if (text.Length > 0) output.Add(whole);
    }
}

public sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    [ThreadStatic] static List<(int, int)>? t_digits;

    protected override void Split(Piece piece, List<Piece> output)
    {
        var matches = t_digits ??= [];
        matches.Clear();
        var s = piece.Span;
        for (int i = 0; i < s.Length; i++)
        {
            var cat = CharUnicodeInfo.GetUnicodeCategory(s[i]);
            if (cat is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber)
                matches.Add((piece.Start + i, 1));
        }
        SplitAt(piece, matches, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, false, output);
    }
}

public sealed class WhitespaceSplitPreTokenizer : PreTokenizer
{
    protected override void Split(Piece piece, List<Piece> output)
    {
        var s = piece.Span;
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            int start = i;
            while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
            if (i > start) output.Add(piece with { Start = piece.Start + start, Length = i - start, AtStart = piece.AtStart && start == 0 });
        }
    }
}

public sealed class SequencePreTokenizer(PreTokenizer[] steps) : PreTokenizer
{
    public override bool IsByteLevel => steps.Any(s => s.IsByteLevel);

    public override void PreTokenize(List<Piece> pieces, List<Piece> scratch)
    {
        foreach (var step in steps) step.PreTokenize(pieces, scratch);
    }

    protected override void Split(Piece piece, List<Piece> output) =>
        throw new InvalidOperationException("a sequence pre-tokenizes whole lists");
}
