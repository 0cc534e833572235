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
    public static MergekitTokenizer Build(string source, IReadOnlyList<string> names, IReadOnlyList<Checkpoint> checkpoints, int baseIndex,
        IReadOnlyList<TokenEmbedding>? tokens = null, int? padToMultipleOf = null)
    {
        int donor = source is "base" or "union" ? baseIndex : names.ToList().IndexOf(source) is var i and >= 0 ? i
            : throw new AttuneException(null, "tokenizer_source", $"\"{source}\" is not one of the recipe's models");
        var vocabs = checkpoints.Select(Read).ToList();
        var output = new Dictionary<string, int>(vocabs[donor].Tokens, StringComparer.Ordinal);
        int next = output.Count == 0 ? 0 : output.Values.Max() + 1;
        JsonObject? json = null;
        var newAdded = new List<JsonObject>();
        // A token joins the vocabulary as transformers' add_tokens adds one: the next id, an added token with its settings.
        void Add(string content, JsonObject? settings)
        {
            if (output.ContainsKey(content)) return;
            json ??= (JsonObject)vocabs[donor].Json.DeepClone();
            var addedTokens = json["added_tokens"] as JsonArray ?? (JsonArray)(json["added_tokens"] = new JsonArray());
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
        if (source == "union")
        {
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
        foreach (var t in tokens ?? []) Add(t.Token, null); // tokens the recipe configures join the vocabulary when missing
        var permutations = vocabs.Select(v =>
        {
            var p = new int[next];
            Array.Fill(p, -1);
            foreach (var (token, id) in output) if (v.Tokens.TryGetValue(token, out var own)) p[id] = own;
            return p;
        }).ToArray();
        return new MergekitTokenizer(output, json, newAdded, permutations, baseIndex)
        {
            _configs = (tokens ?? []).ToDictionary(t => output[t.Token]),
            _names = names, _vocabs = vocabs.Select(v => v.Tokens).ToList(), _padTo = padToMultipleOf,
        };
    }

    Dictionary<int, TokenEmbedding> _configs = [];
    IReadOnlyList<string> _names = [];
    List<Dictionary<string, int>> _vocabs = [];
    int? _padTo;

    /// <summary>The rows of the output's embeddings and head: the vocabulary, rounded up to pad_to_multiple_of.</summary>
    public int Rows => _padTo is int m && _permutations[0].Length % m != 0 ? (_permutations[0].Length / m + 1) * m : _permutations[0].Length;

    /// <summary>
    /// Each model's embedding (or head) rows laid out in the output vocabulary, with mergekit's fallbacks for the tokens a
    /// model lacks and the recipe's token sources. <paramref name="tensors"/> are the models' [rows × width] tensors, in the
    /// merge's numbering (<paramref name="modelOf"/>: each one's model).
    /// </summary>
    public List<float[]> Permute(IReadOnlyList<float[]> tensors, int width, IReadOnlyList<int> modelOf)
    {
        int rows = _permutations[0].Length;
        var tokenOf = Vocabulary.ToDictionary(kv => kv.Value, kv => kv.Key);
        int Input(string model, string token) => Enumerable.Range(0, tensors.Count).FirstOrDefault(k => _names[modelOf[k]] == model, -1) is var k and >= 0 ? k
            : throw new AttuneException(null, $"tokenizer.tokens.{token}", $"{model} is not one of this tensor's models");
        var fallback = new Dictionary<int, float[]>();
        for (int id = 0; id < rows; id++)
        {
            var row = new float[width];
            if (_configs.TryGetValue(id, out var cfg))
            {
                if (!cfg.Zero)
                {
                    int k = Input(cfg.Model!, cfg.Token);
                    int source = cfg.FromTokenId ?? (cfg.FromToken is { } t ? (_vocabs[modelOf[k]].TryGetValue(t, out var own) ? own
                        : throw new AttuneException(null, $"tokenizer.tokens.{cfg.Token}", $"{cfg.FromToken} is not a token of {cfg.Model}")) : _permutations[modelOf[k]][id]);
                    if (source < 0 || (long)(source + 1) * width > tensors[k].Length)
                        throw new AttuneException(null, $"tokenizer.tokens.{cfg.Token}", $"{cfg.Model} has no row for it");
                    Row(tensors[k], source, width).CopyTo(row);
                }
                fallback[id] = row;
                continue;
            }
            var having = Enumerable.Range(0, tensors.Count).Where(k => _permutations[modelOf[k]][id] >= 0).ToList();
            if (having.Count == tensors.Count) continue;
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
            var laid = new float[(long)Rows * width];
            for (int id = 0; id < rows; id++)
            {
                bool own = p[id] >= 0 && !(_configs.TryGetValue(id, out var cfg) && cfg.Force);
                (own ? Row(t, p[id], width) : fallback[id]).CopyTo(laid.AsSpan(id * width, width));
            }
            // Padding rows: the mean of the model's real rows (as mergekit does).
            if (Rows > rows)
            {
                var mean = new double[width];
                for (int id = 0; id < rows; id++) for (int c = 0; c < width; c++) mean[c] += laid[id * width + c];
                for (int id = rows; id < Rows; id++) for (int c = 0; c < width; c++) laid[id * width + c] = (float)(mean[c] / rows);
            }
            return laid;
        }).ToList();
    }

    static ReadOnlySpan<float> Row(float[] tensor, int row, int width) => tensor.AsSpan(row * width, width);

    /// <summary>Whether a tensor holds one row per token (embeddings, the head).</summary>
    public static bool IsVocabularyTensor(string name) => name.Contains("embed_tokens", StringComparison.Ordinal) || name.StartsWith("lm_head", StringComparison.Ordinal);
}
