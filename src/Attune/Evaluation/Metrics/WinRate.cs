using Attune.Tensors;

namespace Attune.Evaluation.Metrics;

/// <summary>Win rate ± standard error, the length-controlled win rate, ties and unreadable verdicts.</summary>
public sealed record WinRate(double Rate, double StandardError, double LengthControlled, double LengthSlope, int Judged, int Ties, int Unreadable, int Retries)
{
    /// <summary>
    /// Win rate (mean preference, 1 = the model's answer preferred) with its standard error, and the
    /// length-controlled win rate: a logistic model of the preference on the normalised length difference,
    /// tanh(Δwords / sd(Δwords)), fitted by Newton's method on the fractional outcomes and read off at equal
    /// length, σ(β₀).
    /// </summary>
    public static WinRate Fit(IReadOnlyList<double> preferences, IReadOnlyList<double> lengthDifferences, int ties, int unreadable, int retries)
    {
        if (preferences.Count == 0) return new WinRate(double.NaN, double.NaN, double.NaN, double.NaN, 0, 0, unreadable, retries);
        var y = preferences.ToArray();
        double mean = y.Average();
        double se = y.Length > 1 ? Math.Sqrt(y.Sum(v => (v - mean) * (v - mean)) / (y.Length - 1) / y.Length) : double.NaN;
        var d = lengthDifferences.ToArray();
        double sd = Math.Sqrt(d.Sum(v => v * v) / d.Length);
        var x = d.Select(v => sd > 0 ? Math.Tanh(v / sd) : 0).ToArray();
        var (b0, b1) = Logistic(x, y);
        return new WinRate(mean, se, Ops.Sigmoid(b0), b1, y.Length, ties, unreadable, retries);
    }

    /// <summary>Maximum-likelihood logistic regression with one feature and fractional outcomes (Newton–Raphson with a small ridge).</summary>
    public static (double B0, double B1) Logistic(IReadOnlyList<double> x, IReadOnlyList<double> y, double ridge = 1e-3)
    {
        double b0 = 0, b1 = 0;
        for (int iteration = 0; iteration < 100; iteration++)
        {
            double g0 = -ridge * b0, g1 = -ridge * b1, h00 = ridge, h01 = 0, h11 = ridge;
            for (int i = 0; i < x.Count; i++)
            {
                double p = Ops.Sigmoid(b0 + b1 * x[i]), w = p * (1 - p);
                g0 += y[i] - p; g1 += (y[i] - p) * x[i];
                h00 += w; h01 += w * x[i]; h11 += w * x[i] * x[i];
            }
            double det = h00 * h11 - h01 * h01;
            if (Math.Abs(det) < 1e-12) break;
            double s0 = (h11 * g0 - h01 * g1) / det, s1 = (h00 * g1 - h01 * g0) / det;
            b0 += s0; b1 += s1;
            if (Math.Abs(s0) + Math.Abs(s1) < 1e-10) break;
        }
        return (b0, b1);
    }
}
