using System.Diagnostics;
using Attune.Formats;
using Attune.Merging;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Bench;

/// <summary>Merge throughput against a plain copy of the same files, and the merge's peak memory.</summary>
public static class MergeBench
{
    /// <summary>One merge in this process; prints seconds, bytes read + written and peak RSS.</summary>
    /// <summary>The methods the table measures: the streamed flag methods, and mergekit recipes (whole tensors, mergekit's arithmetic).</summary>
    public static readonly string[] Methods = ["linear", "ties", "dare", "mergekit:ties", "mergekit:dare_ties"];

    public static void One(string basePath, string instructPath, string outDir, string method = "linear")
    {
        var sw = Stopwatch.StartNew();
        if (method.StartsWith("mergekit:"))
        {
            var recipe = Path.Combine(Path.GetTempPath(), $"attune-bench-{Guid.NewGuid():N}.yml");
            File.WriteAllText(recipe, $"merge_method: {method["mergekit:".Length..]}\nbase_model: {basePath}\nmodels:\n  - model: {instructPath}\n    parameters:\n      weight: 1.0\n      density: 0.5\nparameters:\n  lambda: 0.5\n");
            Attune.Merging.Mergekit.MergekitMerge.Run(Attune.Merging.Mergekit.MergekitRecipe.Load(recipe), outDir, new Attune.Merging.Mergekit.MergekitMerge.Options { Seed = 1 });
            File.Delete(recipe);
        }
        else
        {
            var (m, recorded) = MergeMethods.Create(method, new MergeMethods.Parameters { Density = method == "ties" ? 0.5 : null, DropRate = 0.5, Seed = 1 });
            PartialAdaptation.Merge(basePath, instructPath, outDir, new MergeOptions { Lambdas = [0.5], Method = m, MethodParameters = recorded });
        }
        double seconds = sw.Elapsed.TotalSeconds;
        long read = WeightBytes(basePath) + WeightBytes(instructPath), written = WeightBytes(outDir);
        Console.WriteLine($"{seconds} {read + written} {EngineBench.PeakRssMb()}");
    }

    static long WeightBytes(string dir) => Directory.GetFiles(dir, "*.safetensors").Sum(f => new FileInfo(f).Length);

    public static void Table(string root, Func<string, string> runSelf)
    {
        var outDir = Path.Combine(root, "bench", "out");
        Directory.CreateDirectory(outDir);
        var basePath = Path.Combine(outDir, "qwen2.5-0.5b");
        var instructPath = Path.Combine(outDir, "qwen2.5-0.5b-instruct");
        var preset = Presets.Find("qwen2.5-0.5b", "qwen2").Config;
        if (!Directory.Exists(basePath)) ModelInitializer.Write(basePath, preset, 0, DType.BF16);
        if (!Directory.Exists(instructPath)) ModelInitializer.Write(instructPath, preset, 1, DType.BF16);
        long largest;
        using (var c = Checkpoint.Open(basePath)) largest = c.Weights.Names.Max(n => c.Weights.Entry(n).ByteLength);

        // Warm the page cache for both sides equally, then copy and merge the same bytes.
        var files = new[] { basePath, instructPath }.SelectMany(d => Directory.GetFiles(d, "*.safetensors")).ToList();
        foreach (var f in files) File.ReadAllBytes(f);
        var copyDir = Path.Combine(outDir, "copy");
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(copyDir);
        long copied = 0;
        foreach (var f in files)
        {
            var dst = Path.Combine(copyDir, Path.GetFileName(Path.GetDirectoryName(f)) + ".safetensors");
            using (var src = File.OpenRead(f))
            using (var d = new FileStream(dst, FileMode.Create))
            {
                src.CopyTo(d, 1 << 20);
                d.Flush(flushToDisk: true);
            }
            copied += 2 * new FileInfo(f).Length;
        }
        double copyGbs = copied / sw.Elapsed.TotalSeconds / 1e9;
        Directory.Delete(copyDir, true);

        var mergedDir = Path.Combine(outDir, "merged");
        double bound = largest * 4 / 1048576.0 + 64;
        Console.WriteLine("Random Qwen2.5-0.5B-shaped base and instruct (BF16, seeds 0 and 1), λ = 0.5, output BF16, inputs in the page cache;");
        Console.WriteLine("ties: density 0.5; dare: drop rate 0.5; mergekit:METHOD: a mergekit recipe (weight 1, density 0.5, lambda 0.5), whole tensors.");
        Console.WriteLine();
        Console.WriteLine($"Plain copy of the same files: {copyGbs:F2} GB/s (read + written). Bound for the streamed merges: largest tensor × 4 + 64 MiB = {bound:F0} MB.");
        Console.WriteLine();
        Console.WriteLine("| method | seconds | merge GB/s (read + written) | vs plain copy | peak RSS |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var method in Methods)
        {
            if (Directory.Exists(mergedDir)) Directory.Delete(mergedDir, true);
            var parts = runSelf($"merge-one {basePath} {instructPath} {mergedDir} {method}").Trim().Split(' ');
            Directory.Delete(mergedDir, true);
            double seconds = double.Parse(parts[0]), bytes = double.Parse(parts[1]), rss = double.Parse(parts[2]);
            double mergeGbs = bytes / seconds / 1e9;
            Console.WriteLine($"| {method} | {seconds:F1} | {mergeGbs:F2} | {mergeGbs / copyGbs:F2}× | {rss:F0} MB |");
        }
    }
}
