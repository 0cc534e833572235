using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attune.Text;

namespace Attune.Tests.Text;

public class TokenizerTests
{
    /// <summary>A byte-level tokenizer: the 256 byte characters, then the given merges, then added tokens.</summary>
    static Tokenizer ByteLevelTokenizer(string[] merges, JsonArray? added = null, JsonNode? preTokenizer = null, bool ignoreMerges = false)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
        int next = 256;
        foreach (var m in merges)
        {
            var merged = m.Replace(" ", "");
            if (!vocab.ContainsKey(merged)) vocab[merged] = next++;
        }
        var json = new JsonObject
        {
            ["added_tokens"] = added ?? new JsonArray(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer ?? new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["vocab"] = vocab, ["ignore_merges"] = ignoreMerges,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
            },
        };
        return Tokenizer.FromJson(Encoding.UTF8.GetBytes(json.ToJsonString()), "test.json");
    }

    static JsonObject Added(int id, string content, bool special = true, bool lstrip = false, bool rstrip = false, bool singleWord = false) => new()
    {
        ["id"] = id, ["content"] = content, ["special"] = special, ["lstrip"] = lstrip, ["rstrip"] = rstrip,
        ["single_word"] = singleWord, ["normalized"] = false,
    };

    string[] Tokens(Tokenizer t, string text) => t.Encode(text, addSpecialTokens: false).Select(id => t.IdToToken(id)!).ToArray();

    [Fact]
    public void Byte_level_alphabet_is_gpt2s()
    {
        Assert.Equal(256, ByteLevel.ByteToChar.Distinct().Count());
        Assert.Equal('Ġ', ByteLevel.ByteToChar[' ']);
        Assert.Equal('Ċ', ByteLevel.ByteToChar['\n']);
        Assert.Equal('A', ByteLevel.ByteToChar['A']);
        for (int b = 0; b < 256; b++) Assert.Equal(b, ByteLevel.CharToByte(ByteLevel.ByteToChar[b]));
    }

    [Fact]
    public void Merges_apply_lowest_rank_first_and_leftmost_on_ties()
    {
        // "aaa" → [aa, a], not [a, aa]; "aaaa" → [aa, aa].
        var t = ByteLevelTokenizer(["a a", "b c", "a b"]);
        Assert.Equal(["aa", "a"], Tokens(t, "aaa"));
        Assert.Equal(["aa", "aa"], Tokens(t, "aaaa"));
        // A later merge applies once both of its halves exist.
        Assert.Equal(["aaa"], Tokens(ByteLevelTokenizer(["a a", "aa a"]), "aaa"));
        // "b c" (rank 2) beats "a b" (rank 3) in "abc".
        Assert.Equal(["a", "bc"], Tokens(t, "abc"));
    }

    [Fact]
    public void Merges_chain_into_longer_tokens_and_spaces_are_byte_mapped()
    {
        var t = ByteLevelTokenizer(["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]);
        Assert.Equal(["hello", "Ġwo", "r", "l", "d"], Tokens(t, "hello world"));
        Assert.Equal("hello world", t.Decode(t.Encode("hello world", false)));
    }

    [Fact]
    public void Ignore_merges_emits_a_word_found_in_the_vocabulary_whole()
    {
        // "abd" is in the vocabulary (as the result of a merge that never fires, because
        // "a b" outranks "b d"), so only ignore_merges finds it.
        var merges = new[] { "a b", "b d", "a bd" };
        var plain = ByteLevelTokenizer(merges);
        var ignore = ByteLevelTokenizer(merges, ignoreMerges: true);
        Assert.Equal(["ab", "d"], Tokens(plain, "abd"));
        Assert.Equal(["abd"], Tokens(ignore, "abd"));
    }

    [Fact]
    public void Special_tokens_in_text_are_matched_before_the_model_longest_first()
    {
        var t = ByteLevelTokenizer([], new JsonArray(Added(300, "<|end|>"), Added(301, "<|end|>x"), Added(302, "<|e")));
        var ids = t.Encode("a<|end|>b<|end|>xy<|e", false);
        Assert.Equal([(int)'a', 300, 'b', 301, 'y', 302], ids);
        Assert.Equal("a<|end|>b<|end|>xy<|e", t.Decode(ids));
        Assert.Equal("aby", t.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Lstrip_rstrip_swallow_whitespace_and_single_word_needs_word_boundaries()
    {
        var t = ByteLevelTokenizer([], new JsonArray(
            Added(300, "<mask>", lstrip: true, rstrip: true),
            Added(301, "cat", special: false, singleWord: true)));
        Assert.Equal([(int)'a', 300, 'b'], t.Encode("a  <mask>  b", false));
        Assert.Equal([(int)' ', 301, ' '], t.Encode(" cat ", false)); // byte-level id of a space is its byte here
        Assert.DoesNotContain(301, t.Encode("concatenate", false));
    }

    [Fact]
    public void Decoding_never_throws_and_partial_utf8_becomes_replacement_characters()
    {
        var t = ByteLevelTokenizer([]);
        var euro = Encoding.UTF8.GetBytes("€").Select(b => (int)b).ToArray();
        Assert.Equal("€", t.Decode(euro));
        Assert.Equal("\uFFFD", t.Decode(euro[..2]));
        Assert.Equal("a\uFFFDb", t.Decode([(int)'a', 0xFF, 'b']));
        Assert.Equal("ab", t.Decode([(int)'a', -5, 1_000_000, 'b']));
    }

    public static TheoryData<string> ScannerPatterns() => [SplitScanner.Gpt4Pattern, SplitScanner.QwenPattern, SplitScanner.Gpt2Pattern];

    [Theory]
    [MemberData(nameof(ScannerPatterns))]
    public void Split_scanner_agrees_with_the_regex_it_replaces_on_random_text(string pattern)
    {
        // .NET's regex works on UTF-16 units, so on BMP text it is an exact oracle for the scanner.
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        var scanner = SplitScanner.ForPattern(pattern)!;
        string[] alphabet =
        [
            "a", "Z", "é", "ß", "Ж", "ك", "中", "ー", "1", "٣", "½", "Ⅻ", " ", "  ", "\t", "\n", "\r", "\r\n", "\u00A0",
            "\u3000", "\u2028", "\u0301", "'", "'s", "'S", "'re", "'LL", "'ve", "'d", "'m", "'t", "'x", ".", "!", "?", ",", "-",
            "(", "\"", "#", "_", "\u000B", "\u0085",
        ];
        var rng = new Random(42);
        var pieces = new List<(int, int)>();
        for (int trial = 0; trial < 3000; trial++)
        {
            var sb = new StringBuilder();
            int n = rng.Next(0, 25);
            for (int i = 0; i < n; i++) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            var s = sb.ToString();
            pieces.Clear();
            scanner.Split(s, pieces);
            var expected = regex.Matches(s).Select(m => (m.Index, m.Length)).ToList();
            Assert.True(expected.SequenceEqual(pieces), $"pattern {pattern}\ntext {Escape(s)}\nregex   {Show(s, expected)}\nscanner {Show(s, pieces)}");
        }
    }

    static string Escape(string s) => string.Concat(s.Select(c => c < 32 || c > 126 ? $"\\u{(int)c:X4}" : c.ToString()));
    static string Show(string s, List<(int Start, int Length)> p) => string.Join(" | ", p.Select(x => Escape(s.Substring(x.Start, x.Length))));

    [Fact]
    public void Split_scanner_treats_letters_outside_the_bmp_as_letters()
    {
        var pieces = new List<(int Start, int Length)>();
        var s = " 𝐀𝐁c 𠀀字 x";
        SplitScanner.Gpt4.Split(s, pieces);
        Assert.Equal([" 𝐀𝐁c", " 𠀀字", " x"], pieces.Select(p => s.Substring(p.Start, p.Length)));
    }

    [Fact]
    public void Gpt4_scanner_groups_digits_by_three_and_qwen_by_one()
    {
        var pieces = new List<(int Start, int Length)>();
        SplitScanner.Gpt4.Split("1234567", pieces);
        Assert.Equal([(0, 3), (3, 3), (6, 1)], pieces);
        pieces.Clear();
        SplitScanner.Qwen.Split("123", pieces);
        Assert.Equal([(0, 1), (1, 1), (2, 1)], pieces);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {}}}""", "model.type")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}""", "model.merges[0]")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}""", "model.merges[0]")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": -1}}}""", "model.vocab")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}}""", "model.unk_token")]
    [InlineData("""{"pre_tokenizer": {"type": "Whatever"}, "model": {"type": "BPE", "vocab": {}}}""", "pre_tokenizer.type")]
    [InlineData("""{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {}}}""", "pre_tokenizer.pattern.Regex")]
    [InlineData("""{"normalizer": {"type": "Sequence", "normalizers": [{"type": "Oops"}]}, "model": {"type": "BPE", "vocab": {}}}""", "normalizer.normalizers[0].type")]
    [InlineData("""{"added_tokens": [{"content": "x"}], "model": {"type": "BPE", "vocab": {}}}""", "added_tokens[0].id")]
    [InlineData("""{"decoder": {"type": "Nope"}, "model": {"type": "BPE", "vocab": {}}}""", "decoder.type")]
    public void Malformed_tokenizer_files_name_the_field(string json, string expected)
    {
        var e = Assert.Throws<AttuneException>(() => Tokenizer.FromJson(Encoding.UTF8.GetBytes(json), "bad/tokenizer.json"));
        Assert.StartsWith("bad/tokenizer.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Missing_tokenizer_file_is_a_clear_error()
    {
        using var tmp = new TempDir();
        Assert.Contains("no tokenizer.json", Assert.Throws<AttuneException>(() => Tokenizer.Load(tmp.Path)).Message);
    }
}
