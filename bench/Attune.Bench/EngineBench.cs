using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Bench;

/// <summary>Engine speed on one model: prompt processing, generation and peak RSS; and the machine's read bandwidth.</summary>
public static class EngineBench
{
    public sealed record Result(double PromptTps, double GenTps, double RssMb, long WeightBytes)
    {
        /// <summary>Best of <paramref name="reps"/> fresh-process runs: fastest prompt and generation, smallest RSS.</summary>
        public static Result BestOf(int reps, Func<string> runOnce)
        {
            Result? best = null;
            for (int i = 0; i < reps; i++)
            {
                var r = System.Text.Json.JsonSerializer.Deserialize<Result>(runOnce().Trim())!;
                best = best is null ? r : best with { PromptTps = Math.Max(best.PromptTps, r.PromptTps), GenTps = Math.Max(best.GenTps, r.GenTps), RssMb = Math.Min(best.RssMb, r.RssMb) };
            }
            return best!;
        }
    }

    /// <summary>Prefill of <paramref name="promptTokens"/> random ids, then <paramref name="genTokens"/> greedy steps.</summary>
    public static Result Run(string model, int promptTokens, int genTokens, int threads)
    {
        Stage("start");
        using var pool = new WorkerPool(threads);
        using var lm = LanguageModel.Load(model);
        Stage("loaded");
        var t = new Transformer(lm.Transformer.Weights, pool);
        var rng = new Random(1);
        int vocab = Math.Min(lm.Tokenizer.VocabSize, lm.Config.VocabSize);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocab)).ToArray();
        // Warm-up: JIT and first-touch of the mapped weights.
        var warm = t.NewCache(32);
        t.Forward(warm, prompt.AsSpan(0, 16));
        for (int i = 0; i < 4; i++) t.Forward(warm, [1]);

        Stage("warm");
        var cache = t.NewCache(promptTokens + genTokens);
        t.Profiling = Environment.GetEnvironmentVariable("ATTUNE_PROFILE") == "1";
        var sw = Stopwatch.StartNew();
        var logits = t.Forward(cache, prompt);
        double promptTps = promptTokens / sw.Elapsed.TotalSeconds;
        Stage("prefill");
        if (t.Profile is { } prefill) { Console.Error.WriteLine($"prefill: {prefill}"); prefill.Reset(); }
        sw.Restart();
        for (int i = 0; i < genTokens; i++)
        {
            int next = TensorPrimitives.IndexOfMax(logits.Row(0));
            logits = t.Forward(cache, [next]);
        }
        double genTps = genTokens / sw.Elapsed.TotalSeconds;
        Stage("decode");
        if (t.Profile is { } decode) Console.Error.WriteLine($"decode: {decode}");
        return new Result(promptTps, genTps, PeakRssMb(), t.Weights.MatrixBytes);
    }

    /// <summary>
    /// Prompt processing inside the model: <paramref name="sequences"/> sequences of <paramref name="tokens"/> random ids
    /// each, run together in one forward pass (logits for each sequence's last row), best of <paramref name="reps"/> after a
    /// warm-up of the same shape; tokens/s, the fraction of <paramref name="peakGflops"/> that 2·N·tokens/s is (N the
    /// model's parameters), and the phases of the best pass.
    /// </summary>
    public static void Prefill(string model, int tokens, int sequences, int reps, double peakGflops)
    {
        using var lm = LanguageModel.Load(model);
        var t = lm.Transformer;
        var rng = new Random(1);
        int vocab = Math.Min(lm.Tokenizer.VocabSize, lm.Config.VocabSize);
        var ids = Enumerable.Range(0, tokens * sequences).Select(_ => rng.Next(vocab)).ToArray();
        var lengths = Enumerable.Repeat(tokens, sequences).ToArray();
        double best = double.MaxValue;
        string profile = "";
        for (int i = 0; i <= reps; i++)
        {
            var caches = Enumerable.Range(0, sequences).Select(_ => t.NewCache(tokens)).ToArray();
            t.Profiling = true;
            var sw = Stopwatch.StartNew();
            t.ForwardMany(caches, ids, lengths);
            double s = sw.Elapsed.TotalSeconds;
            if (i > 0 && s < best) { best = s; profile = t.Profile!.ToString(); }
        }
        double tps = tokens * sequences / best;
        double gflops = 2.0 * t.Weights.MatrixParameters * tps / 1e9;
        Console.WriteLine($"| {sequences} × {tokens} | {tps:F0} | {gflops:F0} | {100 * gflops / peakGflops:F0}% | {profile} |");
    }

    /// <summary>With ATTUNE_RSS=1, resident memory at a stage of the run (anonymous and file-backed) and the managed heap, on stderr.</summary>
    static void Stage(string name)
    {
        if (Environment.GetEnvironmentVariable("ATTUNE_RSS") != "1") return;
        var fields = string.Join("  ", new[] { "VmHWM", "VmRSS", "RssAnon", "RssFile" }.Select(f => $"{f} {StatusKb(f) / 1024.0:F0} MB"));
        Console.Error.WriteLine($"{name}: {fields}  gc={GC.GetTotalMemory(false) / 1048576} MiB");
    }

    public static double PeakRssMb() => StatusKb("VmHWM") / 1024.0;

    /// <summary>A kB field of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile).</summary>
    static long StatusKb(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":"));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    /// <summary>Read bandwidth in GB/s: threads summing disjoint halves of a 1 GiB buffer, best of 5.</summary>
    public static unsafe double ReadBandwidth(int threads)
    {
        const long bytes = 1L << 30;
        var buffer = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            long n = bytes / 4;
            new Span<float>(buffer, (int)Math.Min(n, int.MaxValue)).Fill(1f);
            double best = 0;
            for (int rep = 0; rep < 5; rep++)
            {
                var sw = Stopwatch.StartNew();
                var sums = new float[threads];
                var workers = Enumerable.Range(0, threads).Select(k => new Thread(() =>
                {
                    long start = n * k / threads, end = n * (k + 1) / threads;
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    for (long i = start; i + 64 <= end; i += 64)
                    {
                        a0 += Vector512.Load(buffer + i); a1 += Vector512.Load(buffer + i + 16);
                        a2 += Vector512.Load(buffer + i + 32); a3 += Vector512.Load(buffer + i + 48);
                    }
                    sums[k] = Vector512.Sum(a0 + a1 + a2 + a3);
                })).ToList();
                workers.ForEach(w => w.Start());
                workers.ForEach(w => w.Join());
                best = Math.Max(best, bytes / sw.Elapsed.TotalSeconds / 1e9);
                GC.KeepAlive(sums);
            }
            return best;
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(buffer);
        }
    }
}
