using System.Globalization;
using System.Text;

namespace Attune.Text.Templates;

/// <summary>
/// Python's string formatting as templates use it: <c>'%s: %d' % (name, n)</c> (and the
/// <c>format</c> filter, which is the same thing) and <c>'{}: {:.2f}'.format(name, x)</c>.
/// The common conversions only; anything else is a clear error rather than a guess.
/// </summary>
static class PyFormat
{
    /// <summary><c>format % args</c>: a tuple gives positional values, a dict named ones, anything else is the one value.</summary>
    public static Value Percent(string format, Value args, int maxLength)
    {
        var positional = args.Kind == ValueKind.Tuple ? args.AsList : [args];
        var named = args.Kind == ValueKind.Dict ? args.AsDict : null;
        var sb = new StringBuilder(format.Length + 16);
        int next = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%') { sb.Append(c); continue; }
            if (++i >= format.Length) throw new TemplateRuntimeError("incomplete format");
            if (format[i] == '%') { sb.Append('%'); continue; }
            Value value;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0) throw new TemplateRuntimeError("incomplete format key");
                if (named is null) throw new TemplateRuntimeError("format requires a mapping");
                var key = format[(i + 1)..close];
                if (!named.TryGet(key, out value)) throw new TemplateRuntimeError($"'{key}'");
                i = close + 1;
            }
            else
            {
                if (next >= positional.Count) throw new TemplateRuntimeError("not enough arguments for format string");
                value = positional[next++];
            }
            var spec = new Spec();
            for (; i < format.Length && "-+ 0#".Contains(format[i]); i++)
            {
                if (format[i] == '-') spec.Align = '<';
                else if (format[i] == '+') spec.Sign = '+';
                else if (format[i] == ' ') spec.Sign = spec.Sign == '+' ? '+' : ' ';
                else if (format[i] == '0') spec.ZeroPad = true;
            }
            i = ReadNumber(format, i, out spec.Width);
            if (i < format.Length && format[i] == '.') i = ReadNumber(format, i + 1, out spec.Precision);
            if (i >= format.Length) throw new TemplateRuntimeError("incomplete format");
            spec.Type = format[i];
            if (spec.Align == '\0') spec.Align = '>';
            AppendFormatted(sb, value, spec, percentStyle: true);
            Operators.CheckLength(sb.Length, maxLength);
        }
        if (named is null && next < positional.Count)
            throw new TemplateRuntimeError("not all arguments converted during string formatting");
        return sb.ToString();
    }

    /// <summary><c>str.format(*args, **kwargs)</c> with <c>{}</c>, <c>{0}</c>, <c>{name}</c> and a format spec.</summary>
    public static Value Format(string format, CallArguments args, int maxLength)
    {
        var sb = new StringBuilder(format.Length + 16);
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}') { sb.Append('}'); i++; continue; }
                throw new TemplateRuntimeError("Single '}' encountered in format string");
            }
            if (c != '{') { sb.Append(c); continue; }
            if (i + 1 < format.Length && format[i + 1] == '{') { sb.Append('{'); i++; continue; }
            int close = format.IndexOf('}', i);
            if (close < 0) throw new TemplateRuntimeError("Single '{' encountered in format string");
            var field = format[(i + 1)..close];
            i = close;
            int colon = field.IndexOf(':');
            var name = colon < 0 ? field : field[..colon];
            var specText = colon < 0 ? "" : field[(colon + 1)..];
            if (name.Contains('!') || name.Contains('.') || name.Contains('['))
                throw new TemplateRuntimeError($"format field '{{{field}}}' is not supported");
            Value value;
            if (name.Length == 0)
            {
                if (auto >= args.Positional.Count) throw new TemplateRuntimeError($"Replacement index {auto} out of range for positional args tuple");
                value = args.Positional[auto++];
            }
            else if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            {
                if (index >= args.Positional.Count) throw new TemplateRuntimeError($"Replacement index {index} out of range for positional args tuple");
                value = args.Positional[index];
            }
            else
            {
                if (!args.Has(-1, name)) throw new TemplateRuntimeError($"'{name}'");
                value = args.Get(-1, name, Value.Undefined);
            }
            AppendFormatted(sb, value, ParseSpec(specText, value), percentStyle: false);
            Operators.CheckLength(sb.Length, maxLength);
        }
        return sb.ToString();
    }

    struct Spec
    {
        public char Fill, Align, Sign, Type;
        public bool ZeroPad;
        public int Width, Precision;

        public Spec() { Fill = ' '; Precision = -1; }
    }

    /// <summary>Reads a width or precision (0 when absent); large values are refused so that formatting stays cheap.</summary>
    static int ReadNumber(string s, int i, out int value)
    {
        value = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i]))
        {
            value = value * 10 + (s[i++] - '0');
            if (value > 10_000) throw new TemplateRuntimeError("format width or precision too large");
        }
        return i;
    }

    /// <summary>A format spec of <c>str.format</c>: <c>[[fill]align][sign][0][width][.precision][type]</c>.</summary>
    static Spec ParseSpec(string s, Value value)
    {
        var spec = new Spec();
        int i = 0;
        if (s.Length >= 2 && s[1] is '<' or '>' or '^' or '=') { spec.Fill = s[0]; spec.Align = s[1]; i = 2; }
        else if (s.Length >= 1 && s[0] is '<' or '>' or '^' or '=') { spec.Align = s[0]; i = 1; }
        if (i < s.Length && s[i] is '+' or '-' or ' ') spec.Sign = s[i++] == '-' ? '\0' : s[i - 1];
        if (i < s.Length && s[i] == '0') { spec.ZeroPad = true; i++; }
        i = ReadNumber(s, i, out spec.Width);
        if (i < s.Length && s[i] == '.') i = ReadNumber(s, i + 1, out spec.Precision);
        if (i < s.Length) spec.Type = s[i++];
        if (i != s.Length) throw new TemplateRuntimeError($"Invalid format specifier '{s}'");
        if (spec.Type == '\0') spec.Type = value.IsString ? 's' : value.Kind == ValueKind.Float ? 'r' : value.IsInteger ? 'd' : 's';
        if (spec.Align == '\0') spec.Align = value.IsNumber && spec.Type != 's' ? '>' : '<';
        return spec;
    }

    static void AppendFormatted(StringBuilder sb, Value value, Spec spec, bool percentStyle)
    {
        string body;
        bool numeric = false;
        switch (spec.Type)
        {
            case 's':
                body = PyText.Str(value);
                if (spec.Precision >= 0 && body.Length > spec.Precision) body = body[..spec.Precision];
                break;
            case 'r':
                if (percentStyle || !value.IsNumber) { body = PyText.Repr(value); break; }
                body = PyText.Str(value); // str.format's default for floats
                numeric = true;
                break;
            case 'd' or 'i' or 'x' or 'X' or 'o':
                if (!value.IsNumber) throw new TemplateRuntimeError($"%{spec.Type} format: a real number is required, not {value.TypeName}");
                long n = value.Kind == ValueKind.Float ? (long)Math.Truncate(value.AsFloat) : value.AsInt;
                var magnitude = (ulong)(n < 0 ? -(n + 1) + 1L : n);
                body = spec.Type switch
                {
                    'x' => magnitude.ToString("x", CultureInfo.InvariantCulture),
                    'X' => magnitude.ToString("X", CultureInfo.InvariantCulture),
                    'o' => Convert.ToString((long)magnitude, 8),
                    _ => magnitude.ToString(CultureInfo.InvariantCulture),
                };
                if (n < 0) body = "-" + body;
                numeric = true;
                break;
            case 'f' or 'F' or 'e' or 'E' or 'g' or 'G' or '%':
                if (!value.IsNumber) throw new TemplateRuntimeError($"%{spec.Type} format: a real number is required, not {value.TypeName}");
                double d = value.AsDouble;
                int p = spec.Precision < 0 ? 6 : spec.Precision;
                body = spec.Type switch
                {
                    'f' or 'F' => d.ToString("F" + p, CultureInfo.InvariantCulture),
                    'e' or 'E' => PythonExponent(d, p, spec.Type),
                    '%' => (d * 100).ToString("F" + p, CultureInfo.InvariantCulture) + "%",
                    _ => d.ToString("G" + Math.Max(p, 1), CultureInfo.InvariantCulture),
                };
                numeric = true;
                break;
            case 'c':
                if (value.IsInteger)
                {
                    long cp = value.AsInt;
                    if (cp < 0 || cp > 0x10FFFF) throw new TemplateRuntimeError("%c arg not in range(0x110000)");
                    body = cp is >= 0xD800 and <= 0xDFFF ? ((char)cp).ToString() : char.ConvertFromUtf32((int)cp);
                }
                else if (value.IsString && PyText.Length(value.AsString) == 1) body = value.AsString;
                else throw new TemplateRuntimeError("%c requires an int or a unicode character");
                break;
            default:
                throw new TemplateRuntimeError($"unsupported format character '{spec.Type}'");
        }
        if (numeric && spec.Sign is '+' or ' ' && !body.StartsWith('-')) body = spec.Sign + body;
        int pad = spec.Width - body.Length;
        if (pad <= 0) { sb.Append(body); return; }
        if (spec.ZeroPad && numeric && spec.Align is '>' or '=')
        {
            int signLength = body.Length > 0 && body[0] is '-' or '+' or ' ' ? 1 : 0;
            sb.Append(body, 0, signLength).Append('0', pad).Append(body, signLength, body.Length - signLength);
            return;
        }
        switch (spec.Align)
        {
            case '<': sb.Append(body).Append(spec.Fill, pad); break;
            case '^': sb.Append(spec.Fill, pad / 2).Append(body).Append(spec.Fill, pad - pad / 2); break;
            default: sb.Append(spec.Fill, pad).Append(body); break;
        }
    }

    /// <summary>Python's <c>%e</c>: at least two exponent digits (<c>1.500000e+03</c>).</summary>
    static string PythonExponent(double d, int precision, char type)
    {
        var s = d.ToString((type == 'E' ? "E" : "e") + precision, CultureInfo.InvariantCulture); // 1.500000e+003
        int e = s.IndexOfAny(['e', 'E']);
        var exponent = int.Parse(s.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return s[..(e + 1)] + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }
}
