using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Formats;
using Attune.Text;

namespace Attune.Modeling;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 128;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Extra ids that end generation (the model's own end-of-sequence ids always do).</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Go on past the model's end-of-sequence tokens (vLLM's ignore_eos; benchmarks and tests).</summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Generation ends when the text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop (and say so) when the output falls into a repetition loop; null: never.</summary>
    public RepetitionGuard? RepetitionGuard { get; init; }
    /// <summary>Also return the most likely first tokens, this many, with their log-probabilities (OpenAI's top_logprobs); 0: none.</summary>
    public int TopLogprobs { get; init; }
}

/// <summary>Why generation ended: a stop token or string, the token budget, a repetition loop, or a cancelled request.</summary>
public enum FinishReason { Stop, Length, Repetition, Cancelled }

public sealed record GenerationResult(IReadOnlyList<int> Tokens, string Text, FinishReason Finish);

/// <summary>Log-probability of a continuation and whether greedy decoding would have produced it.</summary>
public sealed record ScoreResult(double LogProb, bool IsGreedy, int Tokens);

public sealed record PerplexityResult(int Tokens, double NegativeLogLikelihood, double Perplexity);

/// <summary>
/// A model ready to use: the engine over its weights, its tokenizer, and the end-of-sequence
/// ids from config.json and generation_config.json. Methods are not thread-safe.
/// </summary>
public sealed class LanguageModel : IDisposable
{
    public Transformer Transformer { get; }
    public Tokenizer Tokenizer { get; }
    public ModelConfig Config => Transformer.Config;
    public IReadOnlySet<int> EndOfSequenceIds { get; }
    public string Source { get; }

    public LanguageModel(Transformer transformer, Tokenizer tokenizer, IEnumerable<int> eosIds, string source)
    {
        Transformer = transformer;
        Tokenizer = tokenizer;
        EndOfSequenceIds = eosIds.ToHashSet();
        Source = source;
    }

    /// <summary>Loads a checkpoint folder (config.json, safetensors, tokenizer files) or a GGUF file.</summary>
    public static LanguageModel Load(string path)
    {
        if (File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return LoadGguf(path);
        // The weights are read into memory when they fit comfortably (a decode step streams faster from there; see FileBytes).
        long bytes = Directory.Exists(path) ? new DirectoryInfo(path).GetFiles("*.safetensors").Sum(f => FileLinks.Resolve(f).Length) : 0;
        var ckpt = Checkpoint.Open(path, inMemory: FileBytes.WeightsFitInMemory(bytes));
        try
        {
            var tokenizer = ckpt.TokenizerPath is not null ? Tokenizer.Load(path)
                : throw new AttuneException(path, "no tokenizer.json in this checkpoint folder");
            return new LanguageModel(new Transformer(ModelWeights.FromCheckpoint(ckpt, ownCheckpoint: true)), tokenizer, EosIds(ckpt, tokenizer), path);
        }
        catch
        {
            ckpt.Dispose();
            throw;
        }
    }

    static LanguageModel LoadGguf(string path)
    {
        var g = GgufFile.Open(path, inMemory: FileBytes.WeightsFitInMemory(FileLinks.Resolve(path).Length));
        try
        {
            var config = ModelConfig.Parse(GgufConverter.ConfigJson(g), path);
            var (tokenizerJson, tokenizerConfigJson) = GgufConverter.TokenizerJson(g);
            var tokenizerConfig = TokenizerConfig.Parse(tokenizerConfigJson, path);
            var tokenizer = Tokenizer.FromJson(System.Text.Encoding.UTF8.GetBytes(tokenizerJson.ToJsonString()), path, tokenizerConfig);
            return new LanguageModel(new Transformer(ModelWeights.FromGguf(g, config, ownFile: true)), tokenizer, EosIds(config, null, tokenizer), path);
        }
        catch
        {
            g.Dispose();
            throw;
        }
    }

    /// <summary>The tokens that end a reply: config.json's eos_token_id, the tokenizer's eos token, generation_config.json's.</summary>
    public static HashSet<int> EosIds(Checkpoint ckpt, Tokenizer tokenizer) => EosIds(ckpt.Config, ckpt.GenerationConfigPath, tokenizer);

    /// <summary>The one end-of-sequence rule, for a model whose config, generation config and tokenizer come from anywhere.</summary>
    public static HashSet<int> EosIds(ModelConfig config, string? generationConfigPath, Tokenizer tokenizer)
    {
        var eos = new HashSet<int>(config.EosTokenIds);
        if (tokenizer.EosId is int e) eos.Add(e);
        if (generationConfigPath is { } gen) eos.UnionWith(ReadGenerationEos(gen));
        return eos;
    }

    /// <summary>The eos_token_id (one or a list) of a generation_config.json.</summary>
    static IEnumerable<int> ReadGenerationEos(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(Utf8Input.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON: {e.Message}"); }
        if (root is not (JsonObject or null)) throw new AttuneException(path, "not a JSON object");
        return root?["eos_token_id"] switch
        {
            JsonValue v when v.TryGetValue<int>(out var id) => [id],
            JsonArray a => a.Select(x => x is JsonValue xv && xv.TryGetValue<int>(out var id) ? id
                : throw new AttuneException(path, "eos_token_id", "must be integers")).ToList(),
            null => [],
            _ => throw new AttuneException(path, "eos_token_id", "must be an integer or a list of integers"),
        };
    }

    public void Dispose() => Transformer.Weights.Dispose();

    void CheckContext(int tokens, string what)
    {
        if (tokens > Config.MaxPositionEmbeddings)
            throw new AttuneException(null, $"{what} of {tokens} tokens exceeds the model's context window of {Config.MaxPositionEmbeddings}");
    }

    /// <summary>
    /// Continues <paramref name="promptIds"/>. <paramref name="onText"/> receives the text as it
    /// grows, never a partial UTF-8 character and never the start of a stop string.
    /// </summary>
    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, Action<string>? onText = null)
    {
        var decoder = NewDecoder(promptIds, options);
        if (decoder.Finish is null)
        {
            var cache = Transformer.NewCache(promptIds.Count + Math.Min(decoder.Budget, 256)); // it doubles if the reply outgrows it
            var logits = Transformer.Forward(cache, promptIds.ToArray());
            while (true)
            {
                int next = decoder.Sample(logits.Row(0));
                var shown = decoder.Accept(next);
                if (shown.Length > 0) onText?.Invoke(shown);
                if (decoder.Finish is not null) break;
                logits = Transformer.Forward(cache, [next]);
            }
        }
        return new GenerationResult(decoder.Generated, decoder.Text, decoder.Finish!.Value);
    }

    /// <summary>The per-sequence side of generation (sampling, stops, budget) for a prompt of this model.</summary>
    public SequenceDecoder NewDecoder(IReadOnlyList<int> promptIds, GenerationOptions options) =>
        new(Tokenizer, EndOfSequenceIds, promptIds, options, Config.MaxPositionEmbeddings);

    /// <summary>Σ log p(continuation | context), as lm-evaluation-harness scores a choice.</summary>
    public ScoreResult Score(IReadOnlyList<int> contextIds, IReadOnlyList<int> continuationIds)
    {
        if (continuationIds.Count == 0) throw new AttuneException(null, "the continuation is empty");
        var context = contextIds.Count > 0 ? contextIds
            : [PrefixToken]; // an empty context is scored after BOS, as the harness does
        var all = context.Concat(continuationIds).ToArray();
        CheckContext(all.Length, "context and continuation");
        var cache = Transformer.NewCache(all.Length);
        var logits = Transformer.Forward(cache, all.AsSpan(0, all.Length - 1), firstLogitRow: context.Count - 1);
        return ContinuationScore(logits, continuationIds);
    }

    /// <summary>Σ log p of the continuation from its logit rows (row i predicts token i), and whether each was the argmax.</summary>
    static ScoreResult ContinuationScore(Logits logits, IReadOnlyList<int> continuation) => ContinuationScore(i => logits.Row(i), continuation);

    /// <summary>A row of logits by index (row i predicts token i of a continuation).</summary>
    public delegate ReadOnlySpan<float> LogitRow(int i);

    /// <summary>Σ log p of the continuation from its logit rows, and whether each token was the argmax (any engine's rows).</summary>
    public static ScoreResult ContinuationScore(LogitRow rows, IReadOnlyList<int> continuation)
    {
        double total = 0;
        bool greedy = true;
        for (int i = 0; i < continuation.Count; i++)
        {
            var row = rows(i);
            total += LogProb(row, continuation[i]);
            greedy &= TensorPrimitives.IndexOfMax(row) == continuation[i];
        }
        return new ScoreResult(total, greedy, continuation.Count);
    }

    public ScoreResult Score(string context, string continuation)
    {
        var (ctx, cont) = SplitForScoring(context, continuation);
        return Score(ctx, cont);
    }

    /// <summary>
    /// The context's ids and the continuation's ids as they fall when the two are encoded together
    /// (the harness's split: a token that straddles the boundary belongs to the continuation).
    /// </summary>
    public (int[] Context, int[] Continuation) SplitForScoring(string context, string continuation)
    {
        var whole = Tokenizer.Encode(context + continuation, addSpecialTokens: false);
        var ctx = Tokenizer.Encode(context, addSpecialTokens: false);
        var (c, cont) = Split(ctx, whole);
        return (PrefixContext(c, Tokenizer.BosId, PrefixToken, ScoresAfterBos(Config.ModelType)), cont);
    }

    /// <summary>The token an empty context is scored after: BOS, else the first end-of-sequence token.</summary>
    int PrefixToken => Tokenizer.BosId ?? EndOfSequenceIds.FirstOrDefault();

    /// <summary>
    /// Whether scored contexts start with BOS: lm-evaluation-harness adds it for the Gemma family (whose models
    /// underperform without it), named by config.json's model_type or llama.cpp's architecture.
    /// </summary>
    public static bool ScoresAfterBos(string modelType) => modelType.Contains("gemma", StringComparison.Ordinal);

    /// <summary>A scored context as the harness runs it: an empty one is the prefix token; with <paramref name="bosAlways"/>, BOS leads.</summary>
    public static int[] PrefixContext(int[] context, int? bos, int prefix, bool bosAlways) =>
        context.Length == 0 ? [bos ?? prefix]
        : bosAlways && bos is int b && context[0] != b ? [b, .. context]
        : context;

    /// <summary>The context's tokens and the continuation's, from the context alone and the two encoded together.</summary>
    public static (int[] Context, int[] Continuation) Split(int[] context, int[] whole)
    {
        int shared = 0;
        while (shared < context.Length && shared < whole.Length && context[shared] == whole[shared]) shared++;
        return (whole[..shared], whole[shared..]);
    }

    /// <summary>
    /// Scores many (context, continuation) pairs. With <paramref name="reusePrefixes"/>, pairs with the same context
    /// (a question's choices) compute it once, and contexts run in sorted order, in batches of several sequences per
    /// forward pass (see <see cref="Transformer.ForwardMany"/>): a batch's shared prefix (fixed few-shot examples) is
    /// computed once into a trunk cache and copied to each context's cache, each context's own tokens then run
    /// together, and then the continuations, one choice of every context per pass. Without, each pair is scored on
    /// its own as <see cref="Score(IReadOnlyList{int}, IReadOnlyList{int})"/> does. Results come back in the order
    /// given. <paramref name="progress"/> hears the count done.
    /// </summary>
    public ScoreResult[] ScoreMany(IReadOnlyList<(int[] Context, int[] Continuation)> pairs, bool reusePrefixes = true, Action<int>? progress = null)
    {
        var results = new ScoreResult[pairs.Count];
        if (!reusePrefixes)
        {
            for (int i = 0; i < pairs.Count; i++) { results[i] = Score(pairs[i].Context, pairs[i].Continuation); progress?.Invoke(i + 1); }
            return results;
        }
        var byContext = new Dictionary<int[], List<int>>(SequenceComparer.Instance);
        for (int i = 0; i < pairs.Count; i++)
        {
            var (ctx, cont) = pairs[i];
            if (cont.Length == 0) throw new AttuneException(null, "the continuation is empty");
            if (ctx.Length == 0) ctx = [PrefixToken];
            CheckContext(ctx.Length + cont.Length, "context and continuation");
            if (!byContext.TryGetValue(ctx, out var members)) byContext[ctx] = members = [];
            members.Add(i);
        }
        var groups = byContext.Select(g => (Context: g.Key, Members: g.Value)).ToList();
        groups.Sort((a, b) => a.Context.AsSpan().SequenceCompareTo(b.Context));
        var scorer = new BatchScorer(Transformer, pairs, results, ScoringRowsPerPass);
        int done = 0;
        for (int g0 = 0; g0 < groups.Count;)
        {
            int g1 = scorer.BatchEnd(groups, g0);
            scorer.Run(groups, g0, g1);
            for (int g = g0; g < g1; g++) done += groups[g].Members.Count;
            progress?.Invoke(done);
            g0 = g1;
        }
        return results;
    }

    /// <summary>The most context rows <see cref="ScoreMany"/> runs in one pass (tests lower it to make many batches).</summary>
    internal int ScoringRowsPerPass { get; set; } = 2048;

    /// <summary>Token sequences compared by content, for grouping pairs by their context.</summary>
    sealed class SequenceComparer : IEqualityComparer<int[]>
    {
        public static readonly SequenceComparer Instance = new();
        public bool Equals(int[]? a, int[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(int[] a)
        {
            var h = new HashCode();
            h.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
            return h.ToHashCode();
        }
    }

    /// <summary>The batches of <see cref="ScoreMany"/>: a trunk cache for the shared prefix, and caches reused across batches.</summary>
    sealed class BatchScorer(Transformer model, IReadOnlyList<(int[] Context, int[] Continuation)> pairs, ScoreResult[] results, int maxRows)
    {
        /// <summary>A bound on a batch's KV cache bytes for its contexts (rows in one pass: <see cref="ScoringRowsPerPass"/>).</summary>
        const long CacheBudget = 128L << 20;
        /// <summary>A batch of two or more contexts ends rather than let their shared prefix shrink by more than this (a task's shots ending).</summary>
        const int PrefixSlack = 8;

        readonly KvCache _trunk = model.NewCache(1);
        readonly List<KvCache> _caches = [];
        int[] _held = [];
        readonly long _bytesPerPosition = model.NewCache(1).Bytes;

        public int BatchEnd(List<(int[] Context, List<int> Members)> groups, int g0)
        {
            var first = groups[g0].Context;
            int prefix = first.Length - 1;
            long bytes = 0;
            int rows = 0, g = g0;
            for (; g < groups.Count; g++)
            {
                var (ctx, members) = groups[g];
                int longest = members.Max(m => pairs[m].Continuation.Length);
                int p = Math.Min(prefix, Math.Min(first.AsSpan().CommonPrefixLength(ctx), ctx.Length - 1));
                long b = bytes + (ctx.Length + longest) * _bytesPerPosition;
                int r = rows + ctx.Length - p;
                if (g > g0 && (b > CacheBudget || r > maxRows || (g > g0 + 1 && p < prefix - PrefixSlack))) break;
                (prefix, bytes, rows) = (p, b, r);
            }
            return g;
        }

        public void Run(List<(int[] Context, List<int> Members)> groups, int g0, int g1)
        {
            int n = g1 - g0;
            var first = groups[g0].Context;
            int prefix = first.Length - 1;
            for (int g = g0; g < g1; g++) prefix = Math.Min(prefix, Math.Min(first.AsSpan().CommonPrefixLength(groups[g].Context), groups[g].Context.Length - 1));
            // The shared prefix, in the trunk: what it already holds is kept.
            int reuse = Math.Min(_held.AsSpan().CommonPrefixLength(first.AsSpan(0, prefix)), _trunk.Length);
            _trunk.Truncate(reuse);
            if (prefix > reuse) model.Forward(_trunk, first.AsSpan(reuse, prefix - reuse));
            _held = first[..prefix];
            // Each context's own tokens, together; the last row predicts every member's first continuation token.
            while (_caches.Count < n) _caches.Add(model.NewCache(1));
            var caches = _caches.GetRange(0, n);
            var lengths = new int[n];
            var tokens = new List<int>();
            for (int i = 0; i < n; i++)
            {
                var (ctx, members) = groups[g0 + i];
                caches[i].CopyPrefix(_trunk, prefix);
                caches[i].Reserve(ctx.Length + members.Max(m => pairs[m].Continuation.Length));
                lengths[i] = ctx.Length - prefix;
                tokens.AddRange(ctx.AsSpan(prefix));
            }
            var logits = model.ForwardMany(caches, tokens.ToArray(), lengths);
            var sums = new double[n][];
            var greedy = new bool[n][];
            for (int i = 0; i < n; i++)
            {
                var members = groups[g0 + i].Members;
                (sums[i], greedy[i]) = (new double[members.Count], new bool[members.Count]);
                var row = logits.Row(i);
                int argmax = TensorPrimitives.IndexOfMax(row);
                for (int j = 0; j < members.Count; j++)
                {
                    int first0 = pairs[members[j]].Continuation[0];
                    (sums[i][j], greedy[i][j]) = (LogProb(row, first0), argmax == first0);
                }
            }
            // The rest of each continuation: member j of every context in pass j, each context's cache cut back after.
            int most = groups.Skip(g0).Take(n).Max(g => g.Members.Count);
            for (int j = 0; j < most; j++)
            {
                var passCaches = new List<KvCache>();
                var passLengths = new List<int>();
                var passTokens = new List<int>();
                var who = new List<int>();
                for (int i = 0; i < n; i++)
                {
                    var members = groups[g0 + i].Members;
                    if (j >= members.Count) continue;
                    var cont = pairs[members[j]].Continuation;
                    if (cont.Length < 2) continue;
                    passCaches.Add(caches[i]);
                    passLengths.Add(cont.Length - 1);
                    passTokens.AddRange(cont.AsSpan(0, cont.Length - 1));
                    who.Add(i);
                }
                if (who.Count == 0) continue;
                var pass = model.ForwardMany(passCaches, passTokens.ToArray(), passLengths.ToArray(), Enumerable.Range(0, passTokens.Count).ToArray());
                int row = 0;
                foreach (int i in who)
                {
                    var cont = pairs[groups[g0 + i].Members[j]].Continuation;
                    for (int t = 1; t < cont.Length; t++, row++)
                    {
                        var r = pass.Row(row);
                        sums[i][j] += LogProb(r, cont[t]);
                        greedy[i][j] &= TensorPrimitives.IndexOfMax(r) == cont[t];
                    }
                    caches[i].Truncate(groups[g0 + i].Context.Length);
                }
            }
            for (int i = 0; i < n; i++)
            {
                var members = groups[g0 + i].Members;
                for (int j = 0; j < members.Count; j++)
                    results[members[j]] = new ScoreResult(sums[i][j], greedy[i][j], pairs[members[j]].Continuation.Length);
            }
        }
    }

    /// <summary>The <paramref name="k"/> most likely next tokens after <paramref name="contextIds"/>, most likely first, with their log-probabilities.</summary>
    public (int Token, double LogProb)[] TopNext(IReadOnlyList<int> contextIds, int k)
    {
        if (contextIds.Count == 0) throw new AttuneException(null, "the context is empty");
        CheckContext(contextIds.Count + 1, "context");
        var ids = contextIds.ToArray();
        var logits = Transformer.Forward(Transformer.NewCache(ids.Length), ids, firstLogitRow: ids.Length - 1).Row(0).ToArray();
        var top = Enumerable.Range(0, logits.Length).OrderByDescending(t => logits[t]).ThenBy(t => t).Take(k).ToArray();
        return top.Select(t => (t, LogProb(logits, t))).ToArray();
    }

    /// <summary>
    /// The rank (1: the model's most likely token) under this model of each continuation token after the context
    /// and the tokens before it, and the token the model would have chosen instead: URIAL's token-distribution-shift
    /// measure when the continuation is another model's answer.
    /// </summary>
    public (int Rank, int Top)[] Ranks(IReadOnlyList<int> contextIds, IReadOnlyList<int> continuationIds)
    {
        if (continuationIds.Count == 0) return [];
        var context = contextIds.Count > 0 ? contextIds : [PrefixToken];
        var all = context.Concat(continuationIds).ToArray();
        CheckContext(all.Length, "context and continuation");
        var logits = Transformer.Forward(Transformer.NewCache(all.Length), all.AsSpan(0, all.Length - 1), firstLogitRow: context.Count - 1);
        var ranks = new (int, int)[continuationIds.Count];
        for (int i = 0; i < continuationIds.Count; i++)
        {
            var row = logits.Row(i);
            float chosen = row[continuationIds[i]];
            int higher = 0;
            foreach (var l in row) if (l > chosen) higher++;
            ranks[i] = (higher + 1, TensorPrimitives.IndexOfMax(row));
        }
        return ranks;
    }

    public static double LogProb(ReadOnlySpan<float> logits, int token)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        return logits[token] - max - Math.Log(sum);
    }

    /// <summary>
    /// Σ log p of every token of a text, as lm-evaluation-harness scores loglikelihood_rolling: the tokens (no special
    /// tokens) after a prefix token (BOS, else the end token), in disjoint windows of the model's context, each window
    /// conditioned on the tokens just before it so that every window but the first sees a full context.
    /// </summary>
    public ScoreResult ScoreRolling(string text, int maxLength = 0)
    {
        var ids = Tokenizer.Encode(text, addSpecialTokens: false);
        if (ids.Length == 0) throw new AttuneException(null, "the text to score has no tokens");
        int max = maxLength > 0 ? maxLength : Config.MaxPositionEmbeddings;
        double total = 0;
        bool greedy = true;
        foreach (var (context, continuation) in RollingWindows(ids, PrefixToken, max))
        {
            var run = context.Concat(continuation[..^1]).ToArray();
            var cache = Transformer.NewCache(run.Length);
            var score = ContinuationScore(Transformer.Forward(cache, run, firstLogitRow: context.Length - 1), continuation);
            total += score.LogProb;
            greedy &= score.IsGreedy;
        }
        return new ScoreResult(total, greedy, ids.Length);
    }

    /// <summary>
    /// loglikelihood_rolling's windows over a text's tokens, each at most <paramref name="max"/> tokens run: the first
    /// predicts ids[0..count) after the prefix token; later ones predict the next tokens after the max − count + 1
    /// tokens before them. Every token is predicted once.
    /// </summary>
    public static IEnumerable<(int[] Context, int[] Continuation)> RollingWindows(int[] ids, int prefix, int max)
    {
        for (int predicted = 0; predicted < ids.Length;)
        {
            int count = Math.Min(ids.Length - predicted, max);
            int[] context = predicted == 0 ? [prefix] : ids[Math.Max(0, predicted + count - max - 1)..predicted];
            yield return (context, ids[predicted..(predicted + count)]);
            predicted += count;
        }
    }

    /// <summary>Perplexity of a text over windows of <paramref name="window"/> tokens that overlap by half.</summary>
    public PerplexityResult Perplexity(string text, int window = 0)
    {
        var ids = Tokenizer.Encode(text, addSpecialTokens: true);
        if (ids.Length < 2) throw new AttuneException(null, "the text has fewer than two tokens");
        window = window <= 0 ? Math.Min(Config.MaxPositionEmbeddings, 1024) : Math.Min(window, Config.MaxPositionEmbeddings);
        if (window < 2) throw new AttuneException(null, "--context", "must be at least 2 tokens");
        int stride = Math.Max(1, window / 2);
        double nll = 0;
        int scored = 0, predictedUpTo = 1; // ids[0] is never predicted
        for (int start = 0; predictedUpTo < ids.Length; start += stride)
        {
            int end = Math.Min(start + window, ids.Length);
            var cache = Transformer.NewCache(end - start);
            int first = predictedUpTo - start - 1; // the logit row that predicts ids[predictedUpTo]
            var logits = Transformer.Forward(cache, ids.AsSpan(start, end - start - 1), firstLogitRow: first);
            for (int i = 0; i < logits.Rows; i++)
            {
                nll -= LogProb(logits.Row(i), ids[predictedUpTo + i]);
                scored++;
            }
            predictedUpTo = end;
        }
        return new PerplexityResult(scored, nll, Math.Exp(nll / scored));
    }
}
