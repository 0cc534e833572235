using System.Diagnostics;
using Attune.Experiments;
using Attune.Models;
using Attune.Modeling;

namespace Attune.Bench;

/// <summary>
/// The built-in study on SmolLM2-135M-shaped BF16 base and instruct models written by attune init (seeds 0 and 1), on a
/// reduced plan (λ = 0 and 1 plus the base with URIAL, English, ICL limited to a few items per task, a few IF prompts of at
/// most 256 new tokens), run through the sweep as `attune sweep` runs it; wall time per suite and arm, and the full built-in
/// study (11 λ, en/fr/es, 150 items per task, 120 IF prompts, the URIAL arm) extrapolated from it. Rows: the code before
/// issue 20 (its `attune sweep`, when ATTUNE_BEFORE names that build's Attune.Cli.dll), this code with per-item shots and
/// with one shot set per task, and IF replies run to 256 tokens (end token and loop guard ignored: a random model's
/// stand-in for real answer lengths). Also the prompt passes' tokens per second inside the run against the FMA peak.
/// </summary>
static class StudyBench
{
    sealed record Times(double Icl0, double Icl1, double IclU, double If0, double If1, double IfU, double Loads, double Wall);

    public static void Table(string root, int iclLimit, int ifLimit, double peakGflops)
    {
        var outDir = Path.Combine(root, "bench", "out");
        var baseDir = Path.Combine(outDir, "smollm2-135m");
        var instructDir = Path.Combine(outDir, "smollm2-135m-seed1");
        if (!Directory.Exists(baseDir)) ModelInitializer.Write(baseDir, Presets.Find("smollm2-135m", "llama").Config, 0, Attune.Tensors.DType.BF16);
        if (!Directory.Exists(instructDir)) ModelInitializer.Write(instructDir, Presets.Find("smollm2-135m", "llama").Config, 1, Attune.Tensors.DType.BF16);
        Console.WriteLine($"Reduced plan: λ = 0 and 1 and the base with URIAL, English, ICL builtin:all with {iclLimit} items per task, IF builtin with {ifLimit} prompts, ≤ 256 new tokens; SmolLM2-135M shape, BF16, random weights; {Environment.ProcessorCount} threads.");
        Console.WriteLine("Full study extrapolated: 11 λ × 3 languages (French and Spanish timed as English), 150 items per task, 120 IF prompts, plus the URIAL arm; cell times scale with items, each arm's model load added once.");
        Console.WriteLine();
        Console.WriteLine("| code, shots, IF replies | ICL λ=0 / λ=1 / URIAL s | IF λ=0 / λ=1 / URIAL s | reduced run wall s | full study extrapolated | speed-up (extrapolated) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        double iclScale = 150.0 / iclLimit, ifScale = 120.0 / ifLimit;
        // 11 λ arms cost like the two timed ones (their mean); the URIAL arm's ICL is λ = 0's where the code shares it.
        double Full(Times t, Times ifTimes) =>
            3 * (11 * ((t.Icl0 + t.Icl1) / 2 * iclScale + (ifTimes.If0 + ifTimes.If1) / 2 * ifScale) + t.IclU * iclScale + ifTimes.IfU * ifScale) + 12 * t.Loads;
        void Row(string name, Times icl, Times ifTimes, double? before)
        {
            double full = Full(icl, ifTimes);
            Console.WriteLine($"| {name} | {icl.Icl0:F0} / {icl.Icl1:F0} / {icl.IclU:F0} | {ifTimes.If0:F0} / {ifTimes.If1:F0} / {ifTimes.IfU:F0} | {icl.Wall:F0} | {full / 3600:F2} h | {(before is { } b ? $"{b / full:F2}×" : "")} |");
        }
        SweepPlan Plan(int? shotsPerTask, bool icl, bool runToLimit) => new()
        {
            Base = ModelReference.Parse(baseDir), Instruct = ModelReference.Parse(instructDir),
            Lambdas = [new Lambda(0), new Lambda(1)], Languages = ["en"],
            IclLimit = iclLimit, IfLimit = ifLimit, IfMaxTokens = 256, ShotsPerTask = shotsPerTask,
            Icl = icl ? "builtin:all" : null, If = runToLimit || shotsPerTask is null ? "builtin" : null, IfRunToLimit = runToLimit,
        };

        Times? before = null;
        if (Environment.GetEnvironmentVariable("ATTUNE_BEFORE") is { } dll)
        {
            before = WithStore(store =>
            {
                var wall = Stopwatch.StartNew();
                var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var a in new[] { dll, "sweep", "--base", baseDir, "--instruct", instructDir, "--lambdas", "0,1", "--langs", "en",
                    "--icl-limit", $"{iclLimit}", "--if-limit", $"{ifLimit}", "--max-tokens", "256", "--store", store }) psi.ArgumentList.Add(a);
                using var p = Process.Start(psi)!;
                var err = p.StandardError.ReadToEndAsync();
                p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0) throw new InvalidOperationException($"the build before failed: {err.Result}");
                return Read(store, wall.Elapsed.TotalSeconds);
            });
            Row("before issue 20 (d065de9), per item, IF with the loop guard", before, before, null);
        }
        long rows0 = Transformer.PromptPasses.Rows;
        var time0 = Transformer.PromptPasses.Time;
        var perItem = WithStore(store => RunSweep(Plan(null, icl: true, runToLimit: false), store));
        Row("now, per item, IF with the loop guard", perItem, perItem, before is null ? null : Full(before, before));
        var perTask = WithStore(store => RunSweep(Plan(1, icl: true, runToLimit: false), store));
        Row("now, --shots-per-task 1, IF with the loop guard", perTask, perItem, before is null ? null : Full(before, before));
        long rows = Transformer.PromptPasses.Rows - rows0;
        double seconds = (Transformer.PromptPasses.Time - time0).TotalSeconds;
        var toLimit = WithStore(store => RunSweep(Plan(null, icl: false, runToLimit: true), store));
        Row("now, per item, IF run to 256 tokens", perItem, toLimit, null);
        Row("now, --shots-per-task 1, IF run to 256 tokens", perTask, toLimit, null);
        Console.WriteLine();
        double tps = rows / seconds, gflops = 2.0 * ParametersOf(baseDir) * tps / 1e9;
        Console.WriteLine($"Prompt passes inside the two ICL runs above (passes of ≥ {Attune.Tensors.MatMul.GemmMinRows} rows): {rows} rows in {seconds:F1} s = {tps:F0} tok/s; 2·N·tok/s = {gflops:F0} GFLOP/s = {100 * gflops / peakGflops:F0}% of the {peakGflops:F0} GFLOP/s FMA peak.");
    }

    /// <summary>
    /// One λ (the base model's cells, λ = 0) of the reduced plan on another preset's shape (Qwen2.5-0.5B), BF16 random
    /// weights, per-item shots and one shot set per task, IF with the loop guard and run to 256 tokens; extrapolated to
    /// that λ's share of the full study (3 languages, 150 items per task, 120 IF prompts).
    /// </summary>
    public static void OneLambda(string root, string preset, string arch, int iclLimit, int ifLimit)
    {
        var outDir = Path.Combine(root, "bench", "out");
        var baseDir = Path.Combine(outDir, preset);
        var instructDir = Path.Combine(outDir, preset + "-seed1");
        if (!Directory.Exists(baseDir)) ModelInitializer.Write(baseDir, Presets.Find(preset, arch).Config, 0, Attune.Tensors.DType.BF16);
        if (!Directory.Exists(instructDir)) ModelInitializer.Write(instructDir, Presets.Find(preset, arch).Config, 1, Attune.Tensors.DType.BF16);
        Console.WriteLine($"{preset} shape, BF16, random weights: λ = 0's cells only, English, ICL builtin:all with {iclLimit} items per task, IF builtin with {ifLimit} prompts, ≤ 256 new tokens; {Environment.ProcessorCount} threads.");
        Console.WriteLine();
        Console.WriteLine("| shots, IF replies | ICL s | IF s | one λ of the full study extrapolated |");
        Console.WriteLine("|---|---:|---:|---:|");
        double iclScale = 150.0 / iclLimit, ifScale = 120.0 / ifLimit;
        (double Icl, double If) Run(int? shotsPerTask, bool runToLimit)
        {
            var plan = new SweepPlan
            {
                Base = ModelReference.Parse(baseDir), Instruct = ModelReference.Parse(instructDir),
                Lambdas = [new Lambda(0)], Languages = ["en"], IclLimit = iclLimit, IfLimit = ifLimit, IfMaxTokens = 256,
                ShotsPerTask = shotsPerTask, Icl = "builtin:all", If = "builtin", IfRunToLimit = runToLimit,
            };
            var sweep = new Sweep(plan);
            var cells = sweep.Cells().Where(c => c.Arm.Name == "lambda-0.00").ToList();
            var t = WithStore(storePath =>
            {
                using (var store = new ResultsStore(storePath))
                    sweep.RunAsync(store, store.BeginRun("bench study one λ", "bench", plan.ToJson()), cells).GetAwaiter().GetResult();
                return Read(storePath, 0);
            });
            return (t.Icl0, t.If0);
        }
        foreach (var (name, shots, toLimit) in new[] { ("per item, IF with the loop guard", (int?)null, false), ("--shots-per-task 1, IF with the loop guard", 1, false), ("--shots-per-task 1, IF run to 256 tokens", 1, true) })
        {
            var (icl, ifSeconds) = Run(shots, toLimit);
            Console.WriteLine($"| {name} | {icl:F0} | {ifSeconds:F0} | {3 * (icl * iclScale + ifSeconds * ifScale) / 60:F0} min |");
        }
    }

    static long ParametersOf(string folder)
    {
        using var lm = LanguageModel.Load(folder);
        return lm.Transformer.Weights.MatrixParameters;
    }

    static Times RunSweep(SweepPlan plan, string storePath)
    {
        var sweep = new Sweep(plan);
        var cells = sweep.Cells();
        double seconds;
        using (var store = new ResultsStore(storePath))
        {
            var run = store.BeginRun("bench study", "bench", plan.ToJson());
            var wall = Stopwatch.StartNew();
            sweep.RunAsync(store, run, cells).GetAwaiter().GetResult();
            seconds = wall.Elapsed.TotalSeconds;
        }
        return Read(storePath, seconds);
    }

    /// <summary>The cells' seconds by arm and suite, and per arm the wall time the cells do not count (model loads).</summary>
    static Times Read(string storePath, double wallSeconds)
    {
        using var store = new ResultsStore(storePath);
        var results = store.Cells();
        double Seconds(string arm, string suite) => results.Where(c => c.Arm == arm && c.Suite == suite).Sum(c => c.Seconds);
        double loads = Math.Max(0, wallSeconds - results.Sum(c => c.Seconds)) / 3;
        return new Times(Seconds("lambda-0.00", "icl"), Seconds("lambda-1.00", "icl"), Seconds("base-urial", "icl"),
            Seconds("lambda-0.00", "if"), Seconds("lambda-1.00", "if"), Seconds("base-urial", "if"), loads, wallSeconds);
    }

    static Times WithStore(Func<string, Times> run)
    {
        var storePath = Path.Combine(Path.GetTempPath(), $"attune-study-bench-{Guid.NewGuid():N}.db");
        try { return run(storePath); }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var f in new[] { storePath, storePath + "-wal", storePath + "-shm" }) File.Delete(f);
        }
    }
}
