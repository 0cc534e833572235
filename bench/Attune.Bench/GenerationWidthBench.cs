using System.Diagnostics;
using Attune.Evaluation;
using Attune.Evaluation.Instructions;
using Attune.Modeling;

namespace Attune.Bench;

/// <summary>
/// A sweep cell's IF generations through the continuous-batching engine at widths 8, 16, 32 and 64: the built-in English
/// IF prompts (raw, as a base model is prompted), greedy, a fixed number of new tokens with the end token ignored (a random
/// model never stops; this stands in for answer lengths), on the SmolLM2-135M shape in BF16.
/// </summary>
static class GenerationWidthBench
{
    public static void Table(string root, int prompts, int tokens)
    {
        var model = Path.Combine(root, "bench", "out", "smollm2-135m");
        if (!Directory.Exists(model)) ModelInitializer.Write(model, Presets.Find("smollm2-135m", "llama").Config, 0, Tensors.DType.BF16);
        var requests = IfSuite.Select("builtin", ["en"], prompts)
            .Select(p => new GenerateRequest(p.Prompt, null, new GenerationOptions { MaxNewTokens = tokens, IgnoreEos = true })).ToList();
        Console.WriteLine($"{requests.Count} built-in English IF prompts, {tokens} new tokens each (end token ignored), greedy; SmolLM2-135M shape, BF16, random weights; {Environment.ProcessorCount} threads.");
        Console.WriteLine();
        Console.WriteLine("| batch width | seconds | generated tok/s | vs the first width | peak RSS |");
        Console.WriteLine("|---:|---:|---:|---:|---:|");
        double first = 0;
        // GEN_WIDTHS=16,64 runs only those widths (for a profile of one).
        var widths = Environment.GetEnvironmentVariable("GEN_WIDTHS") is { Length: > 0 } list ? list.Split(',').Select(int.Parse).ToArray() : [8, 16, 32, 64];
        foreach (int width in widths)
        {
            using var backend = new LocalBackend(LanguageModel.Load(model)) { MaxBatch = width };
            backend.GenerateManyAsync(requests.Take(2).ToList()).GetAwaiter().GetResult(); // JIT
            var clock = Stopwatch.StartNew();
            var answers = backend.GenerateManyAsync(requests).GetAwaiter().GetResult();
            double seconds = clock.Elapsed.TotalSeconds, rate = answers.Sum(a => a.CompletionTokens) / seconds;
            if (first == 0) first = rate;
            Console.WriteLine($"| {width} | {seconds:F1} | {rate:F1} | {rate / first:F2}× | {EngineBench.PeakRssMb():F0} MB |");
        }
    }
}
