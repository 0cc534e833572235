using Attune.Formats;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Text.Templates;

namespace Attune.Evaluation.LlamaCpp;

/// <summary>
/// A GGUF model of any architecture llama.cpp runs (Mixtral, Phi-3, Falcon, …), evaluated through llama.cpp in this
/// process: log-likelihoods from its logits with lm-evaluation-harness's rules (the context/continuation split, BOS
/// before Gemma's contexts), many of them at once over llama.cpp's sequences with shared prefixes computed once;
/// generation with Attune's sampler and stopping rules, several sequences decoded together; chat through the GGUF's
/// own template rendered by Attune's Jinja engine. Tokens are llama.cpp's (the GGUF's vocabulary). Calls are
/// serialized: llama.cpp uses every core for one batch.
/// </summary>
public sealed class LlamaCppBackend : IModelBackend
{
    readonly LlamaCppModel _model;
    readonly SemaphoreSlim _gate = new(1, 1);
    readonly ChatTemplate? _template;
    readonly HashSet<int> _endOfSequence;
    readonly int? _bos;
    readonly bool _bosBeforeContexts;

    public string Identity { get; }
    /// <summary>Sequences decoded together (generation) or sharing a context (scoring).</summary>
    public int Width => _model.Sequences;
    /// <summary>The most positions one sequence may hold.</summary>
    public int SequenceWindow { get; }

    LlamaCppBackend(LlamaCppModel model, string identity, ChatTemplate? template, HashSet<int> endOfSequence, int sequenceWindow)
    {
        _model = model;
        Identity = identity;
        _template = template;
        _endOfSequence = endOfSequence;
        _bos = model.BeginOfText;
        _bosBeforeContexts = LanguageModel.ScoresAfterBos(model.Architecture);
        SequenceWindow = sequenceWindow;
    }

    /// <summary>
    /// Opens <paramref name="path"/> for <paramref name="width"/> sequences of up to <paramref name="window"/> positions
    /// each (clipped to what the model was trained with), with llama.cpp's f16 KV cache.
    /// </summary>
    public static LlamaCppBackend Open(string path, string identity, int width = 4, int window = 4096)
    {
        // Scoring keeps a context on sequence 0 and its continuations on the others.
        if (width < 2) throw new ArgumentOutOfRangeException(nameof(width), "at least two sequences");
        // The chat template and the special tokens' text come from the file's metadata, read here.
        string? templateSource;
        string[] tokens;
        using (var g = GgufFile.Open(path))
        {
            templateSource = g.OptionalString("tokenizer.chat_template");
            tokens = g.Has("tokenizer.ggml.tokens") ? g.Array<string>("tokenizer.ggml.tokens", GgufType.String) : [];
            int trained = (int)(g.OptionalInteger($"{g.String("general.architecture")}.context_length") ?? window);
            window = Math.Min(window, trained);
        }
        var model = LlamaCppModel.Load(path, contextSize: window * width, sequences: width, f32Cache: false);
        try
        {
            var specials = new Dictionary<string, string>();
            if (model.BeginOfText is int b && b < tokens.Length) specials["bos_token"] = tokens[b];
            if (model.EndOfText is int e && e < tokens.Length) specials["eos_token"] = tokens[e];
            var template = templateSource is null ? null : new ChatTemplate(templateSource, specials, path);
            var eos = new HashSet<int>();
            if (model.EndOfText is int eot) eos.Add(eot);
            foreach (var id in model.EndOfGenerationIds()) eos.Add(id);
            return new LlamaCppBackend(model, identity, template, eos, window);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    // ─── scoring ────────────────────────────────────────────────────────────────

    int[] Encode(string text) => _model.Tokenize(text, addSpecial: false, parseSpecial: true);

    /// <summary>The harness's split of context and continuation in llama.cpp's tokens; an empty context is BOS (or EOS).</summary>
    (int[] Context, int[] Continuation) Split(string context, string continuation)
    {
        var (ctx, cont) = LanguageModel.Split(Encode(context), Encode(context + continuation));
        if (cont.Length == 0) throw new AttuneException(null, "the continuation is empty");
        ctx = LanguageModel.PrefixContext(ctx, _bos, PrefixToken, _bosBeforeContexts);
        if (ctx.Length + cont.Length > SequenceWindow)
            throw new AttuneException(_model.Path, $"context and continuation of {ctx.Length + cont.Length} tokens exceed the window of {SequenceWindow}");
        return (ctx, cont);
    }

    int PrefixToken => _bos ?? _endOfSequence.FirstOrDefault();

    public async Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default) =>
        (await LoglikelihoodManyAsync([new LoglikelihoodRequest(context, continuation)], null, cancel))[0];

    /// <summary>Whole texts in loglikelihood_rolling's windows of at most <see cref="SequenceWindow"/> tokens, all scored together.</summary>
    public async Task<IReadOnlyList<ScoreResult>> LoglikelihoodRollingManyAsync(IReadOnlyList<RollingRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        var windows = requests.Select(r =>
        {
            var ids = Encode(r.Text);
            if (ids.Length == 0) throw new AttuneException(null, "the text to score has no tokens");
            return LanguageModel.RollingWindows(ids, PrefixToken, SequenceWindow).ToList();
        }).ToList();
        var scores = await Score(windows.SelectMany(w => w).ToList(), null, cancel);
        var results = new ScoreResult[requests.Count];
        int next = 0;
        for (int i = 0; i < requests.Count; i++)
        {
            var parts = scores.Skip(next).Take(windows[i].Count).ToList();
            next += parts.Count;
            results[i] = new ScoreResult(parts.Sum(p => p.LogProb), parts.All(p => p.IsGreedy), parts.Sum(p => p.Tokens));
            progress?.Invoke(i + 1);
        }
        return results;
    }

    /// <summary>
    /// Contexts in sorted order on sequence 0, each keeping the prefix it shares with the one before; a context's
    /// continuations then run together, each on its own sequence holding a copy of the context (no recomputation).
    /// </summary>
    public Task<IReadOnlyList<ScoreResult>> LoglikelihoodManyAsync(IReadOnlyList<LoglikelihoodRequest> requests, Action<int>? progress = null, CancellationToken cancel = default) =>
        Score(requests.Select(r => Split(r.Context, r.Continuation)).ToList(), progress, cancel);

    async Task<IReadOnlyList<ScoreResult>> Score(IReadOnlyList<(int[] Context, int[] Continuation)> pairs, Action<int>? progress, CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel);
        try
        {
            var results = new ScoreResult[pairs.Count];
            var groups = Enumerable.Range(0, pairs.Count).GroupBy(i => string.Join(",", pairs[i].Context))
                .OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
            _model.Clear();
            int[] held = [];
            int done = 0;
            foreach (var group in groups)
            {
                cancel.ThrowIfCancellationRequested();
                var ctx = pairs[group.First()].Context;
                int keep = Math.Min(ctx.AsSpan().CommonPrefixLength(held), ctx.Length - 1); // the last context token's logits are needed
                _model.Truncate(0, keep);
                var last = _model.Append(0, keep, ctx[keep..])[0];
                held = ctx;
                var members = group.ToList();
                for (int start = 0; start < members.Count; start += Width - 1)
                {
                    var chunk = members.Skip(start).Take(Width - 1).ToList();
                    var entries = new List<LlamaCppModel.Entry>();
                    for (int j = 0; j < chunk.Count; j++)
                    {
                        var cont = pairs[chunk[j]].Continuation;
                        int seq = j + 1;
                        _model.Truncate(seq, 0);
                        _model.CopyPrefix(0, seq, ctx.Length);
                        for (int k = 0; k < cont.Length - 1; k++) entries.Add(new(seq, ctx.Length + k, cont[k], true));
                    }
                    var rows = entries.Count > 0 ? _model.Decode(entries) : [];
                    int row = 0;
                    foreach (var i in chunk)
                    {
                        int first = row; // this continuation's rows after the context's last
                        results[i] = LanguageModel.ContinuationScore(k => k == 0 ? last : rows[first + k - 1], pairs[i].Continuation);
                        row += pairs[i].Continuation.Length - 1;
                        progress?.Invoke(++done);
                    }
                    for (int j = 0; j < chunk.Count; j++) _model.Truncate(j + 1, 0);
                }
            }
            return results;
        }
        finally { _gate.Release(); }
    }

    // ─── generation ─────────────────────────────────────────────────────────────

    public async Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default) =>
        (await GenerateManyAsync([GenerateRequest.Raw(prompt, options)], null, cancel))[0];

    public async Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
        (await GenerateManyAsync([GenerateRequest.Chat(conversation, options)], null, cancel))[0];

    ChatTemplate Template => _template ?? throw new AttuneException(_model.Path, "tokenizer.chat_template", "the GGUF carries no chat template; use a raw or URIAL prompt");

    public string RenderChat(IReadOnlyList<ChatMessage> conversation, string? templateName, bool continueFinalMessage) =>
        ChatPrompt.RenderTaskChat(NamedTemplate(templateName), conversation, continueFinalMessage, _model.Path);

    public string? ChatTemplateSource(string? templateName) => NamedTemplate(templateName).Resolve().Source;

    /// <summary>A GGUF carries one template (tokenizer.chat_template); a name asks for one it does not have.</summary>
    ChatTemplate NamedTemplate(string? templateName) => templateName is null ? Template
        : throw new AttuneException(_model.Path, "--apply-chat-template", $"a GGUF carries one chat template, not one named \"{templateName}\"");

    /// <summary>The request's prompt tokens: a conversation through the template, a raw prompt with the model's own special tokens.</summary>
    int[] PromptTokens(GenerateRequest r) => r.Messages is { } m
        ? Encode(ChatPrompt.RenderChat(Template, m, continueFinalMessage: false, _model.Path))
        : _model.Tokenize(r.Prompt ?? "", addSpecial: !r.Templated, parseSpecial: true);

    sealed class Running(int index, int sequence, SequenceDecoder decoder, int position, float[] logits)
    {
        public int Index = index, Sequence = sequence, Position = position;
        public SequenceDecoder Decoder = decoder;
        public float[] Logits = logits;
    }

    /// <summary>Up to <see cref="Width"/> generations decode together, one token each per llama.cpp batch; a finished one frees its sequence for the next.</summary>
    public async Task<IReadOnlyList<GeneratedText>> GenerateManyAsync(IReadOnlyList<GenerateRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        var prompts = requests.Select(PromptTokens).ToList();
        await _gate.WaitAsync(cancel);
        try
        {
            var results = new GeneratedText[requests.Count];
            var top = new IReadOnlyList<TokenLogprob>?[requests.Count]; // from the prompt's next-token distribution
            var free = new Stack<int>(Enumerable.Range(0, Width).Reverse());
            var running = new List<Running>();
            int next = 0, done = 0;
            _model.Clear();
            while (next < requests.Count || running.Count > 0)
            {
                cancel.ThrowIfCancellationRequested();
                while (next < requests.Count && free.Count > 0)
                {
                    int i = next++, seq = free.Pop();
                    var decoder = new SequenceDecoder(ids => _model.Detokenize(ids), _endOfSequence, prompts[i], requests[i].Options, SequenceWindow);
                    _model.Truncate(seq, 0);
                    var first = _model.Append(seq, 0, prompts[i])[0];
                    if (requests[i].Options.TopLogprobs is > 0 and var k)
                        top[i] = Enumerable.Range(0, first.Length).OrderByDescending(t => first[t]).Take(k)
                            .Select(t => new TokenLogprob(_model.Detokenize([t]), LanguageModel.LogProb(first, t))).ToList();
                    if (decoder.Finish is not null)
                    {
                        Finish(i, decoder);
                        _model.Truncate(seq, 0);
                        free.Push(seq);
                        continue;
                    }
                    running.Add(new Running(i, seq, decoder, prompts[i].Length, first));
                }
                var step = new List<LlamaCppModel.Entry>();
                var stepping = new List<Running>();
                foreach (var r in running.ToList())
                {
                    int token = r.Decoder.Sample(r.Logits);
                    r.Decoder.Accept(token);
                    if (r.Decoder.Finish is not null)
                    {
                        Finish(r.Index, r.Decoder);
                        running.Remove(r);
                        _model.Truncate(r.Sequence, 0);
                        free.Push(r.Sequence);
                        continue;
                    }
                    step.Add(new(r.Sequence, r.Position++, token, true));
                    stepping.Add(r);
                }
                if (step.Count == 0) continue;
                var rows = _model.Decode(step);
                for (int k = 0; k < stepping.Count; k++) stepping[k].Logits = rows[k];
            }
            return results;

            void Finish(int i, SequenceDecoder decoder)
            {
                results[i] = new GeneratedText(decoder.Text, decoder.Finish!.Value, decoder.Generated.Count) { TopLogprobs = top[i] };
                progress?.Invoke(++done);
            }
        }
        finally { _gate.Release(); }
    }

    bool _disposed;

    /// <summary>Waits for a call in flight (its native state is in use), then frees the model; a second call does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _gate.Wait();
        _disposed = true;
        _model.Dispose();
        _gate.Dispose();
    }
}
