using System.Globalization;
using System.Text;

namespace Attune.Text.Templates;

/// <summary>
/// Python's string semantics, which chat templates are written against: <c>str()</c> and
/// <c>repr()</c> of values, float formatting, whitespace, and indexing by code point (Python
/// strings count code points; .NET strings count UTF-16 units, which differ past U+FFFF).
/// </summary>
static class PyText
{
    /// <summary>Jinja's <c>str(value)</c>: what <c>{{ value }}</c> prints.</summary>
    public static string Str(Value v) => v.Kind switch
    {
        ValueKind.Undefined => "",
        ValueKind.String => v.AsString,
        ValueKind.Int => v.AsInt.ToString(CultureInfo.InvariantCulture),
        ValueKind.Object => v.AsObject.Repr(),
        _ => Repr(v),
    };

    /// <summary>Python's <c>repr(value)</c> (how a list prints its items).</summary>
    public static string Repr(Value v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    public const int MaxNesting = 512;

    static void AppendRepr(StringBuilder sb, Value v, int depth)
    {
        if (depth > MaxNesting) throw new TemplateRuntimeError("value nested too deeply to print");
        switch (v.Kind)
        {
            case ValueKind.Undefined: sb.Append("Undefined"); break;
            case ValueKind.None: sb.Append("None"); break;
            case ValueKind.Bool: sb.Append(v.AsBool ? "True" : "False"); break;
            case ValueKind.Int: sb.Append(v.AsInt.ToString(CultureInfo.InvariantCulture)); break;
            case ValueKind.Float: sb.Append(FloatRepr(v.AsFloat)); break;
            case ValueKind.String: AppendStringRepr(sb, v.AsString); break;
            case ValueKind.List:
            case ValueKind.Tuple:
            {
                var items = v.AsList;
                bool tuple = v.Kind == ValueKind.Tuple;
                sb.Append(tuple ? '(' : '[');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, items[i], depth + 1);
                }
                if (tuple && items.Count == 1) sb.Append(',');
                sb.Append(tuple ? ')' : ']');
                break;
            }
            case ValueKind.Dict:
            {
                sb.Append('{');
                bool first = true;
                foreach (var (k, item) in v.AsDict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, item, depth + 1);
                }
                sb.Append('}');
                break;
            }
            case ValueKind.Object: sb.Append(v.AsObject.Repr()); break;
            case ValueKind.Callable:
                sb.Append(v.AsCallable is Macro m ? $"<Macro '{m.Name}'>" : $"<built-in function {v.AsCallable.Name}>");
                break;
        }
    }

    /// <summary>Python's string repr: single quotes unless the text has one and no double quote.</summary>
    static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == quote || c == '\\') { sb.Append('\\').Append(c); continue; }
            if (c == '\n') { sb.Append("\\n"); continue; }
            if (c == '\r') { sb.Append("\\r"); continue; }
            if (c == '\t') { sb.Append("\\t"); continue; }
            int cp = c;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                cp = char.ConvertToUtf32(c, s[i + 1]);
            if (IsPrintable(cp))
            {
                sb.Append(c);
                if (cp > 0xFFFF) sb.Append(s[++i]);
            }
            else if (cp < 0x100) sb.Append("\\x").Append(cp.ToString("x2"));
            else if (cp < 0x10000) sb.Append("\\u").Append(cp.ToString("x4"));
            else { sb.Append("\\U").Append(cp.ToString("x8")); i++; }
        }
        sb.Append(quote);
    }

    /// <summary>Python's <c>str.isprintable</c> for one code point (space is printable, other separators are not).</summary>
    static bool IsPrintable(int cp)
    {
        if (cp == ' ') return true;
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;
        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    /// <summary>
    /// Python's <c>repr(float)</c>: the shortest digits that round-trip, in positional notation
    /// when the decimal exponent is in [-4, 16), else as <c>1e+16</c>; always with a <c>.0</c> or an exponent.
    /// </summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // .NET's "R" gives the same shortest round-trip digits as Python; only the layout differs.
        var r = ShortestDigits(d, out int exponent, out bool negative);
        var sb = new StringBuilder();
        if (negative) sb.Append('-');
        // r holds the digits d1 d2 ... dn, the value is 0.d1d2...dn × 10^(exponent + 1)
        int decpt = exponent + 1;
        if (decpt > -4 && decpt <= 16)
        {
            if (decpt <= 0)
            {
                sb.Append("0.").Append('0', -decpt).Append(r);
            }
            else if (decpt >= r.Length)
            {
                sb.Append(r).Append('0', decpt - r.Length).Append(".0");
            }
            else
            {
                sb.Append(r, 0, decpt).Append('.').Append(r, decpt, r.Length - decpt);
            }
        }
        else
        {
            sb.Append(r[0]);
            if (r.Length > 1) sb.Append('.').Append(r, 1, r.Length - 1);
            sb.Append('e').Append(exponent < 0 ? '-' : '+');
            sb.Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>The shortest round-trip significant digits of <paramref name="d"/> and its decimal exponent (d = digits[0].digits[1..] × 10^exponent).</summary>
    static string ShortestDigits(double d, out int exponent, out bool negative)
    {
        var s = d.ToString("R", CultureInfo.InvariantCulture); // e.g. "-1.5E-05", "123.456", "1E+16"
        negative = s[0] == '-';
        if (negative) s = s[1..];
        int e = s.IndexOfAny(['E', 'e']);
        int exp10 = 0;
        if (e >= 0)
        {
            exp10 = int.Parse(s.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            s = s[..e];
        }
        int dot = s.IndexOf('.');
        string intPart = dot < 0 ? s : s[..dot];
        string frac = dot < 0 ? "" : s[(dot + 1)..];
        string digits = intPart + frac;
        // position of the decimal point after the first digit of `digits`
        int pointAfter = intPart.Length;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') lead++;
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        exponent = exp10 + pointAfter - lead - 1;
        return digits;
    }

    // ---- whitespace and code points -------------------------------------------------------

    /// <summary>Python's <c>str.isspace</c> for one UTF-16 unit (all of Python's whitespace is in the BMP).</summary>
    public static bool IsSpace(char c) => c switch
    {
        ' ' or '\t' or '\n' or '\v' or '\f' or '\r' => true,
        '\x1c' or '\x1d' or '\x1e' or '\x1f' or '\x85' or '\xa0' => true,
        '\u1680' or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000' => true,
        >= '\u2000' and <= '\u200a' => true,
        _ => false,
    };

    /// <summary>Python's <c>str.splitlines</c> line boundaries.</summary>
    public static bool IsLineBreak(char c) => c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    static bool HasSurrogates(string s)
    {
        foreach (char c in s)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    /// <summary>The string as code points, each a string of one or two UTF-16 units.</summary>
    public static List<string> CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else list.Add(s[i].ToString());
        }
        return list;
    }

    /// <summary><c>len(s)</c> in code points.</summary>
    public static int Length(string s)
    {
        int n = s.Length;
        for (int i = 0; i + 1 < s.Length; i++)
            if (char.IsHighSurrogate(s[i]) && char.IsLowSurrogate(s[i + 1])) { n--; i++; }
        return n;
    }

    /// <summary><c>s[index]</c> with Python's negative indices; false when out of range.</summary>
    public static bool TryIndex(string s, long index, out string result)
    {
        if (!HasSurrogates(s))
        {
            if (index < 0) index += s.Length;
            result = index >= 0 && index < s.Length ? s[(int)index].ToString() : "";
            return index >= 0 && index < s.Length;
        }
        var cps = CodePoints(s);
        if (index < 0) index += cps.Count;
        result = index >= 0 && index < cps.Count ? cps[(int)index] : "";
        return index >= 0 && index < cps.Count;
    }

    /// <summary><c>s[start:stop:step]</c>.</summary>
    public static string Slice(string s, long? start, long? stop, long? step)
    {
        if (!HasSurrogates(s))
        {
            var (from, count, by) = Operators.SliceIndices(s.Length, start, stop, step);
            if (by == 1) return s.Substring(from, count);
            var sb = new StringBuilder(count);
            for (int i = 0, j = from; i < count; i++, j += by) sb.Append(s[j]);
            return sb.ToString();
        }
        var cps = CodePoints(s);
        var (f, n, st) = Operators.SliceIndices(cps.Count, start, stop, step);
        var b = new StringBuilder();
        for (int i = 0, j = f; i < n; i++, j += st) b.Append(cps[j]);
        return b.ToString();
    }

    /// <summary><c>str.strip(chars)</c>: Python whitespace when <paramref name="chars"/> is null.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int start = 0, end = s.Length;
        if (chars is null)
        {
            if (left) while (start < end && IsSpace(s[start])) start++;
            if (right) while (end > start && IsSpace(s[end - 1])) end--;
        }
        else if (!HasSurrogates(chars) && !HasSurrogates(s))
        {
            if (left) while (start < end && chars.Contains(s[start])) start++;
            if (right) while (end > start && chars.Contains(s[end - 1])) end--;
        }
        else
        {
            var set = CodePoints(chars).ToHashSet();
            var cps = CodePoints(s);
            int a = 0, z = cps.Count;
            if (left) while (a < z && set.Contains(cps[a])) a++;
            if (right) while (z > a && set.Contains(cps[z - 1])) z--;
            return string.Concat(cps.Skip(a).Take(z - a));
        }
        return start == 0 && end == s.Length ? s : s[start..end];
    }

    /// <summary>Python's <c>str.split(sep, maxsplit)</c>.</summary>
    public static List<Value> Split(string s, string? sep, long maxsplit)
    {
        var parts = new List<Value>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxsplit >= 0 && parts.Count >= maxsplit)
                {
                    parts.Add(s[i..]); // the remainder keeps its trailing whitespace, as in Python
                    break;
                }
                int j = i;
                while (j < s.Length && !IsSpace(s[j])) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        if (sep.Length == 0) throw new TemplateRuntimeError("empty separator");
        int pos = 0;
        while (maxsplit < 0 || parts.Count < maxsplit)
        {
            int k = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (k < 0) break;
            parts.Add(s[pos..k]);
            pos = k + sep.Length;
        }
        parts.Add(s[pos..]);
        return parts;
    }

    /// <summary>Python's <c>str.rsplit(sep, maxsplit)</c>.</summary>
    public static List<Value> RSplit(string s, string? sep, long maxsplit)
    {
        if (maxsplit < 0) return Split(s, sep, -1);
        var parts = new List<Value>();
        if (sep is null)
        {
            int i = s.Length;
            while (true)
            {
                while (i > 0 && IsSpace(s[i - 1])) i--;
                if (i <= 0) break;
                if (parts.Count >= maxsplit)
                {
                    parts.Add(s[..i]); // the remainder keeps its leading whitespace, as in Python
                    break;
                }
                int j = i;
                while (j > 0 && !IsSpace(s[j - 1])) j--;
                parts.Add(s[j..i]);
                i = j;
            }
        }
        else
        {
            if (sep.Length == 0) throw new TemplateRuntimeError("empty separator");
            int end = s.Length;
            while (parts.Count < maxsplit)
            {
                int k = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
                if (k < 0 || k + sep.Length > end) break;
                parts.Add(s[(k + sep.Length)..end]);
                end = k;
            }
            parts.Add(s[..end]);
        }
        parts.Reverse();
        return parts;
    }

    /// <summary>Python's <c>str.splitlines(keepends)</c>.</summary>
    public static List<string> SplitLines(string s, bool keepEnds = false)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (!IsLineBreak(s[i])) continue;
            int end = i;
            if (s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            lines.Add(keepEnds ? s[start..(i + 1)] : s[start..end]);
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    /// <summary>Python's <c>str.title()</c>: a cased letter after an uncased character starts a word.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (var rune in s.EnumerateRunes())
        {
            bool cased = IsCased(rune);
            var r = cased ? (previousCased ? Rune.ToLowerInvariant(rune) : Rune.ToUpperInvariant(rune)) : rune;
            sb.Append(r.ToString());
            previousCased = cased;
        }
        return sb.ToString();
    }

    /// <summary>Python's <c>str.capitalize()</c>: the first character upper case, the rest lower case.</summary>
    public static string Capitalize(string s)
    {
        if (s.Length == 0) return s;
        var first = Rune.GetRuneAt(s, 0);
        return Rune.ToUpperInvariant(first).ToString() + s[first.Utf16SequenceLength..].ToLowerInvariant();
    }

    static bool IsCased(Rune r) => Rune.IsLetter(r) && (Rune.IsUpper(r) || Rune.IsLower(r)
        || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter);

    /// <summary>Python's <c>str.islower()</c> / <c>isupper()</c>: all cased characters in one case, and at least one.</summary>
    public static bool IsAllCase(string s, bool upper)
    {
        bool any = false;
        foreach (var rune in s.EnumerateRunes())
        {
            if (!IsCased(rune)) continue;
            if (upper ? Rune.IsLower(rune) : Rune.IsUpper(rune)) return false;
            any = true;
        }
        return any;
    }

    /// <summary>Jinja's <c>title</c> filter, which starts words after whitespace, hyphens and opening brackets only.</summary>
    public static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool startOfWord = true;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            bool separator = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            if (separator) { sb.Append(c); startOfWord = true; continue; }
            if (startOfWord)
            {
                var rune = Rune.GetRuneAt(s, i);
                sb.Append(Rune.ToUpperInvariant(rune).ToString());
                i += rune.Utf16SequenceLength - 1;
                startOfWord = false;
            }
            else sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
