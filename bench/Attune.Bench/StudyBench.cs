using System.Diagnostics;
using Attune.Experiments;
using Attune.Models;

namespace Attune.Bench;

/// <summary>
/// The built-in study on SmolLM2-135M-shaped BF16 base and instruct models written by attune init (seeds 0 and 1), on a
/// reduced plan (λ = 0 and 1, English, ICL limited to a few items per task, a few IF prompts capped at 256 tokens — a random
/// model never stops, standing in for real answer lengths), run once through the sweep as `attune sweep` runs it; wall time
/// per suite and arm, and the full built-in study (11 λ, en/fr/es, 150 items per task, 120 IF prompts, the URIAL arm)
/// extrapolated from it, with per-item shots and with one shot set per task.
/// </summary>
static class StudyBench
{
    public static void Table(string root, int iclLimit, int ifLimit)
    {
        var outDir = Path.Combine(root, "bench", "out");
        var baseDir = Path.Combine(outDir, "smollm2-135m");
        var instructDir = Path.Combine(outDir, "smollm2-135m-seed1");
        if (!Directory.Exists(baseDir)) Attune.Modeling.ModelInitializer.Write(baseDir, Attune.Modeling.Presets.Find("smollm2-135m", "llama").Config, 0, Attune.Tensors.DType.BF16);
        if (!Directory.Exists(instructDir)) Attune.Modeling.ModelInitializer.Write(instructDir, Attune.Modeling.Presets.Find("smollm2-135m", "llama").Config, 1, Attune.Tensors.DType.BF16);
        Console.WriteLine($"Reduced plan: λ = 0 and 1 (and the base with URIAL), English, ICL builtin:all with {iclLimit} items per task, IF builtin with {ifLimit} prompts, ≤ 256 new tokens; SmolLM2-135M shape, BF16, random weights; {Environment.ProcessorCount} threads.");
        Console.WriteLine("Full study extrapolated: 11 λ × 3 languages (French and Spanish timed as English), 150 items per task, 120 IF prompts, plus the URIAL arm; cell times scale with items, each arm's model load added once.");
        Console.WriteLine();
        Console.WriteLine("| shots | ICL λ=0 / λ=1 / URIAL s | IF λ=0 / λ=1 / URIAL s | reduced run wall s | full study extrapolated |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        double if0 = 0, if1 = 0, ifU = 0; // IF cells, timed in the first row only
        foreach (var shotsPerTask in new int?[] { null, 1 })
        {
            var plan = new SweepPlan
            {
                Base = ModelReference.Parse(baseDir), Instruct = ModelReference.Parse(instructDir),
                Lambdas = [new Lambda(0), new Lambda(1)], Languages = ["en"],
                IclLimit = iclLimit, IfLimit = ifLimit, IfMaxTokens = 256, ShotsPerTask = shotsPerTask,
                If = shotsPerTask is null ? "builtin" : null, // IF does not depend on the shots: timed once
            };
            var storePath = Path.Combine(Path.GetTempPath(), $"attune-study-bench-{Guid.NewGuid():N}.db");
            try
            {
                var sweep = new Sweep(plan);
                var cells = sweep.Cells();
                using var store = new ResultsStore(storePath);
                var run = store.BeginRun("bench study", "bench", plan.ToJson());
                var wall = Stopwatch.StartNew();
                sweep.RunAsync(store, run, cells).GetAwaiter().GetResult();
                double wallSeconds = wall.Elapsed.TotalSeconds;
                var results = store.Cells();
                double Seconds(string arm, string suite) => results.Where(c => c.Arm == arm && c.Suite == suite).Sum(c => c.Seconds);
                double icl0 = Seconds("lambda-0.00", "icl"), icl1 = Seconds("lambda-1.00", "icl"), iclU = Seconds("base-urial", "icl");
                if (plan.If is not null) (if0, if1, ifU) = (Seconds("lambda-0.00", "if"), Seconds("lambda-1.00", "if"), Seconds("base-urial", "if"));
                double loads = Math.Max(0, wallSeconds - results.Sum(c => c.Seconds)) / 3; // per arm: what the cells do not count
                double iclScale = 150.0 / iclLimit, ifScale = 120.0 / ifLimit;
                // 11 λ arms cost like the two timed ones (their mean); the URIAL arm's ICL is λ = 0's (shared), its IF its own.
                double perLambda = (icl0 + icl1) / 2 * iclScale + (if0 + if1) / 2 * ifScale;
                double full = 3 * (11 * perLambda + iclU * iclScale + ifU * ifScale) + 12 * loads;
                Console.WriteLine($"| {(shotsPerTask is null ? "per item" : $"--shots-per-task {shotsPerTask}")} | {icl0:F0} / {icl1:F0} / {iclU:F0} | {if0:F0} / {if1:F0} / {ifU:F0} | {wallSeconds:F0} | {full / 3600:F1} h |");
            }
            finally
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                foreach (var f in new[] { storePath, storePath + "-wal", storePath + "-shm" }) File.Delete(f);
            }
        }
    }
}
