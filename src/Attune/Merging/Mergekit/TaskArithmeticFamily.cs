namespace Attune.Merging.Mergekit;

/// <summary>How a task vector is thinned before the vectors are combined.</summary>
public enum Sparsification { None, Magnitude, Random, MagnitudeOutliers, DellaMagprune }

/// <summary>
/// mergekit's generalized task arithmetic — task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs(_ties) and
/// della(_linear) — for one tensor: each model's task vector δᵢ = Mᵢ − B is thinned (by magnitude, at random, by
/// magnitude without its largest outliers, or DELLA's rank-weighted chance) to the fraction <c>density</c> of its
/// elements, rescaled to keep its L1 norm when <c>rescale</c> is set; weighted by <c>weight</c>; with a sign
/// consensus (ties family) only the weighted values agreeing with the sign of their sum are kept; the sum is divided by
/// the kept weights when <c>normalize</c> is set, scaled by <c>lambda</c>, and added to the base. Each step rounds to the
/// compute dtype as torch does. Defaults are mergekit's per method.
/// </summary>
public sealed class TaskArithmeticFamily(string name, bool consensus, Sparsification sparsification, bool normalize, bool rescale) : MergekitMethod
{
    public override string Name => name;
    public override bool NeedsBase => true;
    public override IReadOnlyList<ParameterDef> Parameters =>
        [new("int8_mask", false, false), new("normalize", false, normalize), new("rescale", false, rescale), new("lambda", false, 1.0)];
    public override IReadOnlyList<ParameterDef> TensorParameters => sparsification switch
    {
        Sparsification.MagnitudeOutliers => [new("weight", true, null), new("density", false, 1.0), new("gamma", false, 0.01)],
        Sparsification.DellaMagprune => [new("weight", true, null), new("density", false, 1.0), new("epsilon", false, 0.15)],
        _ => [new("weight", true, null), new("density", false, 1.0)],
    };

    public override float[] Merge(TensorInputs x)
    {
        var r = x.Compute;
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, $"{name} needs base_model (task vectors are differences from it)");
        var b = x.Tensors[x.BaseIndex];
        int len = b.Length;
        var models = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).ToList();
        if (models.Count == 0) return b;
        var deltas = new List<float[]>();
        var weights = new List<float>();
        foreach (int k in models)
        {
            // The task vector replaces the model's values in its own array (no copy of a whole tensor per model).
            var delta = x.Tensors[k];
            for (int e = 0; e < len; e++) delta[e] = r.Round(delta[e] - b[e]);
            if (sparsification != Sparsification.None) Sparsify(delta, x.Number(k, "density"), x, k);
            deltas.Add(delta);
            weights.Add(r.Round((float)x.Number(k, "weight")));
        }
        double lambda = x.Number("lambda");
        bool normalizing = x.Flag("normalize");
        var output = new float[len];
        int n = deltas.Count;
        Span<float> weighted = stackalloc float[n];
        for (int e = 0; e < len; e++)
        {
            float mixed = 0, divisor = 0;
            for (int k = 0; k < n; k++) weighted[k] = r.Round(deltas[k][e] * weights[k]);
            if (consensus)
            {
                // The elected sign: that of the sum of the weighted values (≥ 0 elects +); a zero value agrees with neither.
                float vote = 0;
                for (int k = 0; k < n; k++) vote += weighted[k];
                int majority = r.Round(vote) >= 0 ? 1 : -1;
                for (int k = 0; k < n; k++)
                    if (Math.Sign(weighted[k]) == majority) { mixed += weighted[k]; divisor += weights[k]; }
                mixed = r.Round(mixed);
                divisor = r.Round(divisor);
                if (divisor == 0) divisor = 1;
            }
            else
            {
                for (int k = 0; k < n; k++) { mixed += weighted[k]; divisor += weights[k]; }
                mixed = r.Round(mixed);
                divisor = r.Round(divisor);
                if (Math.Abs(divisor) < 1e-8) divisor = 1;
            }
            if (normalizing) mixed = r.Round(mixed / divisor);
            if (lambda != 1) mixed = r.Round(mixed * (float)lambda);
            output[e] = r.Round(b[e] + mixed);
        }
        return output;
    }

    /// <summary>Thins a task vector in place to the elements kept (the rest set to 0), rescaled to its L1 norm when asked.</summary>
    void Sparsify(float[] delta, double density, TensorInputs x, int input)
    {
        if (density >= 1) return;
        int len = delta.Length;
        var keep = new bool[len];
        switch (sparsification)
        {
            case Sparsification.Magnitude:
            {
                // The int(density·n) largest magnitudes; among equal magnitudes at the threshold, the earlier elements.
                long k = (long)(density * len);
                if (k <= 0) throw new AttuneException(null, x.Name, $"density {density} keeps no element of a tensor of {len} (it would zero the tensor)");
                var (threshold, below) = MagnitudeRank.At(delta, len - k);
                long equal = 0;
                foreach (var v in delta) if (MagnitudeRank.Bits(v) == threshold) equal++;
                long above = len - below - equal, taken = 0;
                for (int i = 0; i < len; i++)
                {
                    uint bits = MagnitudeRank.Bits(delta[i]);
                    keep[i] = bits > threshold || (bits == threshold && taken++ < k - above);
                }
                break;
            }
            case Sparsification.MagnitudeOutliers:
            {
                // Ascending by magnitude (equal ones by index), keep positions [n_bot, n − n_top): the gamma fraction of
                // largest and then the smallest go, to keep int(density·n). mergekit keeps sorted[n_bot:-n_top], which is
                // empty when n_top is 0 (tensors of fewer than 1/gamma elements): so it is here.
                double gamma = x.Number(input, "gamma");
                long target = (long)(density * len), top = (long)(gamma * len), bottom = len - target - top;
                if (bottom < 0) { top += bottom; bottom = 0; }
                if (top <= 0 || bottom >= len - top) break;
                var (low, belowLow) = MagnitudeRank.At(delta, bottom);
                var (high, belowHigh) = MagnitudeRank.At(delta, len - top - 1);
                long seenLow = 0, seenHigh = 0;
                for (int i = 0; i < len; i++)
                {
                    uint bits = MagnitudeRank.Bits(delta[i]);
                    long position = bits == low ? belowLow + seenLow++ : bits == high ? belowHigh + seenHigh++ : -1;
                    keep[i] = position >= 0 ? position >= bottom && position < len - top : bits > low && bits < high;
                }
                break;
            }
            case Sparsification.Random:
                for (int i = 0; i < len; i++) keep[i] = x.Random.NextDouble() < density;
                break;
            case Sparsification.DellaMagprune:
                DellaMask(delta, density, x.Number(input, "epsilon"), x, keep);
                break;
        }
        double before = 0, after = 0;
        for (int i = 0; i < len; i++)
        {
            before += Math.Abs(delta[i]);
            if (!keep[i]) delta[i] = 0;
            after += Math.Abs(delta[i]);
        }
        // Rescale to the L1 norm the task vector had (mergekit's rescale), unless either norm is ~0.
        var r = x.Compute;
        float beforeScale = r.Round((float)before), afterScale = r.Round((float)after);
        if (!x.Flag("rescale") || beforeScale < 1e-7f || afterScale < 1e-7f) return;
        float scale = r.Round(beforeScale / afterScale);
        for (int i = 0; i < len; i++) delta[i] = r.Round(delta[i] * scale);
    }

    /// <summary>
    /// DELLA's MagPrune: within each row (a vector is one row), an element of magnitude rank r (1 = smallest) of n is kept
    /// with probability density − ε + 2ε·(r − 1)/(n − 1), so large values survive more often.
    /// </summary>
    static void DellaMask(float[] delta, double density, double epsilon, TensorInputs x, bool[] mask)
    {
        if (density + epsilon >= 1 || density - epsilon <= 0)
            throw new AttuneException(null, x.Name, $"epsilon {epsilon} must keep density ± epsilon inside (0, 1) (density {density})");
        int rows = x.Shape.Length >= 2 ? (int)x.Shape[0] : 1, cols = delta.Length / rows;
        var keys = new long[cols];
        for (int row = 0; row < rows; row++)
        {
            // Ascending magnitude, equal ones by index: one sort of (|δ| bits, index) keys per row.
            for (int c = 0; c < cols; c++) keys[c] = ((long)MagnitudeRank.Bits(delta[row * cols + c]) << 32) | (uint)c;
            Array.Sort(keys);
            for (int rank = 0; rank < cols; rank++)
            {
                double norm = cols > 1 ? (double)rank / (cols - 1) : 0;
                double p = density - epsilon + norm * 2 * epsilon;
                mask[row * cols + (int)(keys[rank] & 0xFFFFFFFF)] = x.Random.NextDouble() < p;
            }
        }
    }
}

/// <summary>
/// Order statistics of magnitudes without sorting: non-negative floats order as their bit patterns, so the magnitude at
/// an ascending position is found with two 65536-bucket histogram passes (high, then low 16 bits) — linear time and no
/// copy of the tensor.
/// </summary>
static class MagnitudeRank
{
    public static uint Bits(float x) => BitConverter.SingleToUInt32Bits(x) & 0x7FFFFFFF;

    /// <summary>The bit pattern of the magnitude at ascending position <paramref name="position"/>, and how many magnitudes are smaller.</summary>
    public static (uint Bits, long Below) At(float[] values, long position)
    {
        var high = new long[65536];
        foreach (var v in values) high[Bits(v) >> 16]++;
        long below = 0;
        uint bucket = 0;
        for (; bucket < 65536; bucket++)
        {
            if (below + high[bucket] > position) break;
            below += high[bucket];
        }
        var low = new long[65536];
        foreach (var v in values)
        {
            uint bits = Bits(v);
            if (bits >> 16 == bucket) low[bits & 0xFFFF]++;
        }
        for (uint l = 0; l < 65536; l++)
        {
            if (below + low[l] > position) return ((bucket << 16) | l, below);
            below += low[l];
        }
        throw new ArgumentOutOfRangeException(nameof(position));
    }
}
