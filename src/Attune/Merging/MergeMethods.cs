using System.Globalization;

namespace Attune.Merging;

/// <summary>The merge methods by name, with their parameters checked.</summary>
public static class MergeMethods
{
    public static readonly IReadOnlyList<string> Names = ["linear", "task_arithmetic", "slerp", "ties", "dare"];

    public sealed record Parameters
    {
        public IReadOnlyList<double> Weights { get; init; } = [1];
        public double Density { get; init; } = 0.5;
        public double DropRate { get; init; } = 0.5;
        public bool Rescale { get; init; } = true;
        public bool Normalize { get; init; }
        public ulong Seed { get; init; }
    }

    /// <summary>The method and the parameters to record in the recipe.</summary>
    public static (IMergeMethod Method, Dictionary<string, string> Recorded) Create(string name, Parameters p)
    {
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var weights = "[" + string.Join(", ", p.Weights.Select(F)) + "]";
        if (p.Weights.Any(w => !double.IsFinite(w))) throw new AttuneException(null, "weight", "must be finite numbers");
        switch (name)
        {
            case "linear":
                return (new LinearMethod(), []);
            case "slerp":
                return (new SlerpMethod(), []);
            case "task_arithmetic":
                return (new TaskArithmeticMethod(p.Weights), new() { ["weights"] = weights });
            case "ties":
                if (!(p.Density > 0 && p.Density <= 1)) throw new AttuneException(null, "--density", $"{p.Density} must be in (0, 1]");
                return (new TiesMethod(p.Weights, p.Density, p.Normalize),
                    new() { ["weights"] = weights, ["density"] = F(p.Density), ["normalize"] = p.Normalize ? "true" : "false" });
            case "dare":
                if (!(p.DropRate >= 0 && p.DropRate < 1)) throw new AttuneException(null, "--drop-rate", $"{p.DropRate} must be in [0, 1)");
                return (new DareMethod(p.Weights, p.DropRate, p.Rescale, p.Seed),
                    new() { ["weights"] = weights, ["drop_rate"] = F(p.DropRate), ["rescale"] = p.Rescale ? "true" : "false", ["seed"] = p.Seed.ToString(CultureInfo.InvariantCulture) });
            default:
                throw new AttuneException(null, "--method", $"\"{name}\" is not one of {string.Join(", ", Names)}");
        }
    }
}
