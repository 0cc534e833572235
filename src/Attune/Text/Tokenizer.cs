using System.Text;
using System.Text.Json;

namespace Attune.Text;

/// <summary>
/// A Hugging Face fast tokenizer read from tokenizer.json (and tokenizer_config.json beside it):
/// added tokens → normalizer → pre-tokenizer → BPE model → post-processor, and back through the
/// decoder. Encoding is thread-safe.
/// </summary>
public sealed class Tokenizer
{
    readonly Normalizer? _normalizer;
    readonly PreTokenizer? _preTokenizer;
    readonly Bpe _model;
    readonly PostProcessor? _postProcessor;
    readonly Decoder? _decoder;
    readonly AddedVocabulary _added;
    readonly string?[] _idToToken;
    readonly HashSet<int> _specialIds;
    readonly Dictionary<string, int> _addedByContent;
    readonly bool _byteLevel;

    public TokenizerConfig Config { get; }
    public string Source { get; }

    /// <summary>One past the highest id (model vocabulary and added tokens together).</summary>
    public int VocabSize => _idToToken.Length;
    public Bpe Model => _model;
    public IReadOnlyList<AddedToken> AddedTokens => _added.Tokens;

    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    Tokenizer(string source, Normalizer? normalizer, PreTokenizer? preTokenizer, Bpe model, PostProcessor? postProcessor,
        Decoder? decoder, AddedVocabulary added, TokenizerConfig config)
    {
        Source = source;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _decoder = decoder;
        _added = added;
        Config = config;
        _byteLevel = preTokenizer?.IsByteLevel ?? false;

        int size = Math.Max(model.Vocab.Count == 0 ? 0 : model.Vocab.Values.Max() + 1,
            added.Tokens.Count == 0 ? 0 : added.Tokens.Max(t => t.Id) + 1);
        _idToToken = new string?[size];
        foreach (var (tok, id) in model.Vocab) _idToToken[id] = tok;
        _addedByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in added.Tokens)
        {
            _idToToken[t.Id] = t.Content;
            _addedByContent[t.Content] = t.Id;
        }
        _specialIds = added.Tokens.Where(t => t.Special).Select(t => t.Id).ToHashSet();

        BosId = config.BosToken is { } b ? TokenToId(b) : null;
        EosId = config.EosToken is { } e ? TokenToId(e) : null;
        PadId = config.PadToken is { } p ? TokenToId(p) : null;

        // Llama and Gemma tokenizers rebuild their post-processor from add_bos_token/add_eos_token
        // (transformers' update_post_processor); other classes use tokenizer.json's as it is.
        if (config.TokenizerClass is { } cls && (cls.StartsWith("Llama") || cls.StartsWith("CodeLlama") || cls.StartsWith("Gemma"))
            && (config.AddBosToken is not null || config.AddEosToken is not null))
        {
            var items = new List<TemplateItem>();
            if ((config.AddBosToken ?? true) && BosId is int bos) items.Add(new TemplateItem(null, bos));
            items.Add(new TemplateItem("A", 0));
            if ((config.AddEosToken ?? false) && EosId is int eos) items.Add(new TemplateItem(null, eos));
            postProcessor = new TemplateProcessing(items.ToArray());
        }
        _postProcessor = postProcessor;
    }

    /// <summary>Loads a folder (tokenizer.json + tokenizer_config.json) or a tokenizer.json file.</summary>
    public static Tokenizer Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(file)) throw new AttuneException(file, Directory.Exists(path) ? "no tokenizer.json in this folder" : "file not found");
        var configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json");
        var config = File.Exists(configPath) ? TokenizerConfig.Load(configPath) : TokenizerConfig.Empty;
        byte[] bytes;
        try { bytes = File.ReadAllBytes(file); }
        catch (IOException e) { throw new AttuneException(file, $"cannot read: {e.Message}"); }
        return FromJson(bytes, file, config);
    }

    public static Tokenizer FromJson(ReadOnlyMemory<byte> json, string source, TokenizerConfig? config = null)
    {
        Utf8Input.Check(json.Span, source);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 256 }); }
        catch (JsonException e) { throw new AttuneException(source, $"not valid JSON: {e.Message}"); }
        using (doc)
        {
            var root = doc.RootElement;
            var j = new TokenizerJson(source);
            if (root.ValueKind != JsonValueKind.Object) throw new AttuneException(source, "not a JSON object");
            if (!root.TryGetProperty("model", out var model)) throw j.Error("model", "missing");
            var added = ParseAddedTokens(root, j);
            return new Tokenizer(source,
                Normalizer.FromJson(Get(root, "normalizer"), j, "normalizer"),
                PreTokenizer.FromJson(Get(root, "pre_tokenizer"), j, "pre_tokenizer"),
                ParseBpe(model, j),
                PostProcessor.FromJson(Get(root, "post_processor"), j, "post_processor"),
                Decoder.FromJson(Get(root, "decoder"), j, "decoder"),
                added,
                config ?? TokenizerConfig.Empty);
        }
    }

    static JsonElement Get(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) ? v : default;

    static AddedVocabulary ParseAddedTokens(JsonElement root, TokenizerJson j)
    {
        var list = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var arr) || arr.ValueKind == JsonValueKind.Null) return new AddedVocabulary(list);
        if (arr.ValueKind != JsonValueKind.Array) throw j.Error("added_tokens", "must be an array");
        int i = 0;
        foreach (var t in arr.EnumerateArray())
        {
            var f = $"added_tokens[{i++}]";
            if (t.ValueKind != JsonValueKind.Object) throw j.Error(f, "must be an object");
            int id = t.TryGetProperty("id", out var idv) && idv.ValueKind == JsonValueKind.Number && idv.TryGetInt32(out var x) && x is >= 0 and < MaxId ? x
                : throw j.Error($"{f}.id", $"missing or not an integer from 0 to {MaxId - 1}");
            list.Add(new AddedToken(id, j.String(t, "content", f),
                j.Bool(t, "special", f, false), j.Bool(t, "lstrip", f, false), j.Bool(t, "rstrip", f, false),
                j.Bool(t, "single_word", f, false), j.Bool(t, "normalized", f, true)));
        }
        return new AddedVocabulary(list);
    }

    /// <summary>Ids are indices into a table as long as the largest id; real vocabularies stay far below this.</summary>
    const int MaxId = 1 << 24;

    static Bpe ParseBpe(JsonElement model, TokenizerJson j)
    {
        var type = model.ValueKind == JsonValueKind.Object && model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString() : (model.ValueKind == JsonValueKind.Object && model.TryGetProperty("merges", out _) ? "BPE" : null);
        if (type != "BPE")
            throw j.Error("model.type", $"\"{type ?? "?"}\" is not supported; Attune reads BPE tokenizers (WordPiece and Unigram are not implemented)");
        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw j.Error("model.vocab", "missing or not an object");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabJson.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out var id) || id is < 0 or >= MaxId)
                throw j.Error($"model.vocab[\"{p.Name}\"]", $"must be an integer id from 0 to {MaxId - 1}");
            vocab[p.Name] = id;
        }
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mj) && mj.ValueKind == JsonValueKind.Array)
        {
            int r = 0;
            foreach (var m in mj.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String)
                {
                    var s = m.GetString()!;
                    int sp = s.IndexOf(' ', 1);
                    if (sp < 0 || s.IndexOf(' ', sp + 1) >= 0) throw j.Error($"model.merges[{r}]", $"\"{s}\" is not two tokens separated by a space");
                    merges.Add((s[..sp], s[(sp + 1)..]));
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                    && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                    merges.Add((m[0].GetString()!, m[1].GetString()!));
                else throw j.Error($"model.merges[{r}]", "must be \"a b\" or [\"a\", \"b\"]");
                r++;
            }
        }
        else if (model.TryGetProperty("merges", out mj) && mj.ValueKind != JsonValueKind.Null)
            throw j.Error("model.merges", "must be an array");
        return new Bpe(vocab, merges, j.OptionalString(model, "unk_token", "model"),
            j.Bool(model, "byte_fallback", "model", false), j.Bool(model, "fuse_unk", "model", false),
            j.Bool(model, "ignore_merges", "model", false),
            j.OptionalString(model, "continuing_subword_prefix", "model"), j.OptionalString(model, "end_of_word_suffix", "model"),
            j.Source);
    }

    /// <summary>The id of a token (added tokens first, then the model vocabulary), or null.</summary>
    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out var id) ? id : _model.Vocab.TryGetValue(token, out id) ? id : null;

    /// <summary>The token string of an id, or null for an id outside the vocabulary.</summary>
    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public bool IsSpecial(int id) => _specialIds.Contains(id);

    [ThreadStatic] static EncodeScratch? t_scratch;

    sealed class EncodeScratch
    {
        public readonly List<(int, int, AddedToken?)> Raw = [];
        public readonly List<(int, int, AddedToken?)> Normalized = [];
        public readonly List<Piece> Pieces = [];
        public readonly List<Piece> Spare = [];
    }

    /// <summary>Token ids of <paramref name="text"/>; special tokens written in the text are always recognised.</summary>
    /// <param name="addSpecialTokens">Apply the post-processor (BOS/EOS and the like).</param>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        Encode(text, ids, addSpecialTokens);
        return ids.ToArray();
    }

    public void Encode(string text, List<int> ids, bool addSpecialTokens = true)
    {
        var s = t_scratch ??= new EncodeScratch();
        int first = ids.Count;
        var body = first == 0 ? ids : new List<int>();
        s.Raw.Clear();
        _added.SplitRaw(text, s.Raw);
        foreach (var (start, length, token) in s.Raw)
        {
            if (token is not null)
            {
                body.Add(token.Id);
                continue;
            }
            var segment = start == 0 && length == text.Length ? text : text.Substring(start, length);
            var normalized = _normalizer?.Normalize(segment) ?? segment;
            if (_added.HasNormalized)
            {
                s.Normalized.Clear();
                _added.SplitNormalized(normalized, s.Normalized);
                foreach (var (ns, nl, nt) in s.Normalized)
                {
                    if (nt is not null) body.Add(nt.Id);
                    else EncodeSegment(normalized.Substring(ns, nl), start == 0 && ns == 0, body, s);
                }
            }
            else EncodeSegment(normalized, start == 0, body, s);
        }
        _postProcessor?.Process(body, addSpecialTokens);
        if (!ReferenceEquals(body, ids)) ids.AddRange(body);
    }

    void EncodeSegment(string text, bool atStart, List<int> ids, EncodeScratch s)
    {
        if (text.Length == 0) return;
        s.Pieces.Clear();
        s.Pieces.Add(Piece.Whole(text, atStart));
        _preTokenizer?.PreTokenize(s.Pieces, s.Spare);
        foreach (var p in s.Pieces) _model.Tokenize(p.Span, _byteLevel, ids);
    }

    /// <summary>
    /// Text of a sequence of ids. Never throws: ids outside the vocabulary are skipped and invalid
    /// UTF-8 becomes U+FFFD, as the reference implementation does.
    /// </summary>
    /// <param name="cleanUpTokenizationSpaces">transformers' clean-up of spaces before punctuation; null takes tokenizer_config.json's setting.</param>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            var t = IdToToken(id);
            if (t is null || (skipSpecialTokens && _specialIds.Contains(id))) continue;
            tokens.Add(t);
        }
        string text;
        if (_decoder is null) text = string.Join(" ", tokens);
        else
        {
            _decoder.Decode(tokens);
            text = string.Concat(tokens);
        }
        return cleanUpTokenizationSpaces ?? Config.CleanUpTokenizationSpaces ? CleanUp(text) : text;
    }

    /// <summary>transformers' <c>clean_up_tokenization</c>: no space before . ? ! , and English contractions.</summary>
    public static string CleanUp(string text)
    {
        if (!text.Contains(' ')) return text;
        var sb = new StringBuilder(text);
        sb.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
          .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");
        return sb.ToString();
    }
}
