using System.Text.Json.Nodes;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Tasks;

/// <summary>
/// Runs few-shot tasks on one model: every task's requests go through one <see cref="RequestRunner"/>
/// call per kind, so requests shared across tasks are asked once and prefixes are shared across them.
/// </summary>
public static class IclEvaluation
{
    /// <summary>
    /// Scores every task. With <paramref name="shotSets"/> K, each task's items are scored under K fixed shot sets (one per
    /// set, shared by all its items, so every item of a set reuses one prompt prefix) and the sets are averaged
    /// (<see cref="IclTask.CombineShotSets"/>); without it, shots are drawn as each task says (per item by default).
    /// </summary>
    public static async Task<List<TaskResult>> RunAsync(IReadOnlyList<IclTask> tasks, RequestRunner runner, int? shots = null, int? limit = null,
        Action<string, int, int>? progress = null, CancellationToken cancel = default, TaskPrompting? prompting = null, int? shotSets = null)
    {
        if (shotSets is < 1) throw new AttuneException(null, "--shots-per-task", "must be at least 1");
        // One run per task, or per task and shot set; all runs' requests go to the runner together.
        var runs = tasks.SelectMany((task, t) => shotSets is int k
            ? Enumerable.Range(0, k).Select(set => (Task: t, Items: task.Items(shots, limit, prompting, set)))
            : [(Task: t, Items: task.Items(shots, limit, prompting))]).ToList();
        var scoreRequests = new List<LoglikelihoodRequest>();
        var rollingRequests = new List<RollingRequest>();
        var generateRequests = new List<GenerateRequest>();
        foreach (var (t, items) in runs)
            switch (tasks[t].Config.OutputType)
            {
                case OutputType.MultipleChoice or OutputType.Loglikelihood: scoreRequests.AddRange(tasks[t].LoglikelihoodRequests(items)); break;
                case OutputType.LoglikelihoodRolling: rollingRequests.AddRange(items.Select(tasks[t].RollingRequestFor)); break;
                default:
                    foreach (var item in items)
                        for (int r = 0; r < tasks[t].Config.Repeats; r++) generateRequests.Add(tasks[t].GenerateRequestFor(item));
                    break;
            }
        var scores = scoreRequests.Count > 0
            ? await runner.LoglikelihoodAsync(scoreRequests, (done, total) => progress?.Invoke("loglikelihood", done, total), cancel) : [];
        var rolling = rollingRequests.Count > 0
            ? await runner.LoglikelihoodRollingAsync(rollingRequests, (done, total) => progress?.Invoke("loglikelihood_rolling", done, total), cancel) : [];
        var generations = generateRequests.Count > 0
            ? await runner.GenerateAsync(generateRequests, (done, total) => progress?.Invoke("generate", done, total), cancel) : [];

        var perRun = new List<TaskResult>(runs.Count);
        int scoreAt = 0, rollingAt = 0, generationAt = 0;
        foreach (var (t, items) in runs)
        {
            var task = tasks[t];
            int k = shots ?? task.Config.NumFewshot;
            switch (task.Config.OutputType)
            {
                case OutputType.MultipleChoice:
                    int count = items.Sum(i => i.Choices!.Count);
                    perRun.Add(task.ScoreChoices(items, scores[scoreAt..(scoreAt + count)], k));
                    scoreAt += count;
                    break;
                case OutputType.Loglikelihood:
                    perRun.Add(task.ScoreLoglikelihoods(items, scores[scoreAt..(scoreAt + items.Count)], k));
                    scoreAt += items.Count;
                    break;
                case OutputType.LoglikelihoodRolling:
                    perRun.Add(task.ScoreRolling(items, rolling[rollingAt..(rollingAt + items.Count)], k));
                    rollingAt += items.Count;
                    break;
                default:
                    int n = items.Count * task.Config.Repeats;
                    perRun.Add(task.ScoreGenerations(items, generations[generationAt..(generationAt + n)], k));
                    generationAt += n;
                    break;
            }
        }
        return tasks.Select((task, t) => task.CombineShotSets(runs.Select((r, i) => (r.Task, Result: perRun[i])).Where(x => x.Task == t).Select(x => x.Result).ToList(),
            shots ?? task.Config.NumFewshot)).ToList();
    }

    /// <summary>Results as JSON: the summary per task and metric, and every item with its prompt, choices, log-probabilities and prediction.</summary>
    public static JsonObject ToJson(string model, IReadOnlyList<TaskResult> results, RequestRunner runner) => new()
    {
        ["model"] = model,
        ["requests"] = new JsonObject { ["computed"] = runner.Computed, ["cached"] = runner.CacheHits, ["duplicates"] = runner.Duplicates },
        ["summary"] = new JsonArray(results.SelectMany(r => r.Metrics.Select(m => (JsonNode)new JsonObject
        {
            ["task"] = r.Task, ["lang"] = r.Language, ["shots"] = r.Shots, ["metric"] = m.Key,
            ["value"] = Estimate.Json(m.Value.Value), ["ci_low"] = Estimate.Json(m.Value.Low), ["ci_high"] = Estimate.Json(m.Value.High), ["n"] = m.Value.Count,
        })).ToArray()),
        ["tasks"] = new JsonArray(results.Select(r => (JsonNode)new JsonObject
        {
            ["task"] = r.Task,
            ["lang"] = r.Language,
            ["shots"] = r.Shots,
            ["items"] = new JsonArray(r.Items.Select(i => (JsonNode)new JsonObject
            {
                ["doc"] = i.Item.Doc,
                ["prompt"] = i.Item.Context,
                ["choices"] = i.Item.Choices is null ? null : new JsonArray(i.Item.Choices.Select(c => (JsonNode)c).ToArray()),
                ["logprobs"] = i.Logprobs is null ? null : new JsonArray(i.Logprobs.Select(l => (JsonNode)l).ToArray()),
                ["greedy"] = i.Greedy is null ? null : new JsonArray(i.Greedy.Select(g => (JsonNode)g).ToArray()),
                ["gold"] = i.Item.GoldText,
                ["raw"] = i.Raw,
                ["prediction"] = i.Prediction,
                ["scores"] = new JsonObject(i.Scores.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Value))),
            }).ToArray()),
        }).ToArray()),
    };
}
