using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Formats;

/// <summary>JSON Lines: one object per non-blank line, errors naming the source and the 1-based line.</summary>
public static class JsonLines
{
    /// <summary>The records of <paramref name="reader"/>; a line that is not a JSON object is an error, or counted and
    /// skipped when <paramref name="bad"/> says so.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> Read(TextReader reader, string source, BadRecords? bad = null)
    {
        int n = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node = null;
            AttuneException? error = null;
            try { node = JsonNode.Parse(line); }
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

    /// <summary>The records of a file, read lazily.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> ReadFile(string path, BadRecords? bad = null)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        using var reader = new StreamReader(path);
        foreach (var record in Read(reader, path, bad)) yield return record;
    }
}
