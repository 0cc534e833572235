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

    /// <summary>Maps each record of stdin to one record on stdout (the commands that transform records).</summary>
    public static void Transform(CliIO io, Func<RecordFields, JsonObject> map)
    {
        foreach (var (line, rec) in Read(io.In)) Write(io.Out, map(new RecordFields(rec, "<stdin>", line)));
    }

    public static void Write(TextWriter w, JsonObject o) => w.WriteLine(o.ToJsonString(Compact));
}
