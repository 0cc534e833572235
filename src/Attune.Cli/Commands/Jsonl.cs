using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Cli.Commands;

/// <summary>JSONL in on stdin, out on stdout: one record per line, errors naming the line.</summary>
public static class Jsonl
{
    public static readonly JsonSerializerOptions Compact = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };

    /// <summary>Each non-blank line parsed as a JSON object, with its 1-based line number.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> Read(TextReader reader, string source = "<stdin>") =>
        Attune.Formats.JsonLines.Read(reader, source);

    public static string RequiredString(JsonObject o, string field, int line, string source = "<stdin>") =>
        o[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new AttuneException(source, $"line {line}", $"field \"{field}\" must be a string");

    public static void Write(TextWriter w, JsonObject o) => w.WriteLine(o.ToJsonString(Compact));
}
