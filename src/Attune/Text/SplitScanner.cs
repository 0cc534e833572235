using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Attune.Text;

/// <summary>
/// Hand-written matchers for the pre-tokenization regexes that byte-level tokenizers ship
/// (GPT-2's, and the GPT-4 style used by Llama 3 and Qwen 2/3). They give the same pieces as
/// the regex engines of the reference implementations, but work on code points (so letters
/// outside the BMP are letters) and run without backtracking or allocation.
/// </summary>
public sealed class SplitScanner
{
    /// <summary>Llama 3 (and cl100k): numbers in groups of up to three digits.</summary>
    public const string Gpt4Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen 2/3: the same with one digit per piece.</summary>
    public const string QwenPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>GPT-2 (also the ByteLevel pre-tokenizer's own regex when <c>use_regex</c> is set).</summary>
    public const string Gpt2Pattern =
        @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    enum Flavor { Gpt2, Gpt4 }

    readonly Flavor _flavor;
    readonly int _maxDigits;

    SplitScanner(Flavor flavor, int maxDigits)
    {
        _flavor = flavor;
        _maxDigits = maxDigits;
    }

    public static readonly SplitScanner Gpt2 = new(Flavor.Gpt2, int.MaxValue);
    public static readonly SplitScanner Gpt4 = new(Flavor.Gpt4, 3);
    public static readonly SplitScanner Qwen = new(Flavor.Gpt4, 1);

    /// <summary>The scanner equivalent to <paramref name="pattern"/>, or null when there is none.</summary>
    public static SplitScanner? ForPattern(string pattern) => pattern switch
    {
        Gpt4Pattern => Gpt4,
        QwenPattern => Qwen,
        Gpt2Pattern => Gpt2,
        _ => null,
    };

    /// <summary>Character classes the patterns distinguish.</summary>
    internal enum Cls : byte { Other, Letter, Number, Space, CrLf }

    static readonly Cls[] Bmp = BuildBmp();

    static Cls[] BuildBmp()
    {
        var t = new Cls[65536];
        for (int c = 0; c < 65536; c++)
            t[c] = (c >= 0xD800 && c <= 0xDFFF) ? Cls.Other : Classify(c);
        return t;
    }

    static Cls Classify(int cp)
    {
        if (cp == '\r' || cp == '\n') return Cls.CrLf;
        if (IsWhiteSpace(cp)) return Cls.Space;
        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Cls.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Cls.Number;
            default:
                return Cls.Other;
        }
    }

    /// <summary>The Unicode White_Space property (what <c>\s</c> means in the reference engines).</summary>
    internal static bool IsWhiteSpace(int cp) =>
        (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
        || cp == 0x205F || cp == 0x3000;

    /// <summary>Class of the code point at <paramref name="i"/> and its length in UTF-16 units.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Cls At(ReadOnlySpan<char> s, int i, out int len)
    {
        char c = s[i];
        if (!char.IsHighSurrogate(c) || i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1]))
        {
            len = 1;
            return Bmp[c];
        }
        len = 2;
        return Classify(char.ConvertToUtf32(c, s[i + 1]));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int RunOf(ReadOnlySpan<char> s, int i, Cls cls)
    {
        while (i < s.Length && At(s, i, out int len) == cls) i += len;
        return i;
    }

    static int SpaceRunEnd(ReadOnlySpan<char> s, int i)
    {
        while (i < s.Length && Bmp[s[i]] is Cls.Space or Cls.CrLf) i++;
        return i;
    }

    /// <summary>Appends the (start, length) of every piece of <paramref name="s"/> to <paramref name="pieces"/>.</summary>
    public void Split(ReadOnlySpan<char> s, List<(int Start, int Length)> pieces)
    {
        int i = 0;
        while (i < s.Length)
        {
            int end = _flavor == Flavor.Gpt4 ? NextGpt4(s, i) : NextGpt2(s, i);
            pieces.Add((i, end - i));
            i = end;
        }
    }

    /// <summary>Length (2 or 3) of an English contraction at <paramref name="i"/>, or 0.</summary>
    static int Contraction(ReadOnlySpan<char> s, int i, bool ignoreCase)
    {
        if (s[i] != '\'' || i + 1 >= s.Length) return 0;
        char a = s[i + 1];
        if (ignoreCase) a = FoldAscii(a);
        if (a is 's' or 't' or 'm' or 'd') return 2;
        if (i + 2 >= s.Length) return 0;
        char b = s[i + 2];
        if (ignoreCase) b = FoldAscii(b);
        return (a, b) is ('r', 'e') or ('v', 'e') or ('l', 'l') ? 3 : 0;
    }

    /// <summary>ASCII lower-casing. (Onig's case folding would also take U+017F ſ as s; the
    /// JavaScript peer does not, so neither do we.)</summary>
    static char FoldAscii(char c) => c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c;

    int NextGpt4(ReadOnlySpan<char> s, int i)
    {
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        int k = Contraction(s, i, ignoreCase: true);
        if (k > 0) return i + k;
        var c0 = At(s, i, out int l0);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (c0 == Cls.Letter) return RunOf(s, i + l0, Cls.Letter);
        if (c0 is Cls.Space or Cls.Other && i + l0 < s.Length && At(s, i + l0, out _) == Cls.Letter)
            return RunOf(s, i + l0, Cls.Letter);
        // \p{N}{1,max}
        if (c0 == Cls.Number)
        {
            int j = i + l0, n = 1;
            while (n < _maxDigits && j < s.Length && At(s, j, out int len) == Cls.Number) { j += len; n++; }
            return j;
        }
        // ' '?[^\s\p{L}\p{N}]+[\r\n]*
        int p = s[i] == ' ' ? i + 1 : i;
        if (p < s.Length && At(s, p, out int lp) == Cls.Other)
        {
            int j = RunOf(s, p + lp, Cls.Other);
            while (j < s.Length && s[j] is '\r' or '\n') j++;
            return j;
        }
        // \s*[\r\n]+ : through the last CR/LF of the whitespace run
        int w = SpaceRunEnd(s, i);
        for (int q = w - 1; q >= i; q--)
            if (s[q] is '\r' or '\n') return q + 1;
        return WhitespaceTail(s, i, w);
    }

    int NextGpt2(ReadOnlySpan<char> s, int i)
    {
        int k = Contraction(s, i, ignoreCase: false);
        if (k > 0) return i + k;
        // ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+
        int p = s[i] == ' ' ? i + 1 : i;
        if (p < s.Length)
        {
            var c = At(s, p, out int lp);
            if (c is Cls.Letter or Cls.Number or Cls.Other) return RunOf(s, p + lp, c);
        }
        return WhitespaceTail(s, i, SpaceRunEnd(s, i));
    }

    /// <summary><c>\s+(?!\S)|\s+</c> over the whitespace run [i, w): leave the last space to the next word.</summary>
    static int WhitespaceTail(ReadOnlySpan<char> s, int i, int w)
    {
        if (w == s.Length) return w;
        return w - i >= 2 ? w - 1 : w;
    }
}
