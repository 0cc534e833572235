using System.Text.Json.Nodes;
using Attune.Formats;

namespace Attune.Merging.Mergekit;

/// <summary>
/// The output vocabulary of a mergekit recipe with a tokenizer source, and each model's embedding rows laid out in it, as
/// mergekit's tokenizer/build.py and embed.py do. <c>base</c> or a model: that model's vocabulary; <c>union</c>: the base's
/// tokenizer with every other token of the models added after it (plain tokens as added tokens, then the models' own added
/// tokens with their settings, the first model's settings winning), tokens at or beyond a model's vocab_size ignored.
/// A model's row for a token it has is its own; for a token it lacks, a fallback: the only model's row when one model has
/// it, else the base's when the base has it, else the mean of the rows of the models that have it (zero when none has).
/// </summary>
public sealed class MergekitTokenizer
{
    /// <summary>The output's token → id.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary { get; }
    public int Size => Vocabulary.Count;
    /// <summary>The output's tokenizer.json (null: the donor's files are copied as they are).</summary>
    public JsonObject? TokenizerJson { get; }
    /// <summary>Added tokens that the output's tokenizer_config.json must list (id → entry).</summary>
    public IReadOnlyList<JsonObject> NewAddedTokens { get; }
    /// <summary>Per model (as the merge numbers them): output id → the model's row, −1 where it lacks the token.</summary>
    readonly int[][] _permutations;
    readonly int _base;

    MergekitTokenizer(Dictionary<string, int> vocabulary, JsonObject? json, List<JsonObject> added, int[][] permutations, int baseIndex) =>
        (Vocabulary, TokenizerJson, NewAddedTokens, _permutations, _base) = (vocabulary, json, added, permutations, baseIndex);

    /// <summary>A model's tokens with ids below its vocab_size: the BPE/Unigram vocabulary and its added tokens.</summary>
    sealed record ModelVocabulary(Dictionary<string, int> Tokens, List<JsonObject> Added, JsonObject Json);

    static ModelVocabulary Read(Checkpoint c)
    {
        var path = c.TokenizerPath ?? throw new AttuneException(c.Directory, "tokenizer.json", "missing: a tokenizer source needs each model's tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new AttuneException(path, "is not a JSON object");
        int size = c.Config.VocabSize;
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        switch (json["model"]?["vocab"])
        {
            case JsonObject bpe:
                foreach (var (t, id) in bpe) if (id?.GetValue<int>() is int i && i < size) tokens[t] = i;
                break;
            case JsonArray unigram:
                for (int i = 0; i < Math.Min(unigram.Count, size); i++) tokens[unigram[i]![0]!.GetValue<string>()] = i;
                break;
            default:
                throw new AttuneException(path, "model.vocab", "is neither a BPE/WordPiece mapping nor a Unigram list");
        }
        var added = (json["added_tokens"] as JsonArray ?? []).OfType<JsonObject>().Where(a => a["id"]!.GetValue<int>() < size).ToList();
        foreach (var a in added) tokens[a["content"]!.GetValue<string>()] = a["id"]!.GetValue<int>();
        return new ModelVocabulary(tokens, added, json);
    }

    /// <summary>Builds the vocabulary for <paramref name="source"/> (base, union, or a model's name) over the recipe's models.</summary>
    public static MergekitTokenizer Build(string source, IReadOnlyList<string> names, IReadOnlyList<Checkpoint> checkpoints, int baseIndex)
    {
        var vocabs = checkpoints.Select(Read).ToList();
        Dictionary<string, int> output;
        JsonObject? json = null;
        var newAdded = new List<JsonObject>();
        if (source == "union")
        {
            var b = vocabs[baseIndex];
            output = new Dictionary<string, int>(b.Tokens, StringComparer.Ordinal);
            int next = b.Tokens.Count == 0 ? 0 : b.Tokens.Values.Max() + 1;
            json = (JsonObject)b.Json.DeepClone();
            var addedTokens = json["added_tokens"] as JsonArray ?? (JsonArray)(json["added_tokens"] = new JsonArray());
            void Add(string content, JsonObject? settings)
            {
                if (output.ContainsKey(content)) return;
                var entry = new JsonObject
                {
                    ["id"] = next, ["content"] = content,
                    ["single_word"] = settings?["single_word"]?.GetValue<bool>() ?? false, ["lstrip"] = settings?["lstrip"]?.GetValue<bool>() ?? false,
                    ["rstrip"] = settings?["rstrip"]?.GetValue<bool>() ?? false, ["normalized"] = settings?["normalized"]?.GetValue<bool>() ?? true,
                    ["special"] = settings?["special"]?.GetValue<bool>() ?? false,
                };
                addedTokens.Add(entry);
                newAdded.Add(entry);
                output[content] = next++;
            }
            // The base first, then the other models in the recipe's order; each model's tokens by id.
            var order = new[] { baseIndex }.Concat(Enumerable.Range(0, vocabs.Count).Where(i => i != baseIndex)).ToList();
            var addedSettings = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
            foreach (var m in order)
                foreach (var a in vocabs[m].Added) addedSettings.TryAdd(a["content"]!.GetValue<string>(), a);
            foreach (var m in order)
                foreach (var (token, _) in vocabs[m].Tokens.OrderBy(t => t.Value))
                    if (!addedSettings.ContainsKey(token)) Add(token, null);
            foreach (var (content, settings) in addedSettings) Add(content, settings);
        }
        else
        {
            int donor = source == "base" ? baseIndex : names.ToList().IndexOf(source);
            output = vocabs[donor].Tokens;
        }
        var permutations = vocabs.Select(v =>
        {
            var p = new int[output.Count == 0 ? 0 : output.Values.Max() + 1];
            Array.Fill(p, -1);
            foreach (var (token, id) in output) if (v.Tokens.TryGetValue(token, out var own)) p[id] = own;
            return p;
        }).ToArray();
        return new MergekitTokenizer(output, json, newAdded, permutations, baseIndex);
    }

    /// <summary>
    /// Each model's embedding (or head) rows laid out in the output vocabulary, with mergekit's fallbacks for the tokens a
    /// model lacks. <paramref name="tensors"/> are the models' [rows × width] tensors, in the merge's numbering.
    /// </summary>
    public List<float[]> Permute(IReadOnlyList<float[]> tensors, int width, IReadOnlyList<int> modelOf)
    {
        int rows = _permutations[0].Length;
        var fallback = new Dictionary<int, float[]>();
        for (int id = 0; id < rows; id++)
        {
            var having = Enumerable.Range(0, tensors.Count).Where(k => _permutations[modelOf[k]][id] >= 0).ToList();
            if (having.Count == tensors.Count) continue;
            var row = new float[width];
            int baseInput = Enumerable.Range(0, tensors.Count).FirstOrDefault(k => modelOf[k] == _base, -1);
            if (having.Count == 1) Row(tensors[having[0]], _permutations[modelOf[having[0]]][id], width).CopyTo(row);
            else if (baseInput >= 0 && having.Contains(baseInput)) Row(tensors[baseInput], _permutations[_base][id], width).CopyTo(row);
            else if (having.Count > 1)
            {
                foreach (var k in having)
                {
                    var r = Row(tensors[k], _permutations[modelOf[k]][id], width);
                    for (int c = 0; c < width; c++) row[c] += r[c];
                }
                for (int c = 0; c < width; c++) row[c] /= having.Count;
            }
            fallback[id] = row;
        }
        return tensors.Select((t, k) =>
        {
            var p = _permutations[modelOf[k]];
            var laid = new float[(long)rows * width];
            for (int id = 0; id < rows; id++)
                (p[id] >= 0 ? Row(t, p[id], width) : fallback[id]).CopyTo(laid.AsSpan(id * width, width));
            return laid;
        }).ToList();
    }

    static ReadOnlySpan<float> Row(float[] tensor, int row, int width) => tensor.AsSpan(row * width, width);

    /// <summary>Whether a tensor holds one row per token (embeddings, the head).</summary>
    public static bool IsVocabularyTensor(string name) => name.Contains("embed_tokens", StringComparison.Ordinal) || name.StartsWith("lm_head", StringComparison.Ordinal);
}
