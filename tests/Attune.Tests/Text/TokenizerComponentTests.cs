using System.Text;
using System.Text.Json.Nodes;
using Attune.Text;

namespace Attune.Tests.Text;

/// <summary>Components that the npm tokenizers do not exercise, checked on small inputs by hand.</summary>
public class TokenizerComponentTests
{
    static List<string> Pieces(PreTokenizer p, string text, bool atStart = true)
    {
        var pieces = new List<Piece> { Piece.Whole(text, atStart) };
        p.PreTokenize(pieces, []);
        return pieces.Select(x => x.ToString()).ToList();
    }

    static PreTokenizer Pre(string json) =>
        PreTokenizer.FromJson(System.Text.Json.JsonDocument.Parse(json).RootElement, new TokenizerJson("t.json"), "pre_tokenizer")!;

    [Fact]
    public void Metaspace_replaces_spaces_prepends_and_splits_before_each_marker()
    {
        var always = Pre("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""");
        Assert.Equal(["▁Hey", "▁my", "▁friend", "▁", "▁how"], Pieces(always, "Hey my friend  how"));
        Assert.Equal(["▁Hey"], Pieces(always, " Hey")); // already starts with the marker: nothing prepended

        var first = Pre("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""");
        Assert.Equal(["▁a▁b"], Pieces(first, "a b", atStart: true));
        Assert.Equal(["a▁b"], Pieces(first, "a b", atStart: false)); // after a special token

        var legacy = Pre("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}""");
        Assert.Equal(["a", "▁b"], Pieces(legacy, "a b"));
    }

    [Fact]
    public void Split_behaviours_follow_the_reference_definitions()
    {
        string P(string behavior) => $$"""{"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}", "invert": false}""";
        var text = "a-b--c-";
        Assert.Equal(["a", "b", "c"], Pieces(Pre(P("Removed")), text));
        Assert.Equal(["a", "-", "b", "-", "-", "c", "-"], Pieces(Pre(P("Isolated")), text));
        Assert.Equal(["a-", "b-", "-", "c-"], Pieces(Pre(P("MergedWithPrevious")), text));
        Assert.Equal(["a", "-b", "-", "-c", "-"], Pieces(Pre(P("MergedWithNext")), text));
        Assert.Equal(["a", "-", "b", "--", "c", "-"], Pieces(Pre(P("Contiguous")), text));
        var inverted = Pre("""{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Removed", "invert": true}""");
        Assert.Equal(["12", "345"], Pieces(inverted, "ab12cd345"));
    }

    [Fact]
    public void Digits_isolates_each_digit_or_each_run()
    {
        Assert.Equal(["abc", "1", "2", "3", "d"], Pieces(Pre("""{"type": "Digits", "individual_digits": true}"""), "abc123d"));
        Assert.Equal(["abc", "123", "d"], Pieces(Pre("""{"type": "Digits", "individual_digits": false}"""), "abc123d"));
    }

    [Fact]
    public void Normalizers_compose_in_order()
    {
        var n = Normalizer.FromJson(System.Text.Json.JsonDocument.Parse("""
            {"type": "Sequence", "normalizers": [
              {"type": "NFKC"}, {"type": "Lowercase"},
              {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
              {"type": "Prepend", "prepend": "▁"}]}
            """).RootElement, new TokenizerJson("t.json"), "normalizer")!;
        Assert.Equal("▁fi→fi x 1", n.Normalize("ﬁ→FI  \t X ¹"));
        Assert.Equal("", n.Normalize(""));
    }

    [Fact]
    public void Added_tokens_marked_normalized_are_matched_after_normalization()
    {
        var vocab = new JsonObject();
        for (int c = 'a'; c <= 'z'; c++) vocab[((char)c).ToString()] = c - 'a';
        var json = new JsonObject
        {
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 100, ["content"] = "yes", ["special"] = false, ["normalized"] = true,
                ["lstrip"] = false, ["rstrip"] = false, ["single_word"] = false,
            }),
            ["normalizer"] = new JsonObject { ["type"] = "Lowercase" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        var t = Tokenizer.FromJson(Encoding.UTF8.GetBytes(json.ToJsonString()), "t.json");
        Assert.Equal([0, 100, 1], t.Encode("aYESb"));
    }

    [Fact]
    public void Add_eos_token_in_tokenizer_config_rebuilds_the_llama_template()
    {
        using var tmp = new TempDir();
        var src = Repo.NpmTokenizer("llama2");
        File.Copy(Path.Combine(src, "tokenizer.json"), tmp["tokenizer.json"]);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "tokenizer_config.json")))!.AsObject();
        config["add_eos_token"] = true;
        File.WriteAllText(tmp["tokenizer_config.json"], config.ToJsonString());
        var t = Tokenizer.Load(tmp.Path);
        var ids = t.Encode("hello");
        Assert.Equal(t.BosId, ids[0]);
        Assert.Equal(t.EosId, ids[^1]);
        Assert.Equal(ids[1..^1], t.Encode("hello", addSpecialTokens: false));
    }

    [Fact]
    public void Byte_fallback_and_fused_unknown_tokens()
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["a"] = 1 };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = 2 + b;
        JsonObject Model(bool byteFallback, bool fuse) => new()
        {
            ["type"] = "BPE", ["vocab"] = vocab.DeepClone(), ["merges"] = new JsonArray(), ["unk_token"] = "<unk>",
            ["byte_fallback"] = byteFallback, ["fuse_unk"] = fuse,
        };
        Tokenizer Make(bool bf, bool fuse) => Tokenizer.FromJson(Encoding.UTF8.GetBytes(new JsonObject
        {
            ["model"] = Model(bf, fuse),
            ["decoder"] = new JsonObject { ["type"] = "Sequence", ["decoders"] = new JsonArray(new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" }) },
        }.ToJsonString()), "t.json");

        var bf = Make(true, false);
        Assert.Equal([1, 2 + 0xC3, 2 + 0xA9, 1], bf.Encode("aéa"));
        Assert.Equal("aéa", bf.Decode(bf.Encode("aéa")));
        Assert.Equal([1, 0, 0, 1], Make(false, false).Encode("aééa"));
        Assert.Equal([1, 0, 1], Make(false, true).Encode("aééa"));
    }
}
