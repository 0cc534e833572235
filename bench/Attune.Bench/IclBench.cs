using System.Diagnostics;
using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Modeling;

namespace Attune.Bench;

/// <summary>
/// Scoring a 5-shot, 4-choice task on a SmolLM2-135M-shaped model, with and without shared-prefix reuse,
/// in one run. The task is a harness-format YAML over generated arithmetic questions, loaded and
/// rendered through the same path as <c>attune eval icl</c>.
/// </summary>
static class IclBench
{
    public static void Table(string root, int items, int subset)
    {
        var (model, taskDir) = Prepare(root, items);
        var machinery = Stopwatch.StartNew();
        var task = new IclTask(TaskConfig.Load(Path.Combine(taskDir, "task.yaml")).Single());
        TableRows(task, model, items, subset, machinery);
    }

    /// <summary>
    /// Per-item shots (the harness's default) against fixed shot sets per task (<c>--shots-per-task</c>), on the same
    /// first items, both with prefix reuse: a set's items share their whole 5-shot prefix.
    /// </summary>
    public static void ShotSets(string root, int subset)
    {
        var (model, taskDir) = Prepare(root, 500);
        var task = new IclTask(TaskConfig.Load(Path.Combine(taskDir, "task.yaml")).Single());
        using var lm = LanguageModel.Load(model);
        var perItem = task.LoglikelihoodRequests(task.Items(limit: subset)).ToList();
        using var warm = new LocalBackend(lm) { ReusePrefixes = true }; // a backend disposes its model: this one, after every row
        warm.LoglikelihoodManyAsync(perItem.Take(8).ToList()).GetAwaiter().GetResult(); // JIT
        double Seconds(List<LoglikelihoodRequest> rs)
        {
            var backend = new LocalBackend(lm) { ReusePrefixes = true };
            var clock = Stopwatch.StartNew();
            backend.LoglikelihoodManyAsync(rs).GetAwaiter().GetResult();
            return clock.Elapsed.TotalSeconds;
        }
        Console.WriteLine($"Task: the first {subset} items × 4 choices of the bench task above, 5 shots; SmolLM2-135M shape, BF16, random weights; {Environment.ProcessorCount} threads; prefix reuse in every row.");
        Console.WriteLine();
        Console.WriteLine("| shots | requests | seconds | items/s | speed-up per item scored |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        double baseline = Seconds(perItem);
        Console.WriteLine($"| per item (harness default) | {perItem.Count} | {baseline:F1} | {subset / baseline:F1} | 1.00× |");
        foreach (int sets in new[] { 1, 3 })
        {
            var rs = Enumerable.Range(0, sets).SelectMany(set => task.LoglikelihoodRequests(task.Items(limit: subset, shotSet: set))).ToList();
            double seconds = Seconds(rs);
            Console.WriteLine($"| --shots-per-task {sets} | {rs.Count} | {seconds:F1} | {subset / seconds:F1} | {baseline / seconds:F2}× |");
        }
    }

    internal static (string Model, string TaskDir) Prepare(string root, int items)
    {
        var outDir = Path.Combine(root, "bench", "out");
        var model = Path.Combine(outDir, "smollm2-135m");
        if (!Directory.Exists(model))
            ModelInitializer.Write(model, Presets.Find("smollm2-135m", "llama").Config, 0, Tensors.DType.BF16);
        var taskDir = Path.Combine(outDir, "icl-bench");
        Directory.CreateDirectory(taskDir);
        var rng = new Random(17);
        var lines = new List<string>();
        for (int i = 0; i < items + 50; i++)
        {
            int a = rng.Next(2, 50), b = rng.Next(2, 50), sum = a + b;
            var options = new[] { sum, sum + rng.Next(1, 5), sum - rng.Next(1, 5), sum + 10 }.Select(x => x.ToString()).ToArray();
            int gold = rng.Next(4);
            (options[0], options[gold]) = (options[gold], options[0]);
            lines.Add(new JsonObject { ["question"] = $"What is {a} plus {b}?", ["choices"] = new JsonArray(options.Select(o => (JsonNode)o).ToArray()), ["label"] = gold }.ToJsonString());
        }
        File.WriteAllLines(Path.Combine(taskDir, "train.jsonl"), lines.Take(50));
        File.WriteAllLines(Path.Combine(taskDir, "test.jsonl"), lines.Skip(50));
        File.WriteAllText(Path.Combine(taskDir, "task.yaml"), """
            task: sums_bench
            dataset_path: json
            dataset_kwargs:
              data_files: {train: train.jsonl, test: test.jsonl}
            training_split: train
            test_split: test
            output_type: multiple_choice
            description: "Answer each arithmetic question.\n\n"
            doc_to_text: "Question: {{question}}\nAnswer:"
            doc_to_target: label
            doc_to_choice: "{{choices}}"
            num_fewshot: 5
            """);
        return (model, taskDir);
    }

    static void TableRows(IclTask task, string model, int items, int subset, Stopwatch machinery)
    {
        var all = task.Items();
        var built = machinery.Elapsed.TotalSeconds;
        var requests = task.LoglikelihoodRequests(all).ToList();
        var sub = task.LoglikelihoodRequests(all.Take(subset)).ToList();

        using var lm = LanguageModel.Load(model);
        int contextTokens = (int)all.Average(i => lm.Tokenizer.Encode(i.Context, addSpecialTokens: false).Length);
        Console.WriteLine($"Task: {items} items × 4 choices, 5 shots drawn per item (seeded), ~{contextTokens} context tokens per item; " +
            $"model: SmolLM2-135M shape, BF16, random weights; {Environment.ProcessorCount} threads.");
        Console.WriteLine();
        Console.WriteLine("| run | requests | seconds | requests/s | speed-up |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        using var warm = new LocalBackend(lm) { ReusePrefixes = true };
        warm.LoglikelihoodManyAsync(sub.Take(8).ToList()).GetAwaiter().GetResult(); // JIT

        double Rate(List<LoglikelihoodRequest> rs, bool reuse, out double seconds)
        {
            var backend = new LocalBackend(lm) { ReusePrefixes = reuse };
            var clock = Stopwatch.StartNew();
            backend.LoglikelihoodManyAsync(rs).GetAwaiter().GetResult();
            seconds = clock.Elapsed.TotalSeconds;
            return rs.Count / seconds;
        }
        double without = Rate(sub, reuse: false, out var s1);
        double withSub = Rate(sub, reuse: true, out var s2);
        double withAll = Rate(requests, reuse: true, out var s3);
        Console.WriteLine($"| no reuse, first {subset} items | {sub.Count} | {s1:F1} | {without:F1} | 1.00× |");
        Console.WriteLine($"| prefix reuse, first {subset} items | {sub.Count} | {s2:F1} | {withSub:F1} | {withSub / without:F2}× |");
        Console.WriteLine($"| prefix reuse, all {items} items | {requests.Count} | {s3:F1} | {withAll:F1} | {withAll / without:F2}× |");

        // The task's own machinery around the model: loading, rendering and sampling the items, and scoring them
        // (metrics and bootstrap intervals) from given log-likelihoods.
        var fake = requests.Select((r, i) => new ScoreResult(-(i % 7) - 1.0, false, 1)).ToList();
        var scoring = Stopwatch.StartNew();
        task.ScoreChoices(all, fake, 5);
        double scored = scoring.Elapsed.TotalSeconds;
        Console.WriteLine();
        Console.WriteLine($"Task machinery for {items} items: load + render {built:F2} s, score {scored:F2} s ({items / (built + scored):F0} items/s; the model's share above: {items / s3:F1} items/s).");
    }
}
