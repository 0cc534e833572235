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
    public static void One(string basePath, string instructPath, string outDir)
    {
        var sw = Stopwatch.StartNew();
        PartialAdaptation.Merge(basePath, instructPath, outDir, new MergeOptions { Lambdas = [0.5] });
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
        if (Directory.Exists(mergedDir)) Directory.Delete(mergedDir, true);
        var parts = runSelf($"merge-one {basePath} {instructPath} {mergedDir}").Trim().Split(' ');
        Directory.Delete(mergedDir, true);
        double seconds = double.Parse(parts[0]), bytes = double.Parse(parts[1]), rss = double.Parse(parts[2]);
        double mergeGbs = bytes / seconds / 1e9;
        double bound = largest * 4 / 1048576.0 + 64;
        Console.WriteLine("Random Qwen2.5-0.5B-shaped base and instruct (BF16, seeds 0 and 1), λ = 0.5, output BF16, inputs in the page cache.");
        Console.WriteLine();
        Console.WriteLine("| merge GB/s (read + written) | plain copy GB/s (read + written) | ratio | merge peak RSS | bound: largest tensor × 4 + 64 MiB |");
        Console.WriteLine("|---:|---:|---:|---:|---:|");
        Console.WriteLine($"| {mergeGbs:F2} | {copyGbs:F2} | {mergeGbs / copyGbs:F2}× | {rss:F0} MB | {bound:F0} MB |");
    }
}
