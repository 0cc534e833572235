using System.Text;
using System.Text.Json.Nodes;

namespace Attune.Text;

/// <summary>
/// Trains a byte-level BPE tokenizer (GPT-2 alphabet, Qwen-style pre-tokenization: GPT-4 pattern with single digits; NFC) from
/// text: start from the 256 byte symbols and repeatedly merge the most frequent adjacent pair
/// (ties broken by the pair's text, so training is deterministic) until the vocabulary is full.
/// The result is an ordinary tokenizer.json that Attune, transformers and llama.cpp all read.
/// </summary>
public static class BpeTrainer
{
    public static readonly string[] DefaultSpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    /// <summary>ChatML, written for the models Attune initialises.</summary>
    public const string ChatMlTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Learns merges until the vocabulary (bytes + merges + special tokens) has <paramref name="vocabSize"/> entries.</summary>
    public static (List<string> Vocab, List<(string, string)> Merges) Train(IEnumerable<string> texts, int vocabSize, int specialCount)
    {
        int target = vocabSize - specialCount;
        if (target < 256) throw new ArgumentException($"vocabulary of {vocabSize} has no room beyond the 256 bytes and {specialCount} special tokens");
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var pieces = new List<(int Start, int Length)>();
        foreach (var raw in texts)
        {
            var text = raw.Normalize(NormalizationForm.FormC);
            pieces.Clear();
            SplitScanner.Qwen.Split(text, pieces);
            foreach (var (s, l) in pieces)
            {
                var mapped = string.Concat(Encoding.UTF8.GetBytes(text.Substring(s, l)).Select(b => ByteLevel.ByteToChar[b]));
                counts[mapped] = counts.GetValueOrDefault(mapped) + 1;
            }
        }
        var vocab = Enumerable.Range(0, 256).Select(b => ByteLevel.ByteToChar[b].ToString()).ToList();
        var known = new HashSet<string>(vocab, StringComparer.Ordinal);
        var words = counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var merges = new List<(string, string)>();
        while (vocab.Count < target)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairs[(symbols[i], symbols[i + 1])] = pairs.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(p => p.Value)
                .ThenBy(p => p.Key.Item1, StringComparer.Ordinal).ThenBy(p => p.Key.Item2, StringComparer.Ordinal).First().Key;
            var merged = best.Item1 + best.Item2;
            merges.Add(best);
            if (known.Add(merged)) vocab.Add(merged);
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return (vocab, merges);
    }

    /// <summary>tokenizer.json for a trained vocabulary; special tokens follow the learned ones.</summary>
    public static JsonObject TokenizerJson(List<string> vocab, List<(string, string)> merges, IReadOnlyList<string> specials)
    {
        var vocabJson = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) vocabJson[vocab[i]] = i;
        var added = new JsonArray();
        for (int i = 0; i < specials.Count; i++)
            added.Add(new JsonObject
            {
                ["id"] = vocab.Count + i, ["content"] = specials[i], ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = SplitScanner.QwenPattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocabJson,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(m.Item1, m.Item2)).ToArray()),
            },
        };
    }

    /// <summary>tokenizer_config.json naming the special tokens and carrying the ChatML template.</summary>
    public static JsonObject TokenizerConfigJson(int contextLength) => new()
    {
        ["add_bos_token"] = false,
        ["add_eos_token"] = false,
        ["bos_token"] = "<|endoftext|>",
        ["eos_token"] = "<|endoftext|>",
        ["pad_token"] = "<|endoftext|>",
        ["unk_token"] = null,
        ["clean_up_tokenization_spaces"] = false,
        ["model_max_length"] = contextLength,
        ["tokenizer_class"] = "PreTrainedTokenizerFast",
        ["chat_template"] = ChatMlTemplate,
    };

    /// <summary>The seed text shipped with Attune (data/text/seed-corpus.txt), for tokenizers of initialised models.</summary>
    public static IEnumerable<string> SeedCorpus()
    {
        using var stream = typeof(BpeTrainer).Assembly.GetManifestResourceStream("Attune.seed-corpus.txt")
            ?? throw new InvalidOperationException("seed corpus resource missing");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line) lines.Add(line + "\n");
        return lines;
    }
}
