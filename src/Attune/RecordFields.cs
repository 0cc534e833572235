using System.Text.Json.Nodes;

namespace Attune;

/// <summary>Typed fields of one JSON Lines record, with errors naming the source and the 1-based line.</summary>
public readonly record struct RecordFields(JsonObject Record, string Source, int Line)
{
    public AttuneException Error(string problem) => new(Source, $"line {Line}", problem);

    public string RequiredString(string field) =>
        Record[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Error($"field \"{field}\" must be a string");

    /// <summary>A string field that may be absent (<paramref name="fallback"/>).</summary>
    public string OptionalString(string field, string fallback) => Record[field] is null ? fallback : RequiredString(field);

    public bool OptionalBool(string field, bool fallback) => Record[field] switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw Error($"field \"{field}\" must be true or false"),
    };

    public JsonArray RequiredArray(string field, string what) => Record[field] as JsonArray ?? throw Error($"field \"{field}\" must be {what}");

    public JsonArray? OptionalArray(string field) => Record[field] switch
    {
        null => null,
        JsonArray a => a,
        _ => throw Error($"field \"{field}\" must be an array or null"),
    };

    public int[] RequiredInts(string field)
    {
        var arr = RequiredArray(field, "an array of integers");
        var values = new int[arr.Count];
        for (int i = 0; i < arr.Count; i++)
            values[i] = arr[i] is JsonValue v && v.TryGetValue<int>(out var x) ? x : throw Error($"{field}[{i}] is not an integer");
        return values;
    }
}
