using System.Text.Json.Nodes;
using Attune.Modeling;

namespace Attune.Evaluation;

/// <summary>
/// Answers a task's requests through a backend: identical requests are asked once, answers already in
/// the cache are not asked at all, and the rest go to the backend in chunks (sorted so that requests
/// sharing a prefix are neighbours) whose answers are stored as each chunk finishes, so a killed run
/// loses at most one chunk.
/// </summary>
public sealed class RequestRunner(IModelBackend backend, ResponseCache? cache = null)
{
    /// <summary>Requests sent to the backend per chunk.</summary>
    public int ChunkSize { get; init; } = 512;

    public IModelBackend Backend => backend;
    /// <summary>Requests answered from the cache, computed by the backend, and repeated within a call.</summary>
    public int CacheHits { get; private set; }
    public int Computed { get; private set; }
    public int Duplicates { get; private set; }

    public Task<ScoreResult[]> LoglikelihoodAsync(IReadOnlyList<LoglikelihoodRequest> requests, Action<int, int>? progress = null, CancellationToken cancel = default) =>
        RunAsync(requests, "loglikelihood",
            (chunk, report) => backend.LoglikelihoodManyAsync(chunk, report, cancel),
            r => new JsonObject { ["logprob"] = r.LogProb, ["greedy"] = r.IsGreedy, ["tokens"] = r.Tokens },
            j => new ScoreResult(j["logprob"]!.GetValue<double>(), j["greedy"]!.GetValue<bool>(), j["tokens"]!.GetValue<int>()),
            r => r.Context + r.Continuation, progress);

    public Task<ScoreResult[]> LoglikelihoodRollingAsync(IReadOnlyList<RollingRequest> requests, Action<int, int>? progress = null, CancellationToken cancel = default) =>
        RunAsync(requests, "loglikelihood_rolling",
            (chunk, report) => backend.LoglikelihoodRollingManyAsync(chunk, report, cancel),
            r => new JsonObject { ["logprob"] = r.LogProb, ["greedy"] = r.IsGreedy, ["tokens"] = r.Tokens },
            j => new ScoreResult(j["logprob"]!.GetValue<double>(), j["greedy"]!.GetValue<bool>(), j["tokens"]!.GetValue<int>()),
            r => r.Text, progress);

    public Task<GeneratedText[]> GenerateAsync(IReadOnlyList<GenerateRequest> requests, Action<int, int>? progress = null, CancellationToken cancel = default) =>
        RunAsync(requests, "generate",
            (chunk, report) => backend.GenerateManyAsync(chunk, report, cancel),
            r =>
            {
                var o = new JsonObject { ["text"] = r.Text, ["finish"] = r.Finish.ToString(), ["tokens"] = r.CompletionTokens };
                if (r.TopLogprobs is { } top) o["top_logprobs"] = new JsonArray(top.Select(t => (JsonNode)new JsonObject { ["token"] = t.Token, ["logprob"] = t.Logprob }).ToArray());
                return o;
            },
            j => new GeneratedText(j["text"]!.GetValue<string>(), Enum.Parse<FinishReason>(j["finish"]!.GetValue<string>()), j["tokens"]!.GetValue<int>())
            {
                TopLogprobs = j["top_logprobs"] is JsonArray top ? top.Select(t => new TokenLogprob(t!["token"]!.GetValue<string>(), t["logprob"]!.GetValue<double>())).ToList() : null,
            },
            r => r.Prompt ?? string.Concat(r.Messages!.Select(m => m.Content)), progress);

    async Task<TAnswer[]> RunAsync<TRequest, TAnswer>(IReadOnlyList<TRequest> requests, string kind,
        Func<IReadOnlyList<TRequest>, Action<int>, Task<IReadOnlyList<TAnswer>>> compute,
        Func<TAnswer, JsonObject> save, Func<JsonNode, TAnswer> load, Func<TRequest, string> sortKey, Action<int, int>? progress)
        where TRequest : EvalRequest
    {
        // Log-likelihoods are keyed by the scoring identity: a model that scores exactly as another shares its answers.
        var keys = requests.Select(r => ResponseCache.Key(r is LoglikelihoodRequest or RollingRequest ? backend.ScoringIdentity : backend.Identity, r)).ToArray();
        var unique = new Dictionary<string, int>(); // key → index of its first request
        for (int i = 0; i < requests.Count; i++) unique.TryAdd(keys[i], i);
        Duplicates += requests.Count - unique.Count;
        var answers = new Dictionary<string, TAnswer>();
        if (cache is not null)
            foreach (var (key, value) in cache.GetMany(unique.Keys))
                answers[key] = load(JsonNode.Parse(value)!);
        CacheHits += answers.Count;
        var missing = unique.Where(kv => !answers.ContainsKey(kv.Key)).Select(kv => kv.Value)
            .OrderBy(i => sortKey(requests[i]), StringComparer.Ordinal).ToList();
        int before = answers.Count, total = unique.Count;
        progress?.Invoke(before, total);
        for (int start = 0; start < missing.Count; start += ChunkSize)
        {
            var chunk = missing.Skip(start).Take(ChunkSize).ToList();
            int offset = before + start;
            var results = await compute(chunk.Select(i => requests[i]).ToList(), done => progress?.Invoke(offset + done, total));
            for (int j = 0; j < chunk.Count; j++) answers[keys[chunk[j]]] = results[j];
            cache?.PutMany(kind, chunk.Select((i, j) => (keys[i], save(results[j]).ToJsonString())));
            Computed += chunk.Count;
        }
        return keys.Select(k => answers[k]).ToArray();
    }
}
