using System.Globalization;
using System.Text;

namespace Attune.Text.Templates;

/// <summary>
/// The functions every template can call: Jinja's <c>range</c>, <c>namespace</c> and <c>dict</c>,
/// and the two transformers adds for chat templates, <c>raise_exception</c> and <c>strftime_now</c>.
/// Nothing here reads files, the network or the environment; the clock is the renderer's
/// (injectable) <see cref="TimeProvider"/>.
/// </summary>
static class Globals
{
    static readonly Dictionary<string, Value> Functions = new()
    {
        ["range"] = Function("range", Range),
        ["namespace"] = Function("namespace", (_, a) =>
        {
            var ns = new Namespace();
            foreach (var (k, v) in DictFrom(a)) ns.Attributes[k] = v;
            return Value.FromObject(ns);
        }),
        ["dict"] = Function("dict", (_, a) => Value.FromDict(DictFrom(a))),
        ["raise_exception"] = Function("raise_exception", (_, a) =>
            throw new TemplateRuntimeError(a.Count > 0 ? PyText.Str(a.Positional[0]) : "raise_exception() called", raisedByTemplate: true)),
        ["strftime_now"] = Function("strftime_now", (r, a) =>
        {
            a.Check("strftime_now", 1, "format");
            var format = a.Get(0, "format", Value.None);
            if (!format.IsString) throw new TemplateRuntimeError("strftime_now() needs a format string");
            return Strftime(r.Now(), format.AsString);
        }),
    };

    static Value Function(string name, Func<Renderer, CallArguments, Value> body) =>
        Value.FromCallable(new BuiltinFunction(name, body));

    public static bool TryGet(string name, out Value value) => Functions.TryGetValue(name, out value);

    /// <summary>Python's range(stop) / range(start, stop[, step]); its length counts against the loop budget.</summary>
    static Value Range(Renderer r, CallArguments a)
    {
        a.Check("range", 3);
        foreach (var x in a.Positional)
            if (!x.IsInteger) throw new TemplateRuntimeError($"'{x.TypeName}' object cannot be interpreted as an integer");
        long start = 0, stop, step = 1;
        switch (a.Count)
        {
            case 0: throw new TemplateRuntimeError("range expected at least 1 argument, got 0");
            case 1: stop = a.Positional[0].AsInt; break;
            default:
                start = a.Positional[0].AsInt;
                stop = a.Positional[1].AsInt;
                if (a.Count == 3) step = a.Positional[2].AsInt;
                break;
        }
        if (step == 0) throw new TemplateRuntimeError("range() arg 3 must not be zero");
        long count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0) : (start > stop ? (start - stop - 1) / -step + 1 : 0);
        if (count > r.Limits.MaxLoopIterations)
            throw new TemplateRuntimeError($"range() of {count:N0} items is more than the loop budget of {r.Limits.MaxLoopIterations:N0} (TemplateLimits.MaxLoopIterations)");
        r.CountIterations(Math.Max(count, 1));
        var items = new List<Value>((int)count);
        for (long i = 0, x = start; i < count; i++, x += step) items.Add(x);
        return Value.FromList(items);
    }

    /// <summary>dict(mapping or pairs, **kwargs), also namespace(...)'s arguments.</summary>
    static Dict DictFrom(CallArguments a)
    {
        if (a.Count > 1) throw new TemplateRuntimeError($"expected at most 1 argument, got {a.Count}");
        var d = new Dict();
        if (a.Count == 1)
        {
            var source = a.Positional[0];
            if (source.Kind == ValueKind.Dict)
                foreach (var (k, v) in source.AsDict) d[k] = v;
            else
                foreach (var pair in Operators.Iterate(source))
                {
                    var kv = Operators.Iterate(pair);
                    if (kv.Count != 2) throw new TemplateRuntimeError("dictionary update sequence element has the wrong length; 2 is required");
                    d[kv[0]] = kv[1];
                }
        }
        foreach (var (k, v) in a.Keywords ?? []) d[k] = v;
        return d;
    }

    static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>
    /// Python's <c>datetime.strftime</c> in the C locale for the common codes: <c>%a %A %b %B %d %e %H %I
    /// %j %m %M %p %S %f %y %Y %z %Z %w %u %%</c>, and glibc's <c>%-d</c> style (no padding). Other
    /// codes are copied as written.
    /// </summary>
    public static string Strftime(DateTimeOffset t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%' || i + 1 >= format.Length) { sb.Append(c); continue; }
            char code = format[++i];
            bool noPad = false;
            if (code == '-' && i + 1 < format.Length) { noPad = true; code = format[++i]; }
            string Num(int n, int width) => noPad ? n.ToString(CultureInfo.InvariantCulture) : n.ToString(new string('0', width), CultureInfo.InvariantCulture);
            switch (code)
            {
                case 'a': sb.Append(Days[(int)t.DayOfWeek][..3]); break;
                case 'A': sb.Append(Days[(int)t.DayOfWeek]); break;
                case 'b': case 'h': sb.Append(Months[t.Month - 1][..3]); break;
                case 'B': sb.Append(Months[t.Month - 1]); break;
                case 'd': sb.Append(Num(t.Day, 2)); break;
                case 'e': sb.Append(noPad ? t.Day.ToString(CultureInfo.InvariantCulture) : t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2)); break;
                case 'H': sb.Append(Num(t.Hour, 2)); break;
                case 'I': sb.Append(Num(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2)); break;
                case 'j': sb.Append(Num(t.DayOfYear, 3)); break;
                case 'm': sb.Append(Num(t.Month, 2)); break;
                case 'M': sb.Append(Num(t.Minute, 2)); break;
                case 'p': sb.Append(t.Hour < 12 ? "AM" : "PM"); break;
                case 'S': sb.Append(Num(t.Second, 2)); break;
                case 'f': sb.Append((t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture)); break;
                case 'y': sb.Append(Num(t.Year % 100, 2)); break;
                case 'Y': sb.Append(t.Year.ToString(CultureInfo.InvariantCulture)); break;
                case 'w': sb.Append((int)t.DayOfWeek); break;
                case 'u': sb.Append(t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek); break;
                case 'z':
                    sb.Append(t.Offset < TimeSpan.Zero ? '-' : '+').Append(Math.Abs(t.Offset.Hours).ToString("00", CultureInfo.InvariantCulture))
                      .Append(Math.Abs(t.Offset.Minutes).ToString("00", CultureInfo.InvariantCulture));
                    break;
                case 'Z': sb.Append(t.Offset == TimeSpan.Zero ? "UTC" : ""); break;
                case '%': sb.Append('%'); break;
                default: sb.Append('%'); if (noPad) sb.Append('-'); sb.Append(code); break;
            }
        }
        return sb.ToString();
    }
}
