using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Formats;

/// <summary>JSON Lines: one object per non-blank line, errors naming the source and the 1-based line.</summary>
public static class JsonLines
{
    // A repeated member would otherwise fail only when the record is read, as an ArgumentException.
    static readonly JsonDocumentOptions RecordOptions = new() { AllowDuplicateProperties = false };

    /// <summary>The records of <paramref name="reader"/>; a line that is not a JSON object is an error, or counted and
    /// skipped when <paramref name="bad"/> says so.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> Read(TextReader reader, string source, BadRecords? bad = null) =>
        Records(Lines(reader), source, bad);

    /// <summary>The records of a file, read lazily; a line that is not UTF-8 is an error naming it.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> ReadFile(string path, BadRecords? bad = null)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        return Records(Utf8Input.ReadLines(path), path, bad);
    }

    static IEnumerable<string> Lines(TextReader reader)
    {
        string? line;
        while ((line = reader.ReadLine()) is not null) yield return line;
    }

    static IEnumerable<(int Line, JsonObject Record)> Records(IEnumerable<string> lines, string source, BadRecords? bad)
    {
        int n = 0;
        foreach (var line in lines)
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node = null;
            AttuneException? error = null;
            try { node = JsonNode.Parse(line, documentOptions: RecordOptions); }
            catch (JsonException e) { error = new AttuneException(source, $"line {n}", $"not valid JSON: {e.Message}"); }
            if (error is null && node is not JsonObject) error = new AttuneException(source, $"line {n}", "expected a JSON object");
            if (error is not null)
            {
                if (bad?.Absorb(error) == true) continue;
                throw error;
            }
            yield return (n, (JsonObject)node!);
        }
    }
}
