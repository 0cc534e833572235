using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Text.Templates;

/// <summary>
/// JSON in and out of templates. In: messages and tools arrive as JSON and become template values
/// the way Python's <c>json.loads</c> makes them (<c>1</c> an int, <c>1.0</c> a float). Out: the
/// <c>tojson</c> filter as transformers defines it, <c>json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)</c>, byte for byte.
/// </summary>
public static class TemplateJson
{
    /// <summary>The template value of a JSON value (null and a missing node are both None).</summary>
    public static Value FromJson(JsonNode? node) => FromJson(node, 0);

    static Value FromJson(JsonNode? node, int depth)
    {
        if (depth > PyText.MaxNesting) throw new ArgumentException("JSON nested too deeply for a template value");
        switch (node)
        {
            case null:
                return Value.None;
            case JsonObject o:
            {
                var dict = new Dict(o.Count);
                foreach (var (k, v) in o) dict[Value.FromString(k)] = FromJson(v, depth + 1);
                return Value.FromDict(dict);
            }
            case JsonArray a:
            {
                var list = new List<Value>(a.Count);
                foreach (var item in a) list.Add(FromJson(item, depth + 1));
                return Value.FromList(list);
            }
            case JsonValue v:
                switch (v.GetValueKind())
                {
                    case JsonValueKind.String: return Value.FromString(v.GetValue<string>());
                    case JsonValueKind.True: return Value.True;
                    case JsonValueKind.False: return Value.False;
                    case JsonValueKind.Null: return Value.None;
                    case JsonValueKind.Number:
                        // "1" is an int and "1.0" or "1e3" a float, as json.loads has it; so is a C# long vs double.
                        if (v.TryGetValue<long>(out var l)) return Value.FromInt(l);
                        if (v.TryGetValue<int>(out var i)) return Value.FromInt(i);
                        return Value.FromFloat(v.GetValue<double>());
                    default:
                        return FromJson(JsonNode.Parse(v.ToJsonString()), depth + 1);
                }
            default:
                throw new ArgumentException($"unexpected JSON node {node.GetType().Name}");
        }
    }

    /// <summary>The options of Python's <c>json.dumps</c> that transformers' <c>tojson</c> passes on.</summary>
    internal sealed record DumpOptions(string? Indent, string ItemSeparator, string KeySeparator, bool EnsureAscii, bool SortKeys)
    {
        public static readonly DumpOptions Default = new(null, ", ", ": ", false, false);
    }

    /// <summary>Python's <c>json.dumps(value)</c> of a JSON value (", " and ": " between items, non-ASCII escaped when <paramref name="ensureAscii"/>), as Python tools write their files.</summary>
    public static string DumpsPython(JsonNode? value, bool ensureAscii) =>
        Dumps(FromJson(value), DumpOptions.Default with { EnsureAscii = ensureAscii }, int.MaxValue);

    /// <summary>Python's <c>json.dumps(value, ...)</c>.</summary>
    internal static string Dumps(Value value, DumpOptions options, int maxLength)
    {
        var sb = new StringBuilder();
        Write(sb, value, options, 0, maxLength);
        return sb.ToString();
    }

    static void Write(StringBuilder sb, Value v, DumpOptions o, int depth, int maxLength)
    {
        if (depth > PyText.MaxNesting) throw new TemplateRuntimeError("value nested too deeply for tojson");
        if (sb.Length > maxLength) Operators.CheckLength(sb.Length, maxLength);
        switch (v.Kind)
        {
            case ValueKind.None: sb.Append("null"); break;
            case ValueKind.Bool: sb.Append(v.AsBool ? "true" : "false"); break;
            case ValueKind.Int: sb.Append(v.AsInt.ToString(CultureInfo.InvariantCulture)); break;
            case ValueKind.Float: sb.Append(FloatJson(v.AsFloat)); break;
            case ValueKind.String: WriteString(sb, v.AsString, o.EnsureAscii); break;
            case ValueKind.List:
            case ValueKind.Tuple:
            {
                var items = v.AsList;
                if (items.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(o.ItemSeparator);
                    NewLine(sb, o, depth + 1);
                    Write(sb, items[i], o, depth + 1, maxLength);
                }
                NewLine(sb, o, depth);
                sb.Append(']');
                break;
            }
            case ValueKind.Dict:
            {
                var dict = v.AsDict;
                if (dict.Count == 0) { sb.Append("{}"); break; }
                IEnumerable<KeyValuePair<Value, Value>> entries = dict;
                if (o.SortKeys)
                {
                    var pairs = dict.ToList();
                    entries = Operators.StableOrder(pairs.ConvertAll(kv => kv.Key), reverse: false).Select(i => pairs[i]);
                }
                sb.Append('{');
                bool first = true;
                foreach (var (k, item) in entries)
                {
                    if (!first) sb.Append(o.ItemSeparator);
                    first = false;
                    NewLine(sb, o, depth + 1);
                    WriteString(sb, KeyString(k), o.EnsureAscii);
                    sb.Append(o.KeySeparator);
                    Write(sb, item, o, depth + 1, maxLength);
                }
                NewLine(sb, o, depth);
                sb.Append('}');
                break;
            }
            default:
                throw new TemplateRuntimeError($"Object of type {v.TypeName} is not JSON serializable");
        }
    }

    static void NewLine(StringBuilder sb, DumpOptions o, int depth)
    {
        if (o.Indent is null) return;
        sb.Append('\n');
        for (int i = 0; i < depth; i++) sb.Append(o.Indent);
    }

    /// <summary>json.dumps turns int, float, bool and None keys into strings; other keys are an error.</summary>
    static string KeyString(Value k) => k.Kind switch
    {
        ValueKind.String => k.AsString,
        ValueKind.Bool => k.AsBool ? "true" : "false",
        ValueKind.None => "null",
        ValueKind.Int => k.AsInt.ToString(CultureInfo.InvariantCulture),
        ValueKind.Float => FloatJson(k.AsFloat),
        _ => throw new TemplateRuntimeError($"keys must be str, int, float, bool or None, not {k.TypeName}"),
    };

    static string FloatJson(double d) =>
        double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyText.FloatRepr(d);

    static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7E)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
