using System.Globalization;

namespace Attune.Merging;

/// <summary>The merge methods by name, with their parameters checked.</summary>
public static class MergeMethods
{
    public static readonly IReadOnlyList<string> Names = ["linear", "task_arithmetic", "slerp", "ties", "dare"];

    public sealed record Parameters
    {
        public IReadOnlyList<double> Weights { get; init; } = [1];
        /// <summary>ties: the fraction of each task vector kept (null: mergekit's default, 1).</summary>
        public double? Density { get; init; }
        public double DropRate { get; init; } = 0.5;
        public bool Rescale { get; init; } = true;
        /// <summary>ties and task_arithmetic: divide by the total weight (null: mergekit's default — true for ties, false for task_arithmetic).</summary>
        public bool? Normalize { get; init; }
        public ulong Seed { get; init; }
    }

    /// <summary>
    /// The method and the parameters to record in the recipe. Methods sharing a name with mergekit's compute mergekit's
    /// numbers with its defaults; a parameter the method does not use is an error rather than silently ignored.
    /// </summary>
    public static (IMergeMethod Method, Dictionary<string, string> Recorded) Create(string name, Parameters p)
    {
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var weights = "[" + string.Join(", ", p.Weights.Select(F)) + "]";
        if (p.Weights.Any(w => !double.IsFinite(w))) throw new AttuneException(null, "weight", "must be finite numbers");
        void Unused(bool given, string parameter, string why)
        {
            if (given) throw new AttuneException(null, parameter, $"{name} does not use it: {why}");
        }
        switch (name)
        {
            case "linear" or "slerp":
                Unused(p.Weights.Any(w => w != 1), "weight", $"{name} interpolates the base and one model by λ; weights belong to task_arithmetic and ties (or a mergekit recipe's linear)");
                Unused(p.Density is not null, "--density", "only ties thins task vectors");
                Unused(p.Normalize is not null, "--normalize", "λ is already a share of the two models");
                return (name == "linear" ? new LinearMethod() : new SlerpMethod(), []);
            case "task_arithmetic":
                Unused(p.Density is not null, "--density", "task arithmetic keeps every element (ties thins them)");
                return (new TaskArithmeticMethod(p.Weights, p.Normalize ?? false), new() { ["weights"] = weights, ["normalize"] = p.Normalize == true ? "true" : "false" });
            case "ties":
                double density = p.Density ?? 1;
                if (!(density > 0 && density <= 1)) throw new AttuneException(null, "--density", $"{density} must be in (0, 1]");
                return (new TiesMethod(p.Weights, density, p.Normalize ?? true),
                    new() { ["weights"] = weights, ["density"] = F(density), ["normalize"] = p.Normalize ?? true ? "true" : "false" });
            case "dare":
                Unused(p.Density is not null, "--density", "dare takes --drop-rate (it keeps 1 − drop rate) and rescales by 1/(1 − drop rate), as the DARE paper; mergekit's dare_linear and dare_ties (density, an L1-norm rescale) run from a mergekit recipe");
                Unused(p.Normalize is not null, "--normalize", "dare sums the weighted task vectors");
                if (!(p.DropRate >= 0 && p.DropRate < 1)) throw new AttuneException(null, "--drop-rate", $"{p.DropRate} must be in [0, 1)");
                return (new DareMethod(p.Weights, p.DropRate, p.Rescale, p.Seed),
                    new() { ["weights"] = weights, ["drop_rate"] = F(p.DropRate), ["rescale"] = p.Rescale ? "true" : "false", ["seed"] = p.Seed.ToString(CultureInfo.InvariantCulture) });
            default:
                throw new AttuneException(null, "--method", $"\"{name}\" is not one of {string.Join(", ", Names)} (mergekit's other methods run from a mergekit recipe: attune merge --recipe FILE.yml)");
        }
    }
}
