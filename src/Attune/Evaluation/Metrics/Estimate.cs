using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Attune.Evaluation.Metrics;

/// <summary>A metric's value over a set of items with its bootstrap 95% interval.</summary>
public sealed record Estimate(double Value, double Low, double High, int Count)
{

    /// <summary>value, ci_low, ci_high, n; a NaN (no items) is written as null.</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() => new() { ["value"] = Json(Value), ["ci_low"] = Json(Low), ["ci_high"] = Json(High), ["n"] = Count };

    public static System.Text.Json.Nodes.JsonNode? Json(double v) => double.IsFinite(v) ? v : null;
}

/// <summary>Percentile bootstrap intervals: items resampled with replacement, the statistic recomputed, 2.5th and 97.5th percentiles.</summary>
public static class Bootstrap
{
    public const int Resamples = 1000;

    /// <summary>The mean of per-item values and its interval.</summary>
    public static Estimate Mean(IReadOnlyList<double> values, ulong seed = 1234) =>
        Interval(values.Count, idx => { double s = 0; foreach (var i in idx) s += values[i]; return s / idx.Length; }, seed);

    /// <summary>
    /// The mean over groups (tasks) of each group's mean, with an interval from resampling items within
    /// every group at once (a stratified bootstrap); <see cref="Estimate.Count"/> is the number of items.
    /// </summary>
    public static Estimate MeanOfMeans(IReadOnlyList<IReadOnlyList<double>> groups, ulong seed = 1234, int resamples = Resamples)
    {
        var nonEmpty = groups.Where(g => g.Count > 0).ToList();
        if (nonEmpty.Count == 0) return new Estimate(double.NaN, double.NaN, double.NaN, 0);
        double value = nonEmpty.Average(g => g.Average());
        var rng = new Tensors.Rng(seed);
        var samples = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            double total = 0;
            foreach (var g in nonEmpty)
            {
                double s = 0;
                for (int i = 0; i < g.Count; i++) s += g[rng.Next(g.Count)];
                total += s / g.Count;
            }
            samples[b] = total / nonEmpty.Count;
        }
        Array.Sort(samples);
        return new Estimate(value, Percentile(samples, 0.025), Percentile(samples, 0.975), nonEmpty.Sum(g => g.Count));
    }

    public static Estimate Interval(int n, Func<int[], double> statistic, ulong seed = 1234, int resamples = Resamples) =>
        IntervalAndError(n, statistic, seed, resamples).Estimate;

    /// <summary>The interval and the standard deviation of the resampled statistics (the harness's bootstrap standard error).</summary>
    public static (Estimate Estimate, double StandardError) IntervalAndError(int n, Func<int[], double> statistic, ulong seed = 1234, int resamples = Resamples)
    {
        if (n == 0) return (new Estimate(double.NaN, double.NaN, double.NaN, 0), double.NaN);
        double value = statistic(Enumerable.Range(0, n).ToArray());
        var rng = new Tensors.Rng(seed);
        var samples = new double[resamples];
        var idx = new int[n];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < n; i++) idx[i] = rng.Next(n);
            samples[b] = statistic(idx);
        }
        Array.Sort(samples);
        double mean = samples.Average();
        double sd = Math.Sqrt(samples.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, resamples - 1));
        return (new Estimate(value, Percentile(samples, 0.025), Percentile(samples, 0.975), n), sd);
    }

    static double Percentile(double[] sorted, double p)
    {
        double rank = p * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}
