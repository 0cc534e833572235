using System.Diagnostics;
using System.Numerics.Tensors;
using Attune.Evaluation.LlamaCpp;

namespace Attune.Bench;

/// <summary>
/// Gemma 2, Gemma 3 and OLMo 2 at their real small shapes (gemma2-2b, gemma3-1b, olmo2-1b; random weights written by
/// attune init, converted by attune convert to BF16 and Q8_0 GGUF): Attune's engine against llama.cpp in process
/// (LLamaSharp 0.30, its f16 KV cache) on the same file, each side in fresh processes, 512 prompt tokens in one batch
/// then 128 greedy tokens, 2 threads, best of a few runs.
/// </summary>
public static class FamilyBench
{
    /// <summary>llama.cpp on one model in this (fresh) process: prompt and generation tokens per second.</summary>
    public static EngineBench.Result LlamaCppOne(string model, int promptTokens, int genTokens, int threads)
    {
        using var lm = LlamaCppModel.Load(model, contextSize: promptTokens + genTokens + 32, sequences: 1, threads: threads, f32Cache: false);
        var rng = new Random(1);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(lm.VocabSize)).ToArray();
        lm.Append(0, 0, prompt[..16]); // warm-up: first touch of the mapped weights
        for (int i = 0; i < 4; i++) lm.Append(0, 16 + i, [1]);
        lm.Clear();
        var sw = Stopwatch.StartNew();
        var row = lm.Append(0, 0, prompt)[0];
        double promptTps = promptTokens / sw.Elapsed.TotalSeconds;
        sw.Restart();
        for (int i = 0; i < genTokens; i++)
            row = lm.Append(0, promptTokens + i, [TensorPrimitives.IndexOfMax(row)])[0];
        double genTps = genTokens / sw.Elapsed.TotalSeconds;
        return new EngineBench.Result(promptTps, genTps, EngineBench.PeakRssMb(), new FileInfo(model).Length);
    }

    public static void Table(string root, int reps, string[] only, Func<string, string> runSelf)
    {
        var outDir = Path.Combine(root, "bench", "out");
        Directory.CreateDirectory(outDir);
        var models = new List<(string Name, string Path)>();
        foreach (var (preset, arch) in new[] { ("gemma3-1b", "gemma3"), ("olmo2-1b", "olmo2"), ("gemma2-2b", "gemma2") })
        {
            if (only.Length > 0 && !only.Any(o => preset.Contains(o))) continue;
            var folder = Path.Combine(outDir, preset);
            var ggufs = new[] { (Attune.Formats.GgmlType.BF16, "bf16"), (Attune.Formats.GgmlType.Q8_0, "q8_0") }
                .Select(t => (t.Item1, t.Item2, Path: Path.Combine(outDir, $"{preset}-{t.Item2}.gguf"))).ToList();
            if (ggufs.Any(g => !File.Exists(g.Path)))
            {
                if (!Directory.Exists(folder))
                    Attune.Modeling.ModelInitializer.Write(folder, Attune.Modeling.Presets.Find(preset, arch).Config, 0, Attune.Tensors.DType.BF16);
                foreach (var g in ggufs)
                    if (!File.Exists(g.Path)) Attune.Checkpoints.GgufConverter.ToGguf(folder, g.Path, g.Item1);
                Directory.Delete(folder, recursive: true); // the GGUF files are what both engines read
            }
            foreach (var g in ggufs) models.Add(($"{preset} {g.Item2.ToUpperInvariant()}", g.Path));
        }
        Console.WriteLine($"Prompt 512 tokens (one batch), then 128 greedy tokens; 2 threads; best of {reps} fresh-process runs per cell.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores; llama.cpp in process through LLamaSharp 0.30.0 (LLamaSharp.Backend.Cpu, f16 KV cache).");
        Console.WriteLine();
        Console.WriteLine("| model | file | prompt tok/s Attune | llama.cpp | ratio | gen tok/s Attune | llama.cpp | ratio | Attune RSS | llama.cpp RSS |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (name, path) in models)
        {
            EngineBench.Result Best(string command) => EngineBench.Result.BestOf(reps, () => runSelf($"{command} {path} 512 128 2"));
            var ours = Best("engine-one");
            var theirs = Best("llamacpp-one");
            Console.WriteLine($"| {name} | {new FileInfo(path).Length / 1e9:F2} GB | {ours.PromptTps:F1} | {theirs.PromptTps:F1} | {ours.PromptTps / theirs.PromptTps:F2}× | {ours.GenTps:F2} | {theirs.GenTps:F2} | {ours.GenTps / theirs.GenTps:F2}× | {ours.RssMb:F0} MB | {theirs.RssMb:F0} MB |");
        }
    }
}
