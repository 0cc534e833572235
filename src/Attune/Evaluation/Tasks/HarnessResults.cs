using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Evaluation.Metrics;
using Attune.Formats;

namespace Attune.Evaluation.Tasks;

/// <summary>
/// Results in lm-evaluation-harness's shapes, so notebooks and tables that read its output read Attune's: the results
/// file (<c>results</c> per task and group with "metric,filter" keys and their standard errors, <c>groups</c>,
/// <c>group_subtasks</c>, <c>configs</c>, <c>versions</c>, <c>n-shot</c>, <c>higher_is_better</c>, <c>n-samples</c>,
/// <c>config</c>, <c>date</c>) and the per-document records of <c>--log_samples</c>. Groups pool every task under them,
/// weighted by size unless told not to, with the pooled standard error, as the harness aggregates.
/// </summary>
public static class HarnessResults
{
    /// <summary>The harness's key for a reported metric: "metric,pipeline" ("none" without a pipeline).</summary>
    static string Key(IclTask task, string metric) => metric.Contains(',') ? metric : $"{metric},{task.PipelineOf(metric)}";

    static string Base(string key) => key[..key.IndexOf(',')];

    /// <summary>Aggregations the harness gives no standard error.</summary>
    static bool HasNoStderr(IclTask task, string baseMetric)
    {
        var spec = task.Config.Metrics.FirstOrDefault(m => m.Name == baseMetric);
        var aggregation = spec?.Aggregation ?? TaskMetrics.DefaultAggregation(baseMetric, corpus: true);
        return aggregation is "weighted_perplexity" or "bits_per_byte" || baseMetric == "brier_score";
    }

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create("N/A");

    public static JsonObject Build(IReadOnlyList<IclTask> tasks, IReadOnlyList<TaskResult> results, IReadOnlyList<TaskGroup> groups, string model, int? limit, TaskPrompting? prompting = null)
    {
        var byName = new Dictionary<string, (IclTask Task, TaskResult Result)>();
        for (int i = 0; i < tasks.Count; i++) byName[tasks[i].Config.Name] = (tasks[i], results[i]);

        var resultsJson = new JsonObject();
        var configs = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        var versions = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        var nShot = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        var higher = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        var nSamples = new JsonObject();
        foreach (var (name, (task, result)) in byName)
        {
            var entry = new JsonObject { ["name"] = name, ["alias"] = task.Config.Alias ?? name, ["sample_len"] = result.Items.Count };
            foreach (var (metric, estimate) in result.Metrics)
            {
                var key = Key(task, metric);
                entry[key] = Number(estimate.Value);
                var baseMetric = Base(key);
                entry[$"{baseMetric}_stderr,{key[(key.IndexOf(',') + 1)..]}"] =
                    HasNoStderr(task, baseMetric) || result.Items.Count <= 1 ? "N/A" : Number(result.StandardErrors.GetValueOrDefault(metric, double.NaN));
            }
            resultsJson[name] = entry;
            configs[name] = ConfigJson(task, result.Shots);
            versions[name] = task.Config.Version?.DeepClone() ?? "Yaml";
            nShot[name] = result.Shots;
            higher[name] = new JsonObject(task.Config.Metrics.Select(m => KeyValuePair.Create(m.Name, (JsonNode?)(m.HigherIsBetter ?? TaskMetrics.HigherIsBetter(m.Name)))));
            nSamples[name] = new JsonObject { ["original"] = task.EvalDocs.Count, ["effective"] = result.Items.Count };
        }

        var groupsJson = new JsonObject();
        var subtasks = new JsonObject();
        foreach (var group in groups)
        {
            var entry = new JsonObject { ["alias"] = group.Alias ?? group.Name, ["name"] = group.Name };
            var leaves = group.Leaves.Where(byName.ContainsKey).ToList();
            if (group.Aggregates.Count > 0)
            {
                entry["sample_len"] = leaves.Sum(l => byName[l].Result.Items.Count);
                var counts = new JsonObject();
                foreach (var aggregate in group.Aggregates)
                {
                    var filters = aggregate.FilterList.Count > 0 ? aggregate.FilterList
                        : leaves.SelectMany(l => byName[l].Result.Metrics.Keys.Select(k => Key(byName[l].Task, k)))
                            .Where(k => Base(k) == aggregate.Metric).Select(k => k[(k.IndexOf(',') + 1)..]).Distinct().Order(StringComparer.Ordinal).ToList();
                    foreach (var filter in filters)
                    {
                        var key = $"{aggregate.Metric},{filter}";
                        var parts = leaves.Select(l => byName[l]).Select(x => (x, Metric: x.Result.Metrics.Keys.FirstOrDefault(k => Key(x.Task, k) == key)))
                            .Where(p => p.Metric is not null).Select(p => (Value: p.x.Result.Metrics[p.Metric!].Value, Size: p.x.Result.Items.Count,
                                Stderr: p.x.Result.StandardErrors.GetValueOrDefault(p.Metric!, double.NaN))).ToList();
                        if (parts.Count == 0) continue;
                        double weight(int size) => aggregate.WeightBySize ? size : 1;
                        entry[key] = Number(parts.Sum(p => p.Value * weight(p.Size)) / parts.Sum(p => weight(p.Size)));
                        entry[$"{aggregate.Metric}_stderr,{filter}"] = parts.All(p => double.IsFinite(p.Stderr)) ? Number(PooledStderr(parts.Select(p => (p.Stderr, p.Size)).ToList())) : "N/A";
                        counts[key] = parts.Sum(p => p.Size);
                    }
                }
                entry["sample_count"] = counts;
                groupsJson[group.Name] = entry.DeepClone();
            }
            resultsJson[group.Name] = entry;
            subtasks[group.Name] = new JsonArray(group.Members.Select(m => (JsonNode)m).ToArray());
            versions[group.Name] = group.Version ?? "N/A";
            var memberShots = group.Members.Where(nShot.ContainsKey).Select(m => nShot[m]!.GetValue<int>()).Distinct().ToList();
            if (memberShots.Count == 1) nShot[group.Name] = memberShots[0];
            higher[group.Name] = new JsonObject(group.Leaves.Where(byName.ContainsKey).SelectMany(l => ((JsonObject)higher[l]!).Select(kv => (kv.Key, Value: kv.Value!.GetValue<bool>())))
                .GroupBy(kv => kv.Key).Select(g => KeyValuePair.Create(g.Key, g.Select(x => x.Value).Distinct().Count() == 1 ? (JsonNode?)g.First().Value : null)));
        }

        var root = new JsonObject { ["results"] = resultsJson };
        if (groupsJson.Count > 0) root["groups"] = groupsJson;
        root["group_subtasks"] = subtasks;
        root["configs"] = Sorted(configs);
        root["versions"] = Sorted(versions);
        root["n-shot"] = Sorted(nShot);
        root["higher_is_better"] = Sorted(higher);
        root["n-samples"] = nSamples;
        root["config"] = new JsonObject { ["model"] = "attune", ["model_args"] = model, ["limit"] = limit, ["fewshot_seed"] = 1234 };
        root["date"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        root["model_name"] = model;
        root["model_name_sanitized"] = Sanitize(model);
        root["system_instruction"] = prompting?.SystemInstruction;
        root["system_instruction_sha"] = string.IsNullOrEmpty(prompting?.SystemInstruction) ? null : Sha256(prompting.SystemInstruction);
        root["fewshot_as_multiturn"] = prompting?.ChatTemplate is null ? null : prompting.FewshotAsMultiturn;
        root["chat_template"] = prompting?.ChatTemplateSource;
        root["chat_template_sha"] = string.IsNullOrEmpty(prompting?.ChatTemplateSource) ? null : Sha256(prompting.ChatTemplateSource);
        return root;
    }

    /// <summary>
    /// Writes the results file where the harness's --output_path puts it (DIR/&lt;model&gt;/results_&lt;date&gt;.json, or
    /// FILE_&lt;date&gt;.json beside a path ending in .json) and, with <paramref name="logSamples"/>, samples_&lt;task&gt;_&lt;date&gt;.jsonl
    /// beside it; each file whole or not at all. Returns the results file's path.
    /// </summary>
    public static string Write(string outputPath, bool logSamples, IReadOnlyList<IclTask> tasks, IReadOnlyList<TaskResult> results, IReadOnlyList<TaskGroup> groups, string model, int? limit, TaskPrompting? prompting = null)
    {
        var date = DateTime.Now.ToString("yyyy-MM-ddTHH-mm-ss.ffffff", CultureInfo.InvariantCulture);
        var folder = outputPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? Path.GetDirectoryName(Path.GetFullPath(outputPath))! : Path.Combine(outputPath, Sanitize(model));
        var file = outputPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
            ? Path.Combine(folder, $"{Path.GetFileNameWithoutExtension(outputPath)}_{date}.json")
            : Path.Combine(folder, $"results_{date}.json");
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(file, Build(tasks, results, groups, model, limit, prompting).ToJsonString(new JsonSerializerOptions(Lines) { WriteIndented = true }));
        if (logSamples)
            for (int i = 0; i < tasks.Count; i++)
                AtomicFile.WriteAllText(Path.Combine(folder, $"samples_{tasks[i].Config.Name}_{date}.jsonl"),
                    string.Concat(Samples(tasks[i], results[i]).Select(r => r.ToJsonString(Lines) + "\n")));
        return file;
    }

    /// <summary>JSON as the harness writes it: non-ASCII text as it is.</summary>
    static readonly JsonSerializerOptions Lines = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static JsonObject Sorted(SortedDictionary<string, JsonNode?> map) => new(map.Select(kv => KeyValuePair.Create(kv.Key, kv.Value)));

    /// <summary>The harness's pooled standard error of a group: √(Σ (nᵢ−1)·seᵢ²·nᵢ / (N − k) / N).</summary>
    static double PooledStderr(IReadOnlyList<(double Stderr, int Size)> parts)
    {
        double total = parts.Sum(p => p.Size);
        double pooled = parts.Sum(p => (p.Size - 1) * p.Stderr * p.Stderr * p.Size) / (total - parts.Count);
        return Math.Sqrt(pooled / total);
    }

    /// <summary>The harness's folder name for a model: runs of <c>"&lt;&gt;:/|\?*[]</c> as <c>__</c>.</summary>
    public static string Sanitize(string model) => System.Text.RegularExpressions.Regex.Replace(model, @"[""<>:/\|\\?\*\[\]]+", "__");

    static JsonObject ConfigJson(IclTask task, int shots)
    {
        var c = task.Config;
        var json = new JsonObject
        {
            ["task"] = c.Name,
            ["task_alias"] = c.Alias,
            ["output_type"] = c.OutputTypeName,
            ["test_split"] = c.EvalSplit,
            ["fewshot_split"] = c.FewshotSplit,
            ["description"] = c.Description,
            ["target_delimiter"] = c.TargetDelimiter,
            ["fewshot_delimiter"] = c.FewshotDelimiter,
            ["num_fewshot"] = shots,
            ["metric_list"] = new JsonArray(c.Metrics.Select(m => (JsonNode)new JsonObject
            {
                ["metric"] = m.Name, ["aggregation"] = m.Aggregation ?? TaskMetrics.DefaultAggregation(m.Name, corpus: true), ["higher_is_better"] = m.HigherIsBetter ?? TaskMetrics.HigherIsBetter(m.Name),
            }).ToArray()),
            ["repeats"] = c.Repeats,
            ["metadata"] = new JsonObject { ["version"] = c.Version?.DeepClone() },
            ["source"] = c.Source,
        };
        if (c.OutputType == OutputType.GenerateUntil)
            json["generation_kwargs"] = new JsonObject { ["until"] = new JsonArray(c.Until.Select(u => (JsonNode)u).ToArray()), ["max_gen_toks"] = c.MaxGenTokens, ["do_sample"] = false };
        if (c.FilterPipelines.Count > 0)
            json["filter_list"] = new JsonArray(c.FilterPipelines.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name }).ToArray());
        foreach (var key in json.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) json.Remove(key);
        return json;
    }

    static readonly JsonSerializerOptions HashJson = new(Lines) { WriteIndented = true };

    /// <summary>The harness's hash of a text: SHA-256 of its UTF-8, lowercase hex.</summary>
    static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    static string Str(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The per-document records of one task, one per document and filter pipeline (pipeline by pipeline), as --log_samples writes them.</summary>
    public static IEnumerable<JsonObject> Samples(IclTask task, TaskResult result)
    {
        var pipelines = task.Config.OutputType == OutputType.GenerateUntil && task.Config.FilterPipelines.Count > 0
            ? task.Config.FilterPipelines.Select(p => p.Name).ToList() : ["none"];
        foreach (var pipeline in pipelines)
            foreach (var r in result.Items)
            {
                var item = r.Item;
                var arguments = new JsonObject();
                JsonArray resps, filtered;
                switch (task.Config.OutputType)
                {
                    case OutputType.GenerateUntil:
                        var request = task.GenerateRequestFor(item);
                        arguments["gen_args_0"] = new JsonObject
                        {
                            ["arg_0"] = item.Context,
                            ["arg_1"] = new JsonObject { ["until"] = new JsonArray(request.Options.StopStrings.Select(s => (JsonNode)s).ToArray()), ["max_gen_toks"] = request.Options.MaxNewTokens, ["do_sample"] = false },
                        };
                        resps = [new JsonArray((r.Responses ?? [r.Raw ?? ""]).Select(x => (JsonNode)x).ToArray())];
                        filtered = [r.Filtered?.GetValueOrDefault(pipeline) ?? r.Prediction];
                        break;
                    case OutputType.LoglikelihoodRolling:
                        arguments["gen_args_0"] = new JsonObject { ["arg_0"] = item.GoldText };
                        resps = [new JsonArray(Str(r.Logprobs![0]))];
                        filtered = [Str(r.Logprobs[0])];
                        break;
                    default:
                        var requests = task.LoglikelihoodRequests(item).ToList();
                        for (int i = 0; i < requests.Count; i++) arguments[$"gen_args_{i}"] = new JsonObject { ["arg_0"] = requests[i].Context, ["arg_1"] = requests[i].Continuation };
                        var pairs = r.Logprobs!.Select((l, i) => (JsonNode)new JsonArray(Str(l), (r.Greedy?[i] ?? false) ? "True" : "False")).ToList();
                        resps = new JsonArray(pairs.Select(p => (JsonNode)new JsonArray(p.DeepClone())).ToArray());
                        filtered = new JsonArray(pairs.ToArray());
                        break;
                }
                var target = item.Golds.Count > 1 || item.GoldIndices is { Count: > 1 }
                    ? "[" + string.Join(", ", item.GoldIndices?.Select(i => i.ToString(CultureInfo.InvariantCulture)) ?? item.Golds.Select(g => "'" + g.Replace("'", "\\'") + "'")) + "]"
                    : item.Choices is not null && item.Contexts is null ? item.GoldIndex.ToString(CultureInfo.InvariantCulture) : item.GoldText;
                var doc = item.Document ?? new JsonObject();
                var metricKeys = r.Scores.Keys.Where(k => pipelines.Count == 1 || k.EndsWith("," + pipeline, StringComparison.Ordinal)).ToList();
                var record = new JsonObject
                {
                    ["doc_id"] = item.Doc,
                    ["doc"] = doc.DeepClone(),
                    ["target"] = target,
                    ["arguments"] = arguments,
                    ["resps"] = resps,
                    ["filtered_resps"] = filtered,
                    ["filter"] = pipeline,
                    ["metrics"] = new JsonArray(metricKeys.Select(k => (JsonNode)(k.Contains(',') ? Base(k) : k)).ToArray()),
                    ["doc_hash"] = Sha256(doc.ToJsonString(HashJson)),
                    ["prompt_hash"] = Sha256(item.Contexts?[0] ?? (task.Config.OutputType == OutputType.LoglikelihoodRolling ? item.GoldText : item.Context)),
                    ["target_hash"] = Sha256(target),
                };
                foreach (var k in metricKeys)
                {
                    var name = k.Contains(',') ? Base(k) : k;
                    record[name] = r.Stats.TryGetValue(k, out var stats) ? new JsonArray(stats.Select(x => (JsonNode)x).ToArray()) : r.Scores[k];
                }
                yield return record;
            }
    }
}
