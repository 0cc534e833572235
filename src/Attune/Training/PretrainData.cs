using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Text;

namespace Attune.Training;

/// <summary>
/// Pretraining data: documents from plain text files (one document per file) or JSONL files with a
/// <c>"text"</c> field per line, tokenized, joined with the end-of-text token after each document, and cut
/// into blocks. Blocks overlap by one token so every token after the first is predicted exactly once
/// (as llm.c reads B·T+1 tokens for T predictions).
/// </summary>
public static class PretrainData
{
    /// <summary>The documents of one file; JSONL errors name the line.</summary>
    public static IEnumerable<string> ReadDocuments(string path, BadRecords? bad = null)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        if (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            yield return Utf8Input.ReadAllText(path);
            yield break;
        }
        foreach (var (n, record) in JsonLines.ReadFile(path, bad))
        {
            if (record["text"] is JsonValue v && v.TryGetValue<string>(out var text)) yield return text;
            else
            {
                var error = new AttuneException(path, $"line {n}", "expected an object with a string field \"text\"");
                if (bad?.Absorb(error) != true) throw error;
            }
        }
    }

    /// <summary>Tokenizes and packs <paramref name="documents"/> into examples of at most <paramref name="blockSize"/> predictions.</summary>
    public static List<TrainingExample> Pack(IEnumerable<string> documents, Tokenizer tokenizer, int blockSize, int? endOfText)
    {
        if (blockSize < 1) throw new AttuneException(null, "--block-size", "must be at least 1");
        var stream = new List<int>();
        foreach (var doc in documents)
        {
            if (doc.Length == 0) continue;
            tokenizer.Encode(doc, stream, addSpecialTokens: true);
            if (endOfText is { } eos) stream.Add(eos);
        }
        var examples = new List<TrainingExample>();
        for (int start = 0; start + 1 < stream.Count; start += blockSize)
        {
            int len = Math.Min(blockSize, stream.Count - 1 - start);
            examples.Add(new TrainingExample(stream.GetRange(start, len).ToArray(), stream.GetRange(start + 1, len).ToArray()));
        }
        return examples;
    }
}
