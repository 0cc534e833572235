using System.Globalization;
using System.Text;

namespace Attune.Text.Templates;

/// <summary>
/// Jinja's built-in filters (<c>value | name(args)</c>) and tests (<c>value is name(args)</c>),
/// with Jinja's signatures and semantics, and <c>tojson</c> as transformers defines it. Filters
/// Jinja has but chat templates do not use (<c>groupby</c>, <c>urlize</c>, …) fail clearly when
/// rendered; names Jinja does not have fail when the template is parsed.
/// </summary>
static class Filters
{
    static readonly HashSet<string> JinjaFilters =
    [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
        "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount",
        "wordwrap", "xmlattr",
    ];

    static readonly HashSet<string> JinjaTests =
    [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
        "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lessthan", "lower", "lt",
        "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
        "upper", "==", "!=", "<", "<=", ">", ">=",
    ];

    public static bool IsFilter(string name) => JinjaFilters.Contains(name);
    public static bool IsTest(string name) => JinjaTests.Contains(name);

    public static Value Apply(Renderer r, string name, Value v, CallArguments a)
    {
        int max = r.MaxLength;
        switch (name)
        {
            case "safe": a.Check(name, 0); return PyText.Str(v);
            case "string": a.Check(name, 0); return PyText.Str(v);
            case "upper": a.Check(name, 0); return PyText.Str(v).ToUpperInvariant();
            case "lower": a.Check(name, 0); return PyText.Str(v).ToLowerInvariant();
            case "title": a.Check(name, 0); return PyText.JinjaTitle(PyText.Str(v));
            case "capitalize": a.Check(name, 0); return PyText.Capitalize(PyText.Str(v));
            case "trim":
            {
                a.Check(name, 1, "chars");
                var chars = a.Get(0, "chars", Value.None);
                return PyText.Strip(PyText.Str(v), chars.IsNone ? null : PyText.Str(chars), true, true);
            }
            case "length":
            case "count":
                a.Check(name, 0);
                return Length(v);
            case "default":
            case "d":
            {
                a.Check(name, 2, "default_value", "boolean");
                var fallback = a.Get(0, "default_value", Value.EmptyString);
                bool boolean = a.Get(1, "boolean", false).IsTruthy;
                return v.IsUndefined || (boolean && !v.IsTruthy) ? fallback : v;
            }
            case "first":
            {
                a.Check(name, 0);
                var items = Operators.Iterate(v);
                return items.Count > 0 ? items[0] : Value.UndefinedBecause("No first item, sequence was empty.");
            }
            case "last":
            {
                a.Check(name, 0);
                var items = Operators.Iterate(v);
                return items.Count > 0 ? items[^1] : Value.UndefinedBecause("No last item, sequence was empty.");
            }
            case "list":
                a.Check(name, 0);
                return Value.FromList([.. Operators.Iterate(v)]);
            case "items":
                a.Check(name, 0);
                if (v.IsUndefined) return Value.FromList([]);
                if (v.Kind != ValueKind.Dict) throw new TemplateRuntimeError("Can only get item pairs from a mapping.");
                return Methods.Items(v.AsDict);
            case "reverse":
                a.Check(name, 0);
                if (v.IsString) return string.Concat(PyText.CodePoints(v.AsString).AsEnumerable().Reverse());
                {
                    var items = new List<Value>(Operators.Iterate(v));
                    items.Reverse();
                    return Value.FromList(items);
                }
            case "join":
            {
                a.Check(name, 2, "d", "attribute");
                var sep = PyText.Str(a.Get(0, "d", Value.EmptyString));
                var attribute = a.Get(1, "attribute", Value.None);
                var items = Operators.Iterate(v);
                r.CountIterations(items.Count);
                var sb = new StringBuilder();
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(sep);
                    sb.Append(PyText.Str(attribute.IsNone ? items[i] : GetPath(items[i], attribute)));
                    Operators.CheckLength(sb.Length, max);
                }
                return sb.ToString();
            }
            case "replace":
            {
                a.Check(name, 3, "old", "new", "count");
                var count = a.Get(2, "count", Value.None);
                return Methods.Replace(PyText.Str(v), PyText.Str(a.Get(0, "old", Value.EmptyString)), PyText.Str(a.Get(1, "new", Value.EmptyString)),
                    count.IsNone ? -1 : count.IsInteger ? count.AsInt : throw new TemplateRuntimeError("replace() count must be an integer"), max);
            }
            case "indent":
                a.Check(name, 3, "width", "first", "blank");
                return Indent(PyText.Str(v), a.Get(0, "width", 4L), a.Get(1, "first", false).IsTruthy, a.Get(2, "blank", false).IsTruthy, max);
            case "center":
            {
                a.Check(name, 1, "width");
                var args = new CallArguments([a.Get(0, "width", 80L)], null);
                return Methods.Call(r, PyText.Str(v), "center", args);
            }
            case "truncate":
                a.Check(name, 4, "length", "killwords", "end", "leeway");
                return Truncate(PyText.Str(v), a);
            case "wordcount":
            {
                a.Check(name, 0);
                long words = 0;
                bool inWord = false;
                foreach (var rune in PyText.Str(v).EnumerateRunes())
                {
                    bool w = Rune.IsLetterOrDigit(rune) || rune.Value == '_';
                    if (w && !inWord) words++;
                    inWord = w;
                }
                return words;
            }
            case "escape":
            case "e":
            case "forceescape":
                a.Check(name, 0);
                return PyText.Str(v).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "format":
            {
                var fmt = PyText.Str(v);
                if (a.Keywords is { Count: > 0 })
                {
                    if (a.Count > 0) throw new TemplateRuntimeError("can't handle positional and keyword arguments at the same time");
                    var named = new Dict();
                    foreach (var (k, x) in a.Keywords) named[k] = x;
                    return PyFormat.Percent(fmt, Value.FromDict(named), max);
                }
                return PyFormat.Percent(fmt, Value.FromTuple(a.Positional), max);
            }
            case "pprint":
                a.Check(name, 0);
                return PyText.Repr(v);
            case "tojson":
                return ToJson(v, a, max);
            case "int":
                a.Check(name, 2, "default", "base");
                return ToInt(v, a.Get(0, "default", 0L), a.Get(1, "base", 10L));
            case "float":
                a.Check(name, 1, "default");
                return ToFloat(v, a.Get(0, "default", 0.0));
            case "abs":
                a.Check(name, 0);
                if (v.Kind == ValueKind.Float) return Math.Abs(v.AsFloat);
                if (v.IsInteger) return v.AsInt == long.MinValue ? throw new TemplateRuntimeError("integer overflow") : Math.Abs(v.AsInt);
                throw new TemplateRuntimeError($"bad operand type for abs(): '{v.TypeName}'");
            case "round":
                a.Check(name, 2, "precision", "method");
                return Round(v, a.Get(0, "precision", 0L), PyText.Str(a.Get(1, "method", "common")));
            case "sum":
            {
                a.Check(name, 2, "attribute", "start");
                var attribute = a.Get(0, "attribute", Value.None);
                Value total = a.Get(1, "start", 0L);
                foreach (var item in Operators.Iterate(v))
                {
                    r.CountIterations();
                    total = Operators.Add(total, attribute.IsNone ? item : GetPath(item, attribute), max);
                }
                return total;
            }
            case "min":
            case "max":
            {
                a.Check(name, 2, "case_sensitive", "attribute");
                bool caseSensitive = a.Get(0, "case_sensitive", false).IsTruthy;
                var attribute = a.Get(1, "attribute", Value.None);
                var items = Operators.Iterate(v);
                if (items.Count == 0) return Value.UndefinedBecause("No aggregated item, sequence was empty.");
                Value best = items[0];
                foreach (var item in items.Skip(1))
                {
                    int c = Operators.Compare(SortKey(item, attribute, caseSensitive), SortKey(best, attribute, caseSensitive), "<");
                    if (name == "min" ? c < 0 : c > 0) best = item;
                }
                return best;
            }
            case "sort":
            {
                a.Check(name, 3, "reverse", "case_sensitive", "attribute");
                bool reverse = a.Get(0, "reverse", false).IsTruthy;
                bool caseSensitive = a.Get(1, "case_sensitive", false).IsTruthy;
                var attribute = a.Get(2, "attribute", Value.None);
                var items = Operators.Iterate(v);
                r.CountIterations(items.Count);
                return Value.FromList(StableSort(items, x => SortKey(x, attribute, caseSensitive), reverse));
            }
            case "dictsort":
            {
                a.Check(name, 3, "case_sensitive", "by", "reverse");
                if (v.Kind != ValueKind.Dict) throw new TemplateRuntimeError("You can only sort by either \"key\" or \"value\"");
                bool caseSensitive = a.Get(0, "case_sensitive", false).IsTruthy;
                var by = PyText.Str(a.Get(1, "by", "key"));
                int index = by switch
                {
                    "key" => 0,
                    "value" => 1,
                    _ => throw new TemplateRuntimeError("You can only sort by either \"key\" or \"value\""),
                };
                bool reverse = a.Get(2, "reverse", false).IsTruthy;
                var pairs = Methods.Items(v.AsDict).AsList;
                r.CountIterations(pairs.Count);
                return Value.FromList(StableSort(pairs, p => CaseKey(p.AsList[index], caseSensitive), reverse));
            }
            case "unique":
            {
                a.Check(name, 2, "case_sensitive", "attribute");
                bool caseSensitive = a.Get(0, "case_sensitive", false).IsTruthy;
                var attribute = a.Get(1, "attribute", Value.None);
                var seen = new HashSet<Value>(ValueKeyComparer.Instance);
                var result = new List<Value>();
                foreach (var item in Operators.Iterate(v))
                {
                    r.CountIterations();
                    if (seen.Add(SortKey(item, attribute, caseSensitive))) result.Add(item);
                }
                return Value.FromList(result);
            }
            case "map":
                return Map(r, v, a);
            case "select":
            case "reject":
            case "selectattr":
            case "rejectattr":
                return Select(r, name, v, a);
            case "attr":
                a.Check(name, 1, "name");
                return Methods.GetAttribute(v, PyText.Str(a.Get(0, "name", Value.EmptyString)));
            case "batch":
            {
                a.Check(name, 2, "linecount", "fill_with");
                long size = a.Get(0, "linecount", Value.None) is { IsInteger: true } n ? n.AsInt : throw new TemplateRuntimeError("batch() needs an integer line count");
                if (size <= 0) throw new TemplateRuntimeError("batch() line count must be positive");
                var fill = a.Get(1, "fill_with", Value.None);
                bool fillGiven = a.Has(1, "fill_with") && !fill.IsNone;
                var items = Operators.Iterate(v);
                var batches = new List<Value>();
                for (int i = 0; i < items.Count; i += (int)Math.Min(size, int.MaxValue))
                {
                    var chunk = items.Skip(i).Take((int)Math.Min(size, int.MaxValue)).ToList();
                    if (fillGiven) while (chunk.Count < size) chunk.Add(fill);
                    batches.Add(Value.FromList(chunk));
                }
                return Value.FromList(batches);
            }
            default:
                throw new TemplateRuntimeError($"the '{name}' filter is not supported by Attune's chat-template engine");
        }
    }

    static Value Length(Value v) => v.Kind switch
    {
        ValueKind.String => PyText.Length(v.AsString),
        ValueKind.List or ValueKind.Tuple => v.AsList.Count,
        ValueKind.Dict => v.AsDict.Count,
        ValueKind.Undefined => 0L,
        ValueKind.Object when v.AsObject is Namespace ns => ns.Attributes.Count,
        _ => throw new TemplateRuntimeError($"object of type '{v.TypeName}' has no len()"),
    };

    /// <summary>Jinja's attribute path for <c>attribute=</c> arguments: <c>"a.b"</c>, with digits meaning list indices.</summary>
    static Value GetPath(Value item, Value attribute)
    {
        if (attribute.IsInteger) return Methods.GetItem(item, attribute);
        foreach (var part in PyText.Str(attribute).Split('.'))
        {
            item = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long i)
                ? Methods.GetItem(item, i) : Methods.GetItem(item, part);
        }
        return item;
    }

    /// <summary>Jinja sorts strings case-insensitively unless told otherwise.</summary>
    static Value CaseKey(Value v, bool caseSensitive) => !caseSensitive && v.IsString ? v.AsString.ToLowerInvariant() : v;

    static Value SortKey(Value item, Value attribute, bool caseSensitive) =>
        CaseKey(attribute.IsNone ? item : GetPath(item, attribute), caseSensitive);

    static List<Value> StableSort(List<Value> items, Func<Value, Value> key, bool reverse) =>
        Operators.StableOrder(items.Select(key).ToList(), reverse).Select(i => items[i]).ToList();

    /// <summary>Jinja's indent: lines after the first (and blank lines only if asked) get the prefix.</summary>
    static string Indent(string s, Value width, bool first, bool blank, int max)
    {
        string prefix = width.IsString ? width.AsString
            : width.IsInteger ? new string(' ', (int)Math.Clamp(width.AsInt, 0, 10_000))
            : throw new TemplateRuntimeError("indent width must be an integer or a string");
        var lines = PyText.SplitLines(s + "\n");
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            if (i > 0) sb.Append('\n');
            bool indent = i == 0 ? first : (blank || lines[i].Length > 0);
            if (indent) sb.Append(prefix);
            sb.Append(lines[i]);
            Operators.CheckLength(sb.Length, max);
        }
        return sb.ToString();
    }

    static string Truncate(string s, CallArguments a)
    {
        long length = a.Get(0, "length", 255L) is { IsInteger: true } l ? l.AsInt : throw new TemplateRuntimeError("truncate length must be an integer");
        bool killwords = a.Get(1, "killwords", false).IsTruthy;
        var end = PyText.Str(a.Get(2, "end", "..."));
        var leewayValue = a.Get(3, "leeway", Value.None);
        long leeway = leewayValue.IsNone ? 5 : leewayValue.IsInteger ? leewayValue.AsInt : 5;
        if (length < end.Length) throw new TemplateRuntimeError($"expected length >= {end.Length}, got {length}");
        if (leeway < 0) throw new TemplateRuntimeError($"expected leeway >= 0, got {leeway}");
        if (PyText.Length(s) <= length + leeway) return s;
        var head = PyText.Slice(s, null, length - end.Length, null);
        if (killwords) return head + end;
        int space = head.LastIndexOf(' ');
        return (space < 0 ? head : head[..space]) + end;
    }

    static Value ToJson(Value v, CallArguments a, int max)
    {
        a.Check("tojson", 4, "ensure_ascii", "indent", "separators", "sort_keys");
        bool ensureAscii = a.Get(0, "ensure_ascii", false).IsTruthy;
        var indentValue = a.Get(1, "indent", Value.None);
        string? indent = indentValue.Kind switch
        {
            ValueKind.None => null,
            ValueKind.String => indentValue.AsString,
            ValueKind.Int => new string(' ', (int)Math.Clamp(indentValue.AsInt, 0, 10_000)),
            _ => throw new TemplateRuntimeError("tojson indent must be an integer, a string or None"),
        };
        var separators = a.Get(2, "separators", Value.None);
        string item = indent is null ? ", " : ",", key = ": ";
        if (!separators.IsNone)
        {
            if (!separators.IsSequence || separators.AsList.Count != 2 || !separators.AsList[0].IsString || !separators.AsList[1].IsString)
                throw new TemplateRuntimeError("tojson separators must be a pair of strings (item_separator, key_separator)");
            item = separators.AsList[0].AsString;
            key = separators.AsList[1].AsString;
        }
        bool sortKeys = a.Get(3, "sort_keys", false).IsTruthy;
        return TemplateJson.Dumps(v, new TemplateJson.DumpOptions(indent, item, key, ensureAscii, sortKeys), max);
    }

    /// <summary>Jinja's int filter: int(value), else int(float(value)), else the default.</summary>
    static Value ToInt(Value v, Value fallback, Value baseValue)
    {
        switch (v.Kind)
        {
            case ValueKind.Int:
            case ValueKind.Bool:
                return v.AsInt;
            case ValueKind.Float:
                return FloatToInt(v.AsFloat);
            case ValueKind.String:
            {
                int numberBase = baseValue.IsInteger ? (int)baseValue.AsInt : 10;
                var s = v.AsString.Trim().Replace("_", "");
                if (numberBase == 10 && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long i)) return i;
                if (numberBase == 16)
                {
                    var hex = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s[2..] : s;
                    if (long.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long h)) return h;
                }
                if (numberBase is 2 or 8)
                {
                    var digits = s.Length > 2 && s[0] == '0' && char.ToLowerInvariant(s[1]) == (numberBase == 2 ? 'b' : 'o') ? s[2..] : s;
                    try { return Convert.ToInt64(digits, numberBase); } catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { }
                }
                if (TryParseFloat(v.AsString, out double d) && !double.IsNaN(d) && !double.IsInfinity(d)) return FloatToInt(d);
                return fallback;
            }
            default:
                return fallback;
        }
    }

    static Value FloatToInt(double d)
    {
        if (double.IsNaN(d) || double.IsInfinity(d) || Math.Abs(d) >= 9.2e18)
            throw new TemplateRuntimeError("cannot convert float to integer");
        return (long)Math.Truncate(d);
    }

    static Value ToFloat(Value v, Value fallback) => v.Kind switch
    {
        ValueKind.Float => v,
        ValueKind.Int or ValueKind.Bool => (double)v.AsInt,
        ValueKind.String when TryParseFloat(v.AsString, out double d) => d,
        _ => fallback,
    };

    /// <summary>Python's float(str): surrounding whitespace, underscores between digits, inf and nan.</summary>
    static bool TryParseFloat(string s, out double d)
    {
        var t = s.Trim();
        switch (t.ToLowerInvariant())
        {
            case "inf" or "+inf" or "infinity" or "+infinity": d = double.PositiveInfinity; return true;
            case "-inf" or "-infinity": d = double.NegativeInfinity; return true;
            case "nan" or "+nan" or "-nan": d = double.NaN; return true;
        }
        return double.TryParse(t.Replace("_", ""), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out d) && t.Length > 0;
    }

    /// <summary>
    /// Jinja's round: 'common' is Python's round() (half to even, on the exact binary value), 'floor'
    /// and 'ceil' scale by 10**precision. The result is a float, except for an int rounded by 'common'.
    /// </summary>
    static Value Round(Value v, Value precisionValue, string method)
    {
        if (method is not ("common" or "floor" or "ceil")) throw new TemplateRuntimeError("method must be common, ceil or floor");
        if (!v.IsNumber) throw new TemplateRuntimeError($"type {v.TypeName} doesn't define __round__ method");
        long precision = precisionValue.IsInteger ? precisionValue.AsInt : throw new TemplateRuntimeError("round precision must be an integer");
        if (method == "common")
        {
            if (v.IsInteger)
            {
                if (precision >= 0) return v.AsInt;
                long scale = (long)Math.Pow(10, Math.Min(-precision, 18));
                return (long)Math.Round((decimal)v.AsInt / scale, MidpointRounding.ToEven) * scale;
            }
            double d = v.AsFloat;
            if (double.IsNaN(d) || double.IsInfinity(d)) return d;
            if (precision > 300) return d;
            if (precision < -308) return 0.0 * d;
            return RoundHalfEven(d, (int)precision);
        }
        double factor = Math.Pow(10, precision);
        double scaled = v.AsDouble * factor;
        return (method == "floor" ? Math.Floor(scaled) : Math.Ceiling(scaled)) / factor;
    }

    /// <summary>Round half to even on the exact decimal value of <paramref name="d"/>, as Python's round(x, n).</summary>
    static double RoundHalfEven(double d, int digits)
    {
        if (digits < 0)
        {
            double factor = Math.Pow(10, -digits);
            return Math.Round(d / factor, MidpointRounding.ToEven) * factor;
        }
        // Doubles this large are integers; past 27 digits decimal cannot hold the scaled value.
        if (Math.Abs(d) >= 4.5e15 || digits > 27) return d;
        // "F" formatting gives the exact digits of the binary value (25 beyond the cut decide the rounding).
        var s = Math.Abs(d).ToString("F" + (digits + 25), CultureInfo.InvariantCulture);
        int cut = s.IndexOf('.') + 1 + digits;
        string rest = s[cut..];
        var kept = decimal.Parse(s[..cut].TrimEnd('.'), CultureInfo.InvariantCulture);
        int lastDigit = digits == 0 ? (int)(kept % 10) : s[cut - 1] - '0';
        bool above = rest[0] > '5' || (rest[0] == '5' && rest.AsSpan(1).ContainsAnyExcept('0'));
        bool tie = rest[0] == '5' && !rest.AsSpan(1).ContainsAnyExcept('0');
        if (above || (tie && lastDigit % 2 == 1)) kept += digits == 0 ? 1m : 1m / (decimal)Math.Pow(10, digits);
        return (double)(d < 0 ? -kept : kept);
    }

    static Value Map(Renderer r, Value v, CallArguments a)
    {
        var items = Operators.Iterate(v);
        r.CountIterations(items.Count);
        var result = new List<Value>(items.Count);
        if (a.Count == 0 && a.Keywords is not null && a.Keywords.Any(k => k.Key == "attribute"))
        {
            a.Check("map", 0, "attribute", "default");
            var attribute = a.Get(-1, "attribute", Value.None);
            bool hasDefault = a.Has(-1, "default");
            var fallback = a.Get(-1, "default", Value.None);
            foreach (var item in items)
            {
                var x = GetPath(item, attribute);
                result.Add(x.IsUndefined && hasDefault ? fallback : x);
            }
            return Value.FromList(result);
        }
        if (a.Count == 0) throw new TemplateRuntimeError("map requires a filter name or attribute=");
        var filter = PyText.Str(a.Positional[0]);
        if (!IsFilter(filter)) throw new TemplateRuntimeError($"no filter named '{filter}'");
        var rest = new CallArguments(a.Positional.Skip(1).ToList(), a.Keywords);
        foreach (var item in items) result.Add(Apply(r, filter, item, rest));
        return Value.FromList(result);
    }

    static Value Select(Renderer r, string name, Value v, CallArguments a)
    {
        bool byAttribute = name.EndsWith("attr");
        bool keep = name.StartsWith("select");
        var items = Operators.Iterate(v);
        r.CountIterations(items.Count);
        int next = 0;
        Value attribute = Value.None;
        if (byAttribute)
        {
            if (a.Count == 0) throw new TemplateRuntimeError($"{name}() needs an attribute name");
            attribute = a.Positional[next++];
        }
        string? test = a.Count > next ? PyText.Str(a.Positional[next++]) : null;
        if (test is not null && !IsTest(test)) throw new TemplateRuntimeError($"no test named '{test}'");
        var testArgs = new CallArguments(a.Positional.Skip(next).ToList(), a.Keywords);
        var result = new List<Value>();
        foreach (var item in items)
        {
            var x = byAttribute ? GetPath(item, attribute) : item;
            bool passed = test is null ? x.IsTruthy : Test(r, test, x, testArgs);
            if (passed == keep) result.Add(item);
        }
        return Value.FromList(result);
    }

    public static bool Test(Renderer r, string name, Value v, CallArguments a)
    {
        Value Arg() => a.Count > 0 ? a.Positional[0] : throw new TemplateRuntimeError($"test '{name}' needs an argument");
        switch (name)
        {
            case "defined": return !v.IsUndefined;
            case "undefined": return v.IsUndefined;
            case "none": return v.IsNone;
            case "boolean": return v.Kind == ValueKind.Bool;
            case "true": return v.Kind == ValueKind.Bool && v.AsBool;
            case "false": return v.Kind == ValueKind.Bool && !v.AsBool;
            case "integer": return v.Kind == ValueKind.Int;
            case "float": return v.Kind == ValueKind.Float;
            case "number": return v.IsNumber;
            case "string": return v.IsString;
            case "mapping": return v.Kind == ValueKind.Dict;
            // Jinja's Undefined can be iterated (as empty) and has a length, so it passes these two.
            case "iterable": return v.Kind is ValueKind.String or ValueKind.List or ValueKind.Tuple or ValueKind.Dict or ValueKind.Undefined;
            case "sequence": return v.Kind is ValueKind.String or ValueKind.List or ValueKind.Tuple or ValueKind.Dict or ValueKind.Undefined;
            case "callable": return v.Kind == ValueKind.Callable;
            case "escaped": return false;
            case "lower": return PyText.IsAllCase(PyText.Str(v), upper: false);
            case "upper": return PyText.IsAllCase(PyText.Str(v), upper: true);
            case "odd": return Operators.PyEquals(Operators.Modulo(v, 2L, r.MaxLength), 1L);
            case "even": return Operators.PyEquals(Operators.Modulo(v, 2L, r.MaxLength), 0L);
            case "divisibleby": return Operators.PyEquals(Operators.Modulo(v, Arg(), r.MaxLength), 0L);
            case "eq" or "equalto" or "==": return Operators.PyEquals(v, Arg());
            case "ne" or "!=": return !Operators.PyEquals(v, Arg());
            case "lt" or "lessthan" or "<": return Operators.Compare(v, Arg(), "<") < 0;
            case "le" or "<=": return Operators.Compare(v, Arg(), "<=") <= 0;
            case "gt" or "greaterthan" or ">": return Operators.Compare(v, Arg(), ">") > 0;
            case "ge" or ">=": return Operators.Compare(v, Arg(), ">=") >= 0;
            case "in": return Operators.Contains(Arg(), v);
            case "sameas":
            {
                var other = Arg();
                if (v.Kind != other.Kind) return false;
                return v.Kind switch
                {
                    ValueKind.None or ValueKind.Undefined => true,
                    ValueKind.Bool or ValueKind.Int => v.AsInt == other.AsInt,
                    ValueKind.Float => v.AsFloat.Equals(other.AsFloat),
                    ValueKind.String => ReferenceEquals(v.AsString, other.AsString),
                    ValueKind.List or ValueKind.Tuple => ReferenceEquals(v.AsList, other.AsList),
                    ValueKind.Dict => ReferenceEquals(v.AsDict, other.AsDict),
                    _ => ReferenceEquals(v.AsObjectOrCallable(), other.AsObjectOrCallable()),
                };
            }
            case "filter": return v.IsString && IsFilter(v.AsString);
            case "test": return v.IsString && IsTest(v.AsString);
            default:
                throw new TemplateRuntimeError($"no test named '{name}'");
        }
    }
}
