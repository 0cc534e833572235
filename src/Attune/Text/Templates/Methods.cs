using System.Text;

namespace Attune.Text.Templates;

/// <summary>
/// What <c>obj.name</c>, <c>obj[key]</c> and <c>obj.method(...)</c> reach: dict items, and the
/// methods of str, list and dict that do not modify anything (Jinja's immutable sandbox, which
/// transformers uses). Nothing else is reachable: no attribute starting with <c>_</c>, no type, no
/// module, no reflection; a value can only show what it holds.
/// </summary>
static class Methods
{
    static readonly HashSet<string> StringMethods =
    [
        "capitalize", "casefold", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
        "isdigit", "isnumeric", "islower", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    ];

    static readonly HashSet<string> DictMethods = ["get", "items", "keys", "values", "copy"];
    static readonly HashSet<string> ListMethods = ["count", "index", "copy"];

    /// <summary>Methods that would modify a value; the sandbox refuses them, with Jinja's message.</summary>
    static readonly HashSet<string> Modifying =
    [
        "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem",
        "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
    ];

    public static bool Has(Value self, string name) => self.Kind switch
    {
        ValueKind.String => StringMethods.Contains(name),
        ValueKind.Dict => DictMethods.Contains(name),
        ValueKind.List or ValueKind.Tuple => ListMethods.Contains(name),
        _ => false,
    };

    static string TypeRepr(Value v) => v.IsNone ? "None" : $"{v.TypeName} object";

    /// <summary><c>obj.name</c>: a method first (as Python's getattr), then a dict item.</summary>
    public static Value GetAttribute(Value obj, string name)
    {
        if (obj.IsUndefined) throw Operators.UndefinedError(obj);
        if (name.StartsWith('_'))
            return Value.UndefinedBecause($"access to attribute '{name}' of '{obj.TypeName}' object is unsafe.");
        if (Has(obj, name)) return Value.FromCallable(new BoundMethod(obj, name));
        switch (obj.Kind)
        {
            case ValueKind.Dict:
                if (obj.AsDict.TryGet(name, out var item)) return item;
                break;
            case ValueKind.Object:
                if (obj.AsObject.TryGetAttribute(name, out var attr)) return attr;
                break;
        }
        if (Modifying.Contains(name) && obj.Kind is ValueKind.List or ValueKind.Dict)
            return Value.UndefinedBecause($"access to attribute '{name}' of '{obj.TypeName}' object is unsafe.");
        return Value.UndefinedBecause($"'{TypeRepr(obj)}' has no attribute '{name}'");
    }

    /// <summary><c>obj[key]</c>: an item first (as Jinja's getitem), then for a string key an attribute.</summary>
    public static Value GetItem(Value obj, Value key)
    {
        switch (obj.Kind)
        {
            case ValueKind.Undefined:
                throw Operators.UndefinedError(obj);
            case ValueKind.Dict:
                if (key.Kind is not (ValueKind.List or ValueKind.Dict) && obj.AsDict.TryGetValue(key, out var v)) return v;
                break;
            case ValueKind.List:
            case ValueKind.Tuple:
                if (key.IsInteger)
                {
                    var items = obj.AsList;
                    long i = key.AsInt < 0 ? key.AsInt + items.Count : key.AsInt;
                    if (i >= 0 && i < items.Count) return items[(int)i];
                    return Value.UndefinedBecause($"{TypeRepr(obj)} has no element {key.AsInt}");
                }
                break;
            case ValueKind.String:
                if (key.IsInteger)
                    return PyText.TryIndex(obj.AsString, key.AsInt, out var ch) ? ch
                        : Value.UndefinedBecause($"{TypeRepr(obj)} has no element {key.AsInt}");
                break;
        }
        if (key.IsString) return GetAttribute(obj, key.AsString);
        return Value.UndefinedBecause($"{TypeRepr(obj)} has no element {PyText.Repr(key)}");
    }

    public static Value Call(Renderer r, Value self, string name, CallArguments args) => self.Kind switch
    {
        ValueKind.String => CallString(r, self.AsString, name, args),
        ValueKind.Dict => CallDict(self.AsDict, name, args),
        _ => CallList(self, name, args),
    };

    static string? OptionalString(CallArguments args, int index, string name, string function)
    {
        var v = args.Get(index, name, Value.None);
        if (v.IsNone) return null;
        if (!v.IsString) throw new TemplateRuntimeError($"{function}() argument must be str or None, not {v.TypeName}");
        return v.AsString;
    }

    static string RequiredString(CallArguments args, int index, string name, string function)
    {
        if (!args.Has(index, name)) throw new TemplateRuntimeError($"{function}() takes at least {index + 1} argument{(index == 0 ? "" : "s")} (0 given)");
        var v = args.Get(index, name, Value.None);
        if (!v.IsString) throw new TemplateRuntimeError($"{function}() argument {index + 1} must be str, not {v.TypeName}");
        return v.AsString;
    }

    static long OptionalInt(CallArguments args, int index, string name, long fallback, string function)
    {
        var v = args.Get(index, name, Value.None);
        if (v.IsNone) return fallback;
        if (!v.IsInteger) throw new TemplateRuntimeError($"{function}(): '{v.TypeName}' object cannot be interpreted as an integer");
        return v.AsInt;
    }

    /// <summary>The part of <paramref name="s"/> that <c>[start:end]</c> arguments select, and where it starts (UTF-16 offset).</summary>
    static (string Part, int Offset) Window(string s, CallArguments args, int index, string function)
    {
        if (!args.Has(index, "start") && !args.Has(index + 1, "end")) return (s, 0);
        long? start = args.Has(index, "start") ? NullableInt(args.Get(index, "start", Value.None), function) : null;
        long? end = args.Has(index + 1, "end") ? NullableInt(args.Get(index + 1, "end", Value.None), function) : null;
        var cps = PyText.CodePoints(s);
        var (from, count, _) = Operators.SliceIndices(cps.Count, start, end, 1);
        int offset = 0;
        for (int i = 0; i < from; i++) offset += cps[i].Length;
        return (string.Concat(cps.Skip(from).Take(count)), offset);
    }

    static long? NullableInt(Value v, string function) =>
        v.IsNone ? null : v.IsInteger ? v.AsInt : throw new TemplateRuntimeError($"{function}(): slice indices must be integers or None");

    static int CodePointIndex(string s, int utf16Index) => utf16Index < 0 ? -1 : PyText.Length(s[..utf16Index]);

    static List<string> Affixes(Value v, string function)
    {
        if (v.IsString) return [v.AsString];
        if (v.Kind == ValueKind.Tuple)
            return v.AsList.Select(x => x.IsString ? x.AsString
                : throw new TemplateRuntimeError($"tuple for {function} must only contain str, not {x.TypeName}")).ToList();
        throw new TemplateRuntimeError($"{function} first arg must be str or a tuple of str, not {v.TypeName}");
    }

    static Value CallString(Renderer r, string s, string name, CallArguments args)
    {
        int max = r.MaxLength;
        switch (name)
        {
            case "strip": args.Check(name, 1, "chars"); return PyText.Strip(s, OptionalString(args, 0, "chars", name), true, true);
            case "lstrip": args.Check(name, 1, "chars"); return PyText.Strip(s, OptionalString(args, 0, "chars", name), true, false);
            case "rstrip": args.Check(name, 1, "chars"); return PyText.Strip(s, OptionalString(args, 0, "chars", name), false, true);
            case "upper": args.Check(name, 0); return s.ToUpperInvariant();
            case "lower": args.Check(name, 0); return s.ToLowerInvariant();
            case "casefold": args.Check(name, 0); return s.ToLowerInvariant();
            case "swapcase":
                args.Check(name, 0);
                return string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.IsLower(c) ? char.ToUpperInvariant(c) : c));
            case "title": args.Check(name, 0); return PyText.Title(s);
            case "capitalize": args.Check(name, 0); return PyText.Capitalize(s);
            case "startswith":
            case "endswith":
            {
                args.Check(name, 3, "start", "end");
                if (args.Count == 0) throw new TemplateRuntimeError($"{name}() takes at least 1 argument (0 given)");
                var (part, _) = Window(s, args, 1, name);
                foreach (var a in Affixes(args.Positional[0], name))
                    if (name == "startswith" ? part.StartsWith(a, StringComparison.Ordinal) : part.EndsWith(a, StringComparison.Ordinal)) return true;
                return false;
            }
            case "split":
            case "rsplit":
            {
                args.Check(name, 2, "sep", "maxsplit");
                var sep = OptionalString(args, 0, "sep", name);
                long maxsplit = OptionalInt(args, 1, "maxsplit", -1, name);
                return Value.FromList(name == "split" ? PyText.Split(s, sep, maxsplit) : PyText.RSplit(s, sep, maxsplit));
            }
            case "splitlines":
            {
                args.Check(name, 1, "keepends");
                bool keep = args.Get(0, "keepends", false).IsTruthy;
                return Value.FromList(PyText.SplitLines(s, keep).ConvertAll(Value.FromString));
            }
            case "replace":
            {
                args.Check(name, 3, "count");
                var old = RequiredString(args, 0, "old", name);
                var @new = RequiredString(args, 1, "new", name);
                return Replace(s, old, @new, OptionalInt(args, 2, "count", -1, name), max);
            }
            case "find":
            case "rfind":
            case "index":
            case "rindex":
            {
                args.Check(name, 3);
                var sub = RequiredString(args, 0, "sub", name);
                var (part, offset) = Window(s, args, 1, name);
                int at = name[0] == 'r' ? part.LastIndexOf(sub, StringComparison.Ordinal) : part.IndexOf(sub, StringComparison.Ordinal);
                if (at < 0 && name.EndsWith("index")) throw new TemplateRuntimeError("substring not found");
                return at < 0 ? -1L : CodePointIndex(s, offset + at);
            }
            case "count":
            {
                args.Check(name, 3);
                var sub = RequiredString(args, 0, "sub", name);
                var (part, _) = Window(s, args, 1, name);
                if (sub.Length == 0) return PyText.Length(part) + 1;
                long n = 0;
                for (int i = part.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = part.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
                return n;
            }
            case "join":
            {
                args.Check(name, 1);
                if (args.Count == 0) throw new TemplateRuntimeError("join() takes exactly one argument (0 given)");
                var items = Operators.Iterate(args.Positional[0]);
                var sb = new StringBuilder();
                for (int i = 0; i < items.Count; i++)
                {
                    if (!items[i].IsString) throw new TemplateRuntimeError($"sequence item {i}: expected str instance, {items[i].TypeName} found");
                    if (i > 0) sb.Append(s);
                    sb.Append(items[i].AsString);
                    Operators.CheckLength(sb.Length, max);
                }
                return sb.ToString();
            }
            case "format":
                return PyFormat.Format(s, args, max);
            case "center":
            case "ljust":
            case "rjust":
            {
                args.Check(name, 2);
                long width = OptionalInt(args, 0, "width", 0, name);
                var fill = OptionalString(args, 1, "fillchar", name) ?? " ";
                if (fill.Length != 1) throw new TemplateRuntimeError("The fill character must be exactly one character long");
                Operators.CheckLength(width, max);
                int pad = (int)width - PyText.Length(s);
                if (pad <= 0) return s;
                // Python's center puts the odd fill character on the left when the width is odd
                int left = pad / 2 + (pad & (int)width & 1);
                return name switch
                {
                    "ljust" => s + new string(fill[0], pad),
                    "rjust" => new string(fill[0], pad) + s,
                    _ => new string(fill[0], left) + s + new string(fill[0], pad - left),
                };
            }
            case "zfill":
            {
                args.Check(name, 1);
                long width = OptionalInt(args, 0, "width", 0, name);
                Operators.CheckLength(width, max);
                int pad = (int)width - s.Length;
                if (pad <= 0) return s;
                int sign = s.Length > 0 && s[0] is '+' or '-' ? 1 : 0;
                return s[..sign] + new string('0', pad) + s[sign..];
            }
            case "removeprefix":
            {
                args.Check(name, 1);
                var p = RequiredString(args, 0, "prefix", name);
                return s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s;
            }
            case "removesuffix":
            {
                args.Check(name, 1);
                var p = RequiredString(args, 0, "suffix", name);
                return p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s;
            }
            case "partition":
            case "rpartition":
            {
                args.Check(name, 1);
                var sep = RequiredString(args, 0, "sep", name);
                if (sep.Length == 0) throw new TemplateRuntimeError("empty separator");
                int at = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                List<Value> parts = at < 0
                    ? (name == "partition" ? [s, "", ""] : ["", "", s])
                    : [s[..at], sep, s[(at + sep.Length)..]];
                return Value.FromTuple(parts);
            }
            case "isalnum": return s.Length > 0 && s.EnumerateRunes().All(c => Rune.IsLetterOrDigit(c));
            case "isalpha": return s.Length > 0 && s.EnumerateRunes().All(Rune.IsLetter);
            case "isdigit":
            case "isnumeric": return s.Length > 0 && s.EnumerateRunes().All(Rune.IsDigit);
            case "isspace": return s.Length > 0 && s.All(PyText.IsSpace);
            case "islower": return PyText.IsAllCase(s, upper: false);
            case "isupper": return PyText.IsAllCase(s, upper: true);
            case "istitle": return s.Length > 0 && PyText.Title(s) == s && s.Any(char.IsLetter);
            default:
                throw new TemplateRuntimeError($"'str' object has no attribute '{name}'");
        }
    }

    /// <summary>Python's <c>str.replace(old, new, count)</c>; an empty <paramref name="old"/> inserts between every character.</summary>
    public static string Replace(string s, string old, string @new, long count, int maxLength)
    {
        if (count == 0) return s;
        var sb = new StringBuilder();
        long done = 0;
        if (old.Length == 0)
        {
            var cps = PyText.CodePoints(s);
            foreach (var cp in cps)
            {
                if (count < 0 || done < count) { sb.Append(@new); done++; }
                sb.Append(cp);
                Operators.CheckLength(sb.Length, maxLength);
            }
            if (count < 0 || done < count) sb.Append(@new);
            Operators.CheckLength(sb.Length, maxLength);
            return sb.ToString();
        }
        int pos = 0;
        while (count < 0 || done < count)
        {
            int at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0) break;
            sb.Append(s, pos, at - pos).Append(@new);
            Operators.CheckLength(sb.Length, maxLength);
            pos = at + old.Length;
            done++;
        }
        if (done == 0) return s;
        sb.Append(s, pos, s.Length - pos);
        Operators.CheckLength(sb.Length, maxLength);
        return sb.ToString();
    }

    static Value CallDict(Dict d, string name, CallArguments args)
    {
        switch (name)
        {
            case "get":
                args.Check(name, 2);
                if (args.Count == 0) throw new TemplateRuntimeError("get expected at least 1 argument, got 0");
                var key = args.Positional[0];
                if (key.Kind is ValueKind.List or ValueKind.Dict) throw new TemplateRuntimeError($"unhashable type: '{key.TypeName}'");
                return d.TryGetValue(key, out var v) ? v : args.Count > 1 ? args.Positional[1] : Value.None;
            case "items":
                args.Check(name, 0);
                return Items(d);
            case "keys":
                args.Check(name, 0);
                return Value.FromList([.. d.Keys]);
            case "values":
                args.Check(name, 0);
                return Value.FromList([.. d.Values]);
            case "copy":
                args.Check(name, 0);
                var copy = new Dict(d.Count);
                foreach (var (k, item) in d) copy[k] = item;
                return Value.FromDict(copy);
            default:
                throw new TemplateRuntimeError($"'dict' object has no attribute '{name}'");
        }
    }

    /// <summary>A dict's items as a list of (key, value) tuples.</summary>
    public static Value Items(Dict d)
    {
        var items = new List<Value>(d.Count);
        foreach (var (k, v) in d) items.Add(Value.FromTuple([k, v]));
        return Value.FromList(items);
    }

    static Value CallList(Value self, string name, CallArguments args)
    {
        var items = self.AsList;
        switch (name)
        {
            case "count":
                args.Check(name, 1);
                if (args.Count == 0) throw new TemplateRuntimeError("count() takes exactly one argument (0 given)");
                return items.LongCount(x => Operators.PyEquals(x, args.Positional[0]));
            case "index":
                args.Check(name, 3);
                if (args.Count == 0) throw new TemplateRuntimeError("index expected at least 1 argument, got 0");
                for (int i = 0; i < items.Count; i++)
                    if (Operators.PyEquals(items[i], args.Positional[0])) return i;
                throw new TemplateRuntimeError($"{PyText.Repr(args.Positional[0])} is not in list");
            case "copy":
                args.Check(name, 0);
                return Value.FromList([.. items]);
            default:
                throw new TemplateRuntimeError($"'{self.TypeName}' object has no attribute '{name}'");
        }
    }
}
