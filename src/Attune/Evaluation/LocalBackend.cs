using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Evaluation;

/// <summary>
/// A model in this process. Calls are serialized: the engine runs one forward pass at a time and uses
/// every core for it. Many log-likelihoods share their common prefixes' KV cache; many generations
/// run through the continuous-batching engine.
/// </summary>
public sealed class LocalBackend(LanguageModel model, string? identity = null) : IModelBackend
{
    readonly SemaphoreSlim _gate = new(1, 1);

    public LanguageModel Model => model;
    public string Identity { get; } = identity ?? "local:" + Path.GetFullPath(model.Source);
    /// <summary>The identity its log-likelihoods are cached under (another model's when they score alike; see ModelBackends).</summary>
    public string ScoringIdentity { get => _scoringIdentity ?? Identity; init => _scoringIdentity = value; }
    readonly string? _scoringIdentity;
    /// <summary>Score shared prefixes once (on by default; the benchmark turns it off to compare).</summary>
    public bool ReusePrefixes { get; init; } = true;
    /// <summary>
    /// Sequences generated together by <see cref="GenerateManyAsync"/>; null (the default) chooses per call the widest
    /// batch up to <see cref="WidestBatch"/> whose KV caches, each as long as the longest prompt and its token budget,
    /// fit in <see cref="KvBudgetBytes"/> — and never under 8.
    /// </summary>
    public int? MaxBatch { get; init; }
    /// <summary>
    /// The widest default batch. A decode step reads every weight once for the whole batch, so tokens per second grow
    /// with the width until the products and attention, not the weight reads, bound a step: on SmolLM2-135M (2 threads)
    /// 8 → 16 → 32 → 64 gave 236 → 281 → 359 → 375 tok/s (bench: gen-width, bench/RESULTS.md).
    /// </summary>
    public const int WidestBatch = 64;
    /// <summary>The KV memory (f32) a default-width batch may take: 2 GiB.</summary>
    public const long KvBudgetBytes = 2L << 30;

    /// <summary>The batch width for these prompts and budgets (see <see cref="MaxBatch"/>).</summary>
    public int BatchWidth(IReadOnlyList<int[]> prompts, IReadOnlyList<GenerateRequest> requests)
    {
        if (MaxBatch is { } fixedWidth) return fixedWidth;
        var c = model.Config;
        long perToken = 2L * c.NumLayers * c.NumKvHeads * c.HeadDim * (model.Transformer.KvCacheBf16 ? sizeof(ushort) : sizeof(float));
        long longest = 1;
        for (int i = 0; i < prompts.Count; i++)
            longest = Math.Max(longest, Math.Min(c.MaxPositionEmbeddings, prompts[i].Length + (long)requests[i].Options.MaxNewTokens));
        return (int)Math.Clamp(KvBudgetBytes / (perToken * longest), 8, WidestBatch);
    }

    public Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default) =>
        Run(() => model.Score(context, continuation), cancel);

    public Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default) =>
        Run(() => Generate(model.Tokenizer.Encode(prompt, addSpecialTokens: true), options), cancel);

    public string RenderChat(IReadOnlyList<ChatMessage> conversation, string? templateName, bool continueFinalMessage) =>
        ChatPrompt.RenderTaskChat(ChatPrompt.TemplateOf(model.Tokenizer, templateName), conversation, continueFinalMessage, model.Tokenizer.Source);

    public string? ChatTemplateSource(string? templateName) => ChatPrompt.TemplateOf(model.Tokenizer, templateName).Source();

    public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
        Run(() => Generate(ChatPrompt.Encode(model.Tokenizer, PromptMode.Chat, null, conversation), options), cancel);

    public async Task<IReadOnlyList<ScoreResult>> LoglikelihoodManyAsync(IReadOnlyList<LoglikelihoodRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        var pairs = requests.Select(r => model.SplitForScoring(r.Context, r.Continuation)).ToList();
        return await Run(() => model.ScoreMany(pairs, ReusePrefixes, progress), cancel);
    }

    public async Task<IReadOnlyList<ScoreResult>> LoglikelihoodRollingManyAsync(IReadOnlyList<RollingRequest> requests, Action<int>? progress = null, CancellationToken cancel = default) =>
        await Run(() => requests.Select((r, i) => { var s = model.ScoreRolling(r.Text); progress?.Invoke(i + 1); return s; }).ToArray(), cancel);

    public async Task<IReadOnlyList<GeneratedText>> GenerateManyAsync(IReadOnlyList<GenerateRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        var prompts = requests.Select(r => r.Messages is { } m
            ? ChatPrompt.Encode(model.Tokenizer, PromptMode.Chat, null, m)
            : model.Tokenizer.Encode(r.Prompt ?? "", addSpecialTokens: !r.Templated)).ToList(); // a templated prompt writes its special tokens itself
        await _gate.WaitAsync(cancel);
        try
        {
            // The engine thread owns the model while the gate is held; it stops before the gate opens.
            // All the requests wait from the start: admitted half a batch at a time, their prompts prefill together.
            int width = BatchWidth(prompts, requests);
            using var engine = new BatchEngine(model, width, queueCapacity: requests.Count, admitTogether: Math.Max(1, width / 2));
            var readers = new System.Threading.Channels.ChannelReader<CompletionEvent>[requests.Count];
            for (int i = 0; i < requests.Count; i++)
                if (engine.Submit(new CompletionRequest { PromptIds = prompts[i], Options = requests[i].Options }, cancel, out readers[i]) != SubmitResult.Accepted)
                    throw new InvalidOperationException("the engine refused a request it had room for");
            var results = new GeneratedText[requests.Count];
            int done = 0;
            await Task.WhenAll(readers.Select(async (reader, i) =>
            {
                await foreach (var e in reader.ReadAllAsync(CancellationToken.None))
                    switch (e)
                    {
                        case CompletionFinished f: results[i] = new GeneratedText(f.Text, f.Reason, f.CompletionTokens); break;
                        case CompletionFailed f when f.IsUserError: throw new AttuneException(null, f.Message);
                        case CompletionFailed f: throw new InvalidOperationException(f.Message);
                    }
                progress?.Invoke(Interlocked.Increment(ref done));
            }));
            cancel.ThrowIfCancellationRequested();
            await engine.StopAsync(TimeSpan.Zero);
            for (int i = 0; i < requests.Count; i++)
                if (requests[i].Options.TopLogprobs > 0)
                    results[i] = results[i] with
                    {
                        TopLogprobs = model.TopNext(prompts[i], requests[i].Options.TopLogprobs).Select(t => new TokenLogprob(model.Tokenizer.Decode([t.Token]), t.LogProb)).ToList(),
                    };
            return results;
        }
        finally { _gate.Release(); }
    }

    GeneratedText Generate(int[] ids, GenerationOptions options)
    {
        var r = model.Generate(ids, options);
        return new GeneratedText(r.Text, r.Finish, r.Tokens.Count);
    }

    async Task<T> Run<T>(Func<T> work, CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel);
        try { return work(); }
        finally { _gate.Release(); }
    }

    public void Dispose()
    {
        model.Dispose();
        _gate.Dispose();
    }
}
