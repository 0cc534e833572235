using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Attune.Modeling;

/// <summary>What a client asks of the engine: continue a prompt, optionally with log-probabilities.</summary>
public sealed record CompletionRequest
{
    public required int[] PromptIds { get; init; }
    public GenerationOptions Options { get; init; } = new();
    /// <summary>Log-probabilities of the generated tokens with this many alternatives each; null: none.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Also score the prompt's own tokens (the first has no log-probability): the harness's echo.</summary>
    public bool ScorePrompt { get; init; }
}

/// <summary>What the engine reports of a request, in order: the prompt's scores (when asked), tokens, one end.</summary>
public abstract record CompletionEvent;

/// <summary>Log-probabilities of prompt tokens 1..n-1 (token 0 has none).</summary>
public sealed record PromptScored(IReadOnlyList<TokenLogprob> Tokens) : CompletionEvent;

/// <summary>
/// A generated token and the text that became safe to show with it. <see cref="Id"/> is -1 for text alone
/// (the rest of the text at a stop string); <see cref="IsStop"/> marks a stop token, which adds no text but
/// whose log-probability clients that score with echo expect to see (the harness drops the last entry).
/// </summary>
public sealed record TokenGenerated(int Id, string Text, TokenLogprob? Logprob, bool IsStop = false) : CompletionEvent;

public sealed record CompletionFinished(FinishReason Reason, string Text, int PromptTokens, int CompletionTokens) : CompletionEvent;

/// <summary>The request failed (bad input found late, or an engine failure); <see cref="IsUserError"/> tells which.</summary>
public sealed record CompletionFailed(string Message, bool IsUserError) : CompletionEvent;

public enum SubmitResult { Accepted, QueueFull, TooLarge, ShuttingDown }

/// <summary>
/// Continuous batching over one model: requests wait in a bounded queue; a single engine thread
/// admits them into the running batch (prefill), then advances every running sequence by one token
/// per step with one batched forward pass, so a sequence joins or leaves the batch between any two
/// steps. Each request's events go to its own channel; a cancelled request leaves at the next step.
/// A batch of one computes exactly what <see cref="LanguageModel.Generate"/> computes.
/// </summary>
public sealed class BatchEngine : IDisposable
{
    /// <summary>Prompts scored for echo are run this many rows at a time, bounding the logits buffer.</summary>
    const int ScoreChunk = 512;

    readonly LanguageModel _model;
    readonly ConcurrentQueue<Job> _queue = new();
    readonly SemaphoreSlim _wake = new(0);
    readonly Thread _thread;
    readonly CancellationTokenSource _abort = new();
    readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly object _submitLock = new();
    int _queued, _active, _cancellations;
    volatile bool _accepting = true;

    public LanguageModel Model => _model;
    public int MaxBatch { get; }
    public int QueueCapacity { get; }
    /// <summary>Requests waiting to be admitted.</summary>
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>Sequences in the running batch.</summary>
    public int Active => Volatile.Read(ref _active);
    /// <summary>Requests that ended cancelled (their client went away, or shutdown outlasted the grace).</summary>
    public int Cancellations => Volatile.Read(ref _cancellations);
    /// <summary>The most sequences one decode step has advanced together so far.</summary>
    public int LargestBatch => Volatile.Read(ref _largest);
    int _largest;
    /// <summary>The most prompts prefilled together in one forward pass so far.</summary>
    public int LargestPrefill => Volatile.Read(ref _largestPrefill);
    int _largestPrefill;

    /// <summary>
    /// Requests are admitted once this many places are free (or the batch is empty, or fewer wait), so that their
    /// prompts are prefilled together in one pass; 1 (the default, for serving) admits each as soon as it can run.
    /// </summary>
    public int AdmitTogether { get; }

    public BatchEngine(LanguageModel model, int maxBatch = 8, int queueCapacity = 64, int admitTogether = 1)
    {
        AdmitTogether = Math.Clamp(admitTogether, 1, Math.Max(1, maxBatch));
        if (maxBatch < 1) throw new AttuneException(null, "--max-batch", $"{maxBatch} must be ≥ 1");
        if (queueCapacity < 0) throw new AttuneException(null, "--queue", $"{queueCapacity} must be ≥ 0");
        _model = model;
        MaxBatch = maxBatch;
        QueueCapacity = queueCapacity;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"attune engine {model.Source}" };
        _thread.Start();
    }

    /// <summary>Queues a request; its events arrive on <paramref name="events"/> until the end event.</summary>
    public SubmitResult Submit(CompletionRequest request, CancellationToken cancel, out ChannelReader<CompletionEvent> events)
    {
        var result = Submit([request], cancel, out var all);
        events = result == SubmitResult.Accepted ? all[0] : null!;
        return result;
    }

    /// <summary>
    /// Queues several requests all or none (the choices of one HTTP call). More than the engine can ever
    /// hold at once (<see cref="QueueCapacity"/> + <see cref="MaxBatch"/>) is <see cref="SubmitResult.TooLarge"/>.
    /// </summary>
    public SubmitResult Submit(IReadOnlyList<CompletionRequest> requests, CancellationToken cancel, out ChannelReader<CompletionEvent>[] events)
    {
        events = [];
        if (!_accepting) return SubmitResult.ShuttingDown;
        if (requests.Count > QueueCapacity + MaxBatch) return SubmitResult.TooLarge;
        lock (_submitLock)
        {
            if (Queued + requests.Count > QueueCapacity + Math.Max(0, MaxBatch - Active)) return SubmitResult.QueueFull;
            Interlocked.Add(ref _queued, requests.Count);
        }
        events = new ChannelReader<CompletionEvent>[requests.Count];
        var jobs = new Job[requests.Count];
        for (int i = 0; i < requests.Count; i++)
        {
            var channel = Channel.CreateUnbounded<CompletionEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
            jobs[i] = new Job(requests[i], cancel, channel.Writer);
            events[i] = channel.Reader;
        }
        // Enqueued under the lock the engine takes to take them off, so requests submitted together arrive together.
        lock (_queue) foreach (var job in jobs) _queue.Enqueue(job);
        _wake.Release();
        if (_stopped.Task.IsCompleted) CancelQueued(); // the engine stopped between the check above and now
        return SubmitResult.Accepted;
    }

    /// <summary>
    /// Stops admitting requests, lets the running and queued ones finish for up to <paramref name="grace"/>,
    /// then cancels what is left and stops the engine thread.
    /// </summary>
    public async Task StopAsync(TimeSpan grace)
    {
        _accepting = false;
        _wake.Release();
        if (await Task.WhenAny(_stopped.Task, Task.Delay(grace)) != _stopped.Task) _abort.Cancel();
        _wake.Release();
        await _stopped.Task;
    }

    public void Dispose()
    {
        if (!_stopped.Task.IsCompleted) StopAsync(TimeSpan.Zero).GetAwaiter().GetResult();
        _abort.Dispose();
    }

    sealed record Job(CompletionRequest Request, CancellationToken Cancel, ChannelWriter<CompletionEvent> Events);

    /// <summary>A running sequence: its cache, its decoder, the token to feed next.</summary>
    sealed class Running(Job job, KvCache cache, SequenceDecoder decoder)
    {
        /// <summary>Counted in <see cref="Active"/> (from admission until its end event).</summary>
        public bool Counted;
        public Job Job { get; } = job;
        public KvCache Cache { get; } = cache;
        public SequenceDecoder Decoder { get; } = decoder;
        public int Next;
        public bool Cancelled => Job.Cancel.IsCancellationRequested;
    }

    void Loop()
    {
        var running = new List<Running>();
        var waiting = new List<Job>(); // taken off the shared queue, still counted in Queued, in arrival order
        try
        {
            while (true)
            {
                lock (_queue) while (_queue.TryDequeue(out var job)) waiting.Add(job);
                if (_abort.IsCancellationRequested)
                {
                    foreach (var r in running) End(r, FinishReason.Cancelled);
                    running.Clear();
                    foreach (var w in waiting) { Interlocked.Decrement(ref _queued); Cancelled(w); }
                    waiting.Clear();
                    break;
                }
                // Requests cancelled while they waited give their places back now, not when their turn comes.
                waiting.RemoveAll(w =>
                {
                    if (!w.Cancel.IsCancellationRequested) return false;
                    Interlocked.Decrement(ref _queued);
                    Cancelled(w);
                    return true;
                });
                int free = MaxBatch - running.Count;
                if (free > 0 && waiting.Count > 0 && (running.Count == 0 || free >= Math.Min(AdmitTogether, waiting.Count)))
                {
                    var jobs = waiting.GetRange(0, Math.Min(free, waiting.Count));
                    waiting.RemoveRange(0, jobs.Count);
                    foreach (var job in jobs)
                    {
                        // Counted as active before it stops counting as queued, so Submit never sees it in neither.
                        Interlocked.Increment(ref _active);
                        Interlocked.Decrement(ref _queued);
                    }
                    running.AddRange(AdmitAll(jobs));
                }
                running.RemoveAll(r => r.Cancelled && End(r, FinishReason.Cancelled));
                if (running.Count == 0)
                {
                    if (waiting.Count > 0) continue;
                    if (!_accepting && _queue.IsEmpty) break;
                    _wake.Wait();
                    continue;
                }
                Step(running);
                running.RemoveAll(r => r.Decoder.Finish is not null);
            }
        }
        catch (Exception e)
        {
            // A bug, not a request's fault: every request still open hears of it instead of waiting forever.
            foreach (var r in running) Fail(r, e);
            foreach (var w in waiting)
            {
                Interlocked.Decrement(ref _queued);
                w.Events.TryWrite(new CompletionFailed($"{e.GetType().Name}: {e.Message}", IsUserError: false));
                w.Events.TryComplete();
            }
            _accepting = false;
        }
        finally
        {
            _stopped.TrySetResult();
            CancelQueued();
        }
    }

    /// <summary>Ends every request still in the shared queue as cancelled (after the engine stopped).</summary>
    void CancelQueued()
    {
        while (_queue.TryDequeue(out var job))
        {
            Interlocked.Decrement(ref _queued);
            Cancelled(job);
        }
    }

    void Cancelled(Job job)
    {
        Interlocked.Increment(ref _cancellations);
        job.Events.TryWrite(new CompletionFinished(FinishReason.Cancelled, "", job.Request.PromptIds.Length, 0));
        job.Events.TryComplete();
    }

    void Fail(Running r, Exception e)
    {
        r.Decoder.Cancel();
        Uncount(r);
        r.Job.Events.TryWrite(new CompletionFailed(e is AttuneException ? e.Message : $"{e.GetType().Name}: {e.Message}", e is AttuneException));
        r.Job.Events.TryComplete();
    }

    /// <summary>
    /// Admits jobs that arrive counted in <see cref="Active"/>: a prompt scored for echo on its own (<see cref="Admit"/>), the
    /// others prefilled together (<see cref="Prefill"/>). Returns the sequences that go on running.
    /// </summary>
    List<Running> AdmitAll(List<Job> jobs)
    {
        var started = new List<Running>();
        var pending = new List<Running>();
        foreach (var job in jobs)
        {
            if (job.Request.ScorePrompt) { if (Admit(job) is { } r) started.Add(r); }
            else if (Begin(job, endWhenDone: true) is { } p) pending.Add(p);
        }
        started.AddRange(Prefill(pending));
        return started;
    }

    /// <summary>
    /// A job's decoder and cache, before its prompt runs; null (and the job ended) when it cannot run, or with
    /// <paramref name="endWhenDone"/> when it has nothing to generate (a zero budget).
    /// </summary>
    Running? Begin(Job job, bool endWhenDone)
    {
        if (job.Cancel.IsCancellationRequested)
        {
            Interlocked.Decrement(ref _active);
            Cancelled(job);
            return null;
        }
        Running? running = null;
        try
        {
            var decoder = _model.NewDecoder(job.Request.PromptIds, job.Request.Options);
            // Room for a first stretch of the reply; the cache doubles when the reply outgrows it, so a
            // request allowed the whole context window does not reserve it up front.
            var cache = _model.Transformer.NewCache(job.Request.PromptIds.Length + Math.Min(decoder.Budget, 256));
            running = new Running(job, cache, decoder) { Counted = true };
            if (endWhenDone && decoder.Finish is not null) { End(running, decoder.Finish.Value); return null; }
            return running;
        }
        catch (Exception e)
        {
            if (running is not null) Uncount(running);
            else Interlocked.Decrement(ref _active);
            job.Events.TryWrite(e is AttuneException ? new CompletionFailed(e.Message, IsUserError: true)
                : new CompletionFailed($"{e.GetType().Name}: {e.Message}", IsUserError: false));
            job.Events.TryComplete();
            return null;
        }
    }

    /// <summary>A shared prompt prefix of at least this many tokens is computed once and copied to each cache.</summary>
    const int SharedPrefixTokens = 16;
    KvCache? _trunk;
    int[] _trunkTokens = [];

    /// <summary>
    /// Runs the prompts of several sequences in one forward pass and takes each one's first token. Prompts that share a
    /// prefix of at least <see cref="SharedPrefixTokens"/> (a task's fixed few-shot examples) form a group whose prefix
    /// is computed once, in a trunk cache that keeps the last group's prefix for the next admission, and copied to each
    /// member; the pass then runs every prompt's rest. A batch that fails (a prompt the model cannot take) is run again
    /// one prompt at a time, so only the bad prompt fails.
    /// </summary>
    List<Running> Prefill(List<Running> pending)
    {
        if (pending.Count == 0) return [];
        var transformer = _model.Transformer;
        {
            try
            {
                // In token order, neighbours share the longest prefixes; a group ends where the shared part gets short.
                var order = Enumerable.Range(0, pending.Count)
                    .OrderBy(i => pending[i].Job.Request.PromptIds, Comparer<int[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b))).ToArray();
                var prefix = new int[pending.Count];
                for (int g = 0; g < order.Length;)
                {
                    var first = pending[order[g]].Job.Request.PromptIds;
                    int shared = first.Length - 1, end = g + 1;
                    for (; end < order.Length; end++)
                    {
                        var ids = pending[order[end]].Job.Request.PromptIds;
                        int next = Math.Min(shared, Math.Min(first.AsSpan().CommonPrefixLength(ids), ids.Length - 1));
                        if (next < SharedPrefixTokens) break;
                        shared = next;
                    }
                    // A prompt alone still takes what the trunk kept from the last admission.
                    if (end == g + 1) shared = Math.Min(shared, _trunkTokens.AsSpan().CommonPrefixLength(first));
                    if (shared >= SharedPrefixTokens)
                    {
                        _trunk ??= transformer.NewCache(shared);
                        int reuse = Math.Min(_trunkTokens.AsSpan().CommonPrefixLength(first.AsSpan(0, shared)), _trunk.Length);
                        _trunk.Truncate(reuse);
                        _trunkTokens = [];
                        if (shared > reuse) transformer.Forward(_trunk, first.AsSpan(reuse, shared - reuse));
                        _trunkTokens = first[..shared];
                        for (int j = g; j < end; j++)
                        {
                            pending[order[j]].Cache.CopyPrefix(_trunk, shared);
                            prefix[order[j]] = shared;
                        }
                    }
                    g = end;
                }
                var tokens = new List<int>();
                var lengths = new int[pending.Count];
                for (int i = 0; i < pending.Count; i++)
                {
                    var ids = pending[i].Job.Request.PromptIds;
                    tokens.AddRange(ids.AsSpan(prefix[i]));
                    lengths[i] = ids.Length - prefix[i];
                }
                var logits = transformer.ForwardMany(pending.Select(r => r.Cache).ToList(), tokens.ToArray(), lengths);
                if (pending.Count > _largestPrefill) Volatile.Write(ref _largestPrefill, pending.Count);
                var started = new List<Running>();
                for (int i = 0; i < pending.Count; i++)
                {
                    try { Take(pending[i], logits.Row(i)); }
                    catch (Exception e) { Fail(pending[i], e); continue; }
                    if (pending[i].Decoder.Finish is null) started.Add(pending[i]);
                }
                return started;
            }
            catch (Exception) when (pending.Count > 1)
            {
                _trunkTokens = [];
                foreach (var r in pending) r.Cache.Truncate(0); // and each alone below
            }
            catch (Exception e)
            {
                Fail(pending[0], e);
                return [];
            }
        }
        var alone = new List<Running>();
        foreach (var r in pending)
        {
            try { Take(r, transformer.Forward(r.Cache, r.Job.Request.PromptIds).Row(0)); }
            catch (Exception e) { Fail(r, e); continue; }
            if (r.Decoder.Finish is null) alone.Add(r);
        }
        return alone;
    }

    /// <summary>Prefills a prompt scored for echo, reports its scores, and takes its first token; null when it ends there.</summary>
    /// <remarks>The job arrives counted in <see cref="Active"/>; every way out of here but a running sequence uncounts it.</remarks>
    Running? Admit(Job job)
    {
        if (Begin(job, endWhenDone: false) is not { } running) return null;
        try
        {
            var prompt = job.Request.PromptIds;
            var scored = new List<TokenLogprob>(prompt.Length);
            int top = job.Request.Logprobs ?? 0;
            Logits logits = default;
            for (int start = 0; start < prompt.Length;)
            {
                int n = Math.Min(ScoreChunk, prompt.Length - start);
                if (prompt.Length - start - n == 1) n++; // no chunk of one row: it would take the matrix-vector path
                logits = _model.Transformer.Forward(running.Cache, prompt.AsSpan(start, n), allLogits: true);
                for (int i = 0; i < n; i++)
                    if (start + i + 1 < prompt.Length)
                        scored.Add(Logprobs.Of(logits.Row(i), prompt[start + i + 1], top));
                start += n;
            }
            job.Events.TryWrite(new PromptScored(scored));
            if (running.Decoder.Finish is { } done) { End(running, done); return null; }
            // The last prompt row's logits are still in the buffer, at the end of the last chunk.
            Take(running, logits.Row(logits.Rows - 1));
            return running.Decoder.Finish is null ? running : null;
        }
        catch (Exception e)
        {
            Fail(running, e);
            return null;
        }
    }

    /// <summary>One token for every running sequence, in one forward pass.</summary>
    void Step(List<Running> running)
    {
        if (running.Count > _largest) Volatile.Write(ref _largest, running.Count);
        var caches = new KvCache[running.Count];
        var tokens = new int[running.Count];
        for (int i = 0; i < running.Count; i++) { caches[i] = running[i].Cache; tokens[i] = running[i].Next; }
        Logits logits;
        try { logits = _model.Transformer.ForwardBatch(caches, tokens); }
        catch (Exception e)
        {
            foreach (var r in running) Fail(r, e);
            return;
        }
        for (int i = 0; i < running.Count; i++)
        {
            try { Take(running[i], logits.Row(i)); }
            catch (Exception e) { Fail(running[i], e); }
        }
    }

    /// <summary>Samples a sequence's next token from its logits row and reports it; ends the sequence when it is done.</summary>
    void Take(Running r, ReadOnlySpan<float> row)
    {
        int next = r.Decoder.Sample(row);
        var logprob = r.Job.Request.Logprobs is int top ? Logprobs.Of(row, next, top) : null;
        int before = r.Decoder.Generated.Count;
        var shown = r.Decoder.Accept(next);
        bool kept = r.Decoder.Generated.Count > before; // a stop token is not part of the output
        if (kept || shown.Length > 0) r.Job.Events.TryWrite(new TokenGenerated(kept ? next : -1, shown, kept ? logprob : null));
        if (!kept && r.Decoder.Finish == FinishReason.Stop) r.Job.Events.TryWrite(new TokenGenerated(next, "", logprob, IsStop: true));
        r.Next = next;
        if (r.Decoder.Finish is { } finish) End(r, finish);
    }

    /// <summary>Takes a finished sequence out of <see cref="Active"/> before its end event goes out, so that a
    /// client answered at once and sending its next request finds the slot free.</summary>
    void Uncount(Running r)
    {
        if (!r.Counted) return;
        r.Counted = false;
        Interlocked.Decrement(ref _active);
    }

    bool End(Running r, FinishReason reason)
    {
        r.Decoder.Cancel();
        Uncount(r);
        if (reason == FinishReason.Cancelled) Interlocked.Increment(ref _cancellations);
        r.Job.Events.TryWrite(new CompletionFinished(reason, r.Decoder.Text, r.Job.Request.PromptIds.Length, r.Decoder.Generated.Count));
        r.Job.Events.TryComplete();
        return true;
    }
}
