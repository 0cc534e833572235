using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Formats;

/// <summary>JSON Lines: one object per non-blank line, errors naming the source and the 1-based line.</summary>
public static class JsonLines
{
    public static IEnumerable<(int Line, JsonObject Record)> Read(TextReader reader, string source)
    {
        int n = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new AttuneException(source, $"line {n}", $"not valid JSON: {e.Message}"); }
            if (node is not JsonObject obj) throw new AttuneException(source, $"line {n}", "expected a JSON object");
            yield return (n, obj);
        }
    }

    /// <summary>The records of a file, read lazily.</summary>
    public static IEnumerable<(int Line, JsonObject Record)> ReadFile(string path)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        using var reader = new StreamReader(path);
        foreach (var record in Read(reader, path)) yield return record;
    }
}
