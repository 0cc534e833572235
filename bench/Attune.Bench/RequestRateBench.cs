using System.Diagnostics;
using Attune.Evaluation;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.LlamaCpp;
using Attune.Evaluation.Tasks;
using Attune.Formats;
using Attune.Modeling;

namespace Attune.Bench;

/// <summary>
/// The study's two kinds of requests through Attune and through llama.cpp in process (LLamaSharp 0.30, its f16 KV cache),
/// on the same GGUF file (SmolLM2-135M shape, BF16, random weights): the ICL bench task's log-likelihoods (4 choices,
/// 5 shots, per-item shots and one fixed shot set per task; Attune shares prefixes through its KV cache, llama.cpp through
/// sequence copies of each context, 8 sequences), and IF generations at batch 32 (greedy, end token ignored).
/// </summary>
static class RequestRateBench
{
    public static void Table(string root, int items, int prompts, int tokens)
    {
        var outDir = Path.Combine(root, "bench", "out");
        var folder = Path.Combine(outDir, "smollm2-135m");
        if (!Directory.Exists(folder)) ModelInitializer.Write(folder, Presets.Find("smollm2-135m", "llama").Config, 0, Tensors.DType.BF16);
        var gguf = Path.Combine(outDir, "smollm2-135m-bf16.gguf");
        if (!File.Exists(gguf)) Attune.Checkpoints.GgufConverter.ToGguf(folder, gguf, GgmlType.BF16);
        IclBench.Prepare(root, 500);
        var task = new IclTask(TaskConfig.Load(Path.Combine(outDir, "icl-bench", "task.yaml")).Single());
        var perItem = task.LoglikelihoodRequests(task.Items(limit: items)).ToList();
        var perTask = task.LoglikelihoodRequests(task.Items(limit: items, shotSet: 0)).ToList();
        var generations = IfSuite.Select("builtin", ["en"], prompts)
            .Select(p => new GenerateRequest(p.Prompt, null, new GenerationOptions { MaxNewTokens = tokens, IgnoreEos = true })).ToList();

        Console.WriteLine($"Same GGUF (SmolLM2-135M shape, BF16, random weights) through both engines, one process each in turn; {Environment.ProcessorCount} threads.");
        Console.WriteLine($"Scoring: the ICL bench task's first {items} items × 4 choices, 5 shots. Generation: {generations.Count} built-in English IF prompts, {tokens} tokens each, batch 32.");
        Console.WriteLine();
        Console.WriteLine("| requests | Attune | llama.cpp | ratio |");
        Console.WriteLine("|---|---:|---:|---:|");
        using var attune = new LocalBackend(LanguageModel.Load(gguf)) { MaxBatch = 32 };
        using var peerScoring = LlamaCppBackend.Open(gguf, "bench", width: 8, window: 1024);
        foreach (var (name, rs) in new[] { ("log-likelihoods, per-item shots", perItem), ("log-likelihoods, --shots-per-task 1", perTask) })
        {
            attune.LoglikelihoodManyAsync(rs.Take(8).ToList()).GetAwaiter().GetResult(); // JIT, first touch
            peerScoring.LoglikelihoodManyAsync(rs.Take(8).ToList()).GetAwaiter().GetResult();
            double ours = Rate(() => attune.LoglikelihoodManyAsync(rs).GetAwaiter().GetResult().Count);
            double theirs = Rate(() => peerScoring.LoglikelihoodManyAsync(rs).GetAwaiter().GetResult().Count);
            Console.WriteLine($"| {name} ({rs.Count}), requests/s | {ours:F1} | {theirs:F1} | {ours / theirs:F2}× |");
        }
        peerScoring.Dispose();
        using var peerGeneration = LlamaCppBackend.Open(gguf, "bench", width: 32, window: 256);
        attune.GenerateManyAsync(generations.Take(2).ToList()).GetAwaiter().GetResult();
        peerGeneration.GenerateManyAsync(generations.Take(2).ToList()).GetAwaiter().GetResult();
        double ourTokens = Rate(() => attune.GenerateManyAsync(generations).GetAwaiter().GetResult().Sum(a => a.CompletionTokens));
        double theirTokens = Rate(() => peerGeneration.GenerateManyAsync(generations).GetAwaiter().GetResult().Sum(a => a.CompletionTokens));
        Console.WriteLine($"| IF generation at batch 32, tokens/s | {ourTokens:F1} | {theirTokens:F1} | {ourTokens / theirTokens:F2}× |");
    }

    static double Rate(Func<int> work)
    {
        var clock = Stopwatch.StartNew();
        int n = work();
        return n / clock.Elapsed.TotalSeconds;
    }
}
