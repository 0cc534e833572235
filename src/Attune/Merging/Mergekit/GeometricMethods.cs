namespace Attune.Merging.Mergekit;

/// <summary>Vector helpers over flattened tensors; reductions in double (torch's f32 reductions differ in the last bits only).</summary>
static class Vec
{
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    public static double Norm(ReadOnlySpan<float> a) => Math.Sqrt(Dot(a, a));

    /// <summary>Rows of a tensor as mergekit's "dim = -1" reductions see them: a vector is one row.</summary>
    public static (int Rows, int Cols) Rows(long[] shape, int length) => shape.Length >= 2 ? ((int)shape[0], length / (int)shape[0]) : (1, length);

    public static float[] Minus(float[] a, float[] b) => a.Select((v, i) => v - b[i]).ToArray();
}

/// <summary>
/// mergekit's model_stock (Jang et al. 2024): with the fine-tuned models' offsets from the base, cos θ is the mean of their
/// pairwise cosines (over the whole tensor, or per row with <c>filter_wise</c>), t = N·cos θ / (1 + (N − 1)·cos θ), and
/// the output t·mean(models) + (1 − t)·base. Needs the base and at least two other models.
/// </summary>
public sealed class ModelStockMerge : MergekitMethod
{
    public override string Name => "model_stock";
    public override bool NeedsBase => true;
    public override IReadOnlyList<ParameterDef> Parameters => [new("filter_wise", false, false)];

    public override float[] Merge(TensorInputs x)
    {
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, "model_stock needs base_model");
        var w0 = x.Tensors[x.BaseIndex];
        var ws = x.Tensors.Where((_, k) => k != x.BaseIndex).ToList();
        if (ws.Count == 0) return w0;
        if (ws.Count < 2) throw new AttuneException(null, x.Name, "model_stock needs at least three models: the base and two or more others");
        var (rows, cols) = x.Flag("filter_wise") ? Vec.Rows(x.Shape, w0.Length) : (1, w0.Length);
        var offsets = ws.Select(w => Vec.Minus(w, w0)).ToList();
        int n = ws.Count;
        var output = new float[w0.Length];
        for (int r = 0; r < rows; r++)
        {
            double cos = 0;
            int pairs = 0;
            for (int i = 0; i < n; i++)
                for (int j = i + 1; j < n; j++, pairs++)
                {
                    var a = offsets[i].AsSpan(r * cols, cols);
                    var b = offsets[j].AsSpan(r * cols, cols);
                    cos += Math.Clamp(Vec.Dot(a, b) / Math.Max(Vec.Norm(a) * Vec.Norm(b), 1e-6), -1, 1);
                }
            cos /= pairs;
            float t = (float)(n * cos / (1 + (n - 1) * cos));
            for (int e = r * cols; e < (r + 1) * cols; e++)
            {
                float sum = 0;
                foreach (var w in ws) sum += w[e];
                output[e] = x.Compute.Round(t * (sum / n) + (1 - t) * w0[e]);
            }
        }
        return output;
    }
}

/// <summary>
/// mergekit's nuslerp: spherical interpolation of two models at t = w₂/(w₁ + w₂) (0.5 when the weights cancel) — of their
/// task vectors when a base is given (then added back) — over the flattened tensor (<c>nuslerp_flatten</c>, the default),
/// or per row, or per column with <c>nuslerp_row_wise</c>; nearly colinear rows are interpolated linearly.
/// </summary>
public sealed class NuSlerpMerge : MergekitMethod
{
    public override string Name => "nuslerp";
    public override IReadOnlyList<ParameterDef> Parameters => [new("nuslerp_row_wise", false, false), new("nuslerp_flatten", false, true)];
    public override IReadOnlyList<ParameterDef> TensorParameters => [new("weight", true, null)];

    public override float[] Merge(TensorInputs x)
    {
        if (x.Tensors.Count == 1) return x.Tensors[0];
        var others = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).ToList();
        if (others.Count != 2) throw new AttuneException(null, x.Name, "nuslerp merges exactly two models (and an optional base that is not one of them)");
        double w0 = x.Number(others[0], "weight"), w1 = x.Number(others[1], "weight");
        double t = Math.Abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
        float[]? b = x.BaseIndex >= 0 ? x.Tensors[x.BaseIndex] : null;
        var v0 = b is null ? x.Tensors[others[0]] : Vec.Minus(x.Tensors[others[0]], b);
        var v1 = b is null ? x.Tensors[others[1]] : Vec.Minus(x.Tensors[others[1]], b);
        int len = v0.Length;
        var (rows, cols) = x.Flag("nuslerp_flatten") ? (1, len) : Vec.Rows(x.Shape, len);
        bool columns = !x.Flag("nuslerp_flatten") && x.Flag("nuslerp_row_wise") && x.Shape.Length >= 2;
        // Each interpolated vector: a row (stride 1) or, row-wise, a column (stride cols).
        int vectors = columns ? cols : rows, size = columns ? rows : cols, stride = columns ? cols : 1;
        var output = new float[len];
        for (int v = 0; v < vectors; v++)
        {
            int Index(int i) => columns ? v + i * stride : v * cols + i;
            double d01 = 0, n0 = 0, n1 = 0;
            for (int i = 0; i < size; i++) { double a = v0[Index(i)], c = v1[Index(i)]; d01 += a * c; n0 += a * a; n1 += c * c; }
            double cos = d01 / (Math.Max(Math.Sqrt(n0), 1e-7) * Math.Max(Math.Sqrt(n1), 1e-7));
            double theta = Math.Acos(Math.Clamp(cos, -1, 1)), sin = Math.Sin(theta);
            bool colinear = Math.Abs(sin) < 1e-8;
            double s0 = colinear ? 1 - t : Math.Sin((1 - t) * theta) / sin, s1 = colinear ? t : Math.Sin(t * theta) / sin;
            for (int i = 0; i < size; i++)
            {
                int e = Index(i);
                float r = (float)(s0 * v0[e] + s1 * v1[e]);
                output[e] = x.Compute.Round(b is null ? r : b[e] + r);
            }
        }
        return output;
    }
}

/// <summary>
/// mergekit's multislerp: barycentric interpolation on the hypersphere — the models (their task vectors when a base is
/// given) are projected to the unit sphere, averaged with their weights (normalized to sum 1 by default), the weighted
/// tangent vectors at that mean are mapped back with the exponential map, and the result is scaled to the weighted mean
/// norm (then the base added back).
/// </summary>
public sealed class MultiSlerpMerge : MergekitMethod
{
    public override string Name => "multislerp";
    public override IReadOnlyList<ParameterDef> Parameters => [new("normalize_weights", false, true), new("eps", false, 1e-8)];
    public override IReadOnlyList<ParameterDef> TensorParameters => [new("weight", true, null)];

    public override float[] Merge(TensorInputs x)
    {
        var idx = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).ToList();
        if (idx.Count == 1) return x.Tensors[idx[0]];
        float[]? b = x.BaseIndex >= 0 ? x.Tensors[x.BaseIndex] : null;
        var vs = idx.Select(k => b is null ? x.Tensors[k] : Vec.Minus(x.Tensors[k], b)).ToList();
        var w = idx.Select(k => x.Number(k, "weight")).ToArray();
        if (x.Flag("normalize_weights")) { double s = w.Sum(); w = w.Select(v => v / s).ToArray(); }
        double eps = x.Number("eps");
        int len = vs[0].Length, n = vs.Count;
        var norms = vs.Select(v => Vec.Norm(v)).ToArray();
        var mean = new double[len];
        for (int k = 0; k < n; k++)
            for (int e = 0; e < len; e++) mean[e] += vs[k][e] / (norms[k] + eps) * w[k];
        double meanNorm = Math.Sqrt(mean.Sum(v => v * v));
        var output = new float[len];
        if (meanNorm < eps)
        {
            if (n != 2) throw new AttuneException(null, x.Name, "multislerp: the weighted unit vectors cancel out (antipodal models with balancing weights); use other weights");
            for (int e = 0; e < len; e++) output[e] = x.Compute.Round((float)(vs[0][e] * w[0] + vs[1][e] * w[1] + (b?[e] ?? 0)));
            return output;
        }
        for (int e = 0; e < len; e++) mean[e] /= meanNorm;
        var tangent = new double[len];
        for (int k = 0; k < n; k++)
        {
            double dot = 0;
            for (int e = 0; e < len; e++) dot += vs[k][e] / (norms[k] + eps) * mean[e];
            for (int e = 0; e < len; e++) tangent[e] += (vs[k][e] / (norms[k] + eps) - dot * mean[e]) * w[k];
        }
        double tangentNorm = Math.Sqrt(tangent.Sum(v => v * v)) + eps;
        double averageNorm = norms.Select((v, k) => v * w[k]).Sum();
        for (int e = 0; e < len; e++)
        {
            double r = (mean[e] * Math.Cos(tangentNorm) + tangent[e] * (Math.Sin(tangentNorm) / tangentNorm)) * averageNorm;
            output[e] = x.Compute.Round((float)(r + (b?[e] ?? 0)));
        }
        return output;
    }
}

/// <summary>
/// mergekit's karcher: the Riemannian (Karcher) mean of the inputs on the unit sphere, equal weights, found by at most
/// <c>max_iter</c> fixed-point steps (stopping under <c>tol</c>), scaled by the mean of the inputs' norms.
/// </summary>
public sealed class KarcherMerge : MergekitMethod
{
    public override string Name => "karcher";
    public override IReadOnlyList<ParameterDef> Parameters => [new("max_iter", false, 10.0), new("tol", false, 1e-5)];

    public override float[] Merge(TensorInputs x)
    {
        int n = x.Tensors.Count, len = x.Tensors[0].Length;
        if (n == 1) return x.Tensors[0];
        double tol = x.Number("tol");
        int maxIter = (int)x.Number("max_iter");
        var norms = x.Tensors.Select(t => Vec.Norm(t)).ToArray();
        var valid = Enumerable.Range(0, n).Where(i => norms[i] > tol).ToList();
        var output = new float[len];
        if (valid.Count == 0) return output;
        var units = valid.Select(i => x.Tensors[i].Select(v => (float)(v / norms[i])).ToArray()).ToList();
        double alpha = 1.0 / valid.Count; // the valid inputs' equal weights, renormalised
        var u = new double[len];
        foreach (var unit in units) for (int e = 0; e < len; e++) u[e] += alpha * unit[e];
        double normU = Math.Sqrt(u.Sum(v => v * v));
        if (normU < tol) u = units[0].Select(v => (double)v).ToArray();
        else for (int e = 0; e < len; e++) u[e] /= normU;
        var step = new double[len];
        for (int iter = 0; iter < maxIter; iter++)
        {
            Array.Clear(step);
            foreach (var unit in units)
            {
                double dot = 0;
                for (int e = 0; e < len; e++) dot += u[e] * unit[e];
                dot = Math.Clamp(dot, -1, 1);
                double theta = Math.Acos(dot);
                if (theta < tol) continue;
                double scale = alpha * theta / Math.Sin(theta);
                for (int e = 0; e < len; e++) step[e] += scale * (unit[e] - dot * u[e]);
            }
            double normT = Math.Sqrt(step.Sum(v => v * v));
            if (normT < tol) break;
            double c = Math.Cos(normT), s = Math.Sin(normT);
            for (int e = 0; e < len; e++) u[e] = c * u[e] + s * (step[e] / normT);
            double un = Math.Sqrt(u.Sum(v => v * v));
            if (un > tol) for (int e = 0; e < len; e++) u[e] /= un;
        }
        double scaleAll = norms.Sum() / n; // every input's norm, zero ones included, with weight 1/n
        for (int e = 0; e < len; e++) output[e] = x.Compute.Round((float)(scaleAll * u[e]));
        return output;
    }
}

/// <summary>mergekit's nearswap: where base and model differ by less than t, take the model; elsewhere move toward it by t/|a − b|.</summary>
public sealed class NearSwapMerge : MergekitMethod
{
    public override string Name => "nearswap";
    public override bool NeedsBase => true;
    public override IReadOnlyList<ParameterDef> Parameters => [new("t", true, null)];

    public override float[] Merge(TensorInputs x)
    {
        var others = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).ToList();
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, "nearswap needs base_model");
        if (others.Count == 0) return x.Tensors[x.BaseIndex];
        if (others.Count != 1) throw new AttuneException(null, x.Name, "nearswap merges the base with exactly one other model");
        var (a, b) = (x.Tensors[x.BaseIndex], x.Tensors[others[0]]);
        float t = (float)x.Number("t");
        var output = new float[a.Length];
        for (int e = 0; e < a.Length; e++)
        {
            float w = Math.Clamp(t / Math.Max(Math.Abs(a[e] - b[e]), 1e-6f), 0f, 1f);
            output[e] = x.Compute.Round(w * b[e] + (1 - w) * a[e]);
        }
        return output;
    }
}

/// <summary>
/// mergekit's sce (Wan et al. 2024): task vectors; with <c>select_topk</c> &lt; 1, only the elements whose variance across
/// the models is among the top fraction (of the elements with any variance) are kept; signs are elected as TIES does (on the
/// unweighted values); each model is weighted by its mean squared task vector (normalised to sum 1), and the kept values'
/// weighted sum is divided by their weights.
/// </summary>
public sealed class SceMerge : MergekitMethod
{
    public override string Name => "sce";
    public override bool NeedsBase => true;
    public override IReadOnlyList<ParameterDef> Parameters => [new("int8_mask", false, false), new("select_topk", false, 1.0)];

    public override float[] Merge(TensorInputs x)
    {
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, "sce needs base_model");
        var b = x.Tensors[x.BaseIndex];
        var tvs = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).Select(k => Vec.Minus(x.Tensors[k], b)).ToList();
        if (tvs.Count == 0) return b;
        int n = tvs.Count, len = b.Length;
        double topk = x.Number("select_topk");
        if (topk < 1)
        {
            var variance = new float[len];
            for (int e = 0; e < len; e++)
            {
                double mean = 0, sq = 0;
                foreach (var tv in tvs) mean += tv[e];
                mean /= n;
                foreach (var tv in tvs) sq += (tv[e] - mean) * (tv[e] - mean);
                variance[e] = (float)(sq / n);
            }
            long nonzero = variance.LongCount(v => v != 0), k = (long)(nonzero * Math.Max(topk, 0));
            var keep = new bool[len];
            if (k > 0)
            {
                // The k largest variances (equal ones by index), by the same order statistics as the magnitude methods.
                var (threshold, below) = MagnitudeRank.At(variance, len - k);
                long equal = variance.LongCount(v => MagnitudeRank.Bits(v) == threshold), above = len - below - equal, taken = 0;
                for (int e = 0; e < len; e++)
                {
                    uint bits = MagnitudeRank.Bits(variance[e]);
                    keep[e] = bits > threshold || (bits == threshold && taken++ < k - above);
                }
            }
            foreach (var tv in tvs) for (int e = 0; e < len; e++) if (!keep[e]) tv[e] = 0;
        }
        var weights = tvs.Select(tv => tv.Sum(v => (double)v * v) / len).ToArray();
        double total = weights.Sum();
        weights = Math.Abs(total) < 1e-6 ? weights.Select(_ => 1.0 / n).ToArray() : weights.Select(w => w / total).ToArray();
        var output = new float[len];
        for (int e = 0; e < len; e++)
        {
            double vote = 0;
            foreach (var tv in tvs) vote += tv[e];
            int elected = vote >= 0 ? 1 : -1;
            double sum = 0, kept = 0;
            for (int k = 0; k < n; k++)
                if (Math.Sign(tvs[k][e]) == elected) { sum += tvs[k][e] * weights[k]; kept += weights[k]; }
            output[e] = x.Compute.Round((float)(b[e] + sum / Math.Max(kept, 1e-6)));
        }
        return output;
    }
}

/// <summary>
/// mergekit's arcee_fusion: the model's changes to the base are kept only where they matter — an element's importance is
/// |model − base| times its row's KL divergence between the softmax of the model's and the base's row; changes with an
/// importance at least median + 1.5·IQR (quantiles taken at ⌊q·(n − 1)⌋ of the sorted importances; tensors of more than
/// a million elements sampled down to a million, as mergekit does — here with the seeded generator) are added to the base.
/// </summary>
public sealed class ArceeFusionMerge : MergekitMethod
{
    public override string Name => "arcee_fusion";
    public override bool NeedsBase => true;

    public override float[] Merge(TensorInputs x)
    {
        if (x.Tensors.Count == 1) return x.Tensors[0];
        if (x.Tensors.Count != 2 || x.BaseIndex < 0) throw new AttuneException(null, x.Name, "arcee_fusion merges the base with exactly one model");
        var (b, m) = (x.Tensors[x.BaseIndex], x.Tensors[1 - x.BaseIndex]);
        int len = b.Length;
        var (rows, cols) = Vec.Rows(x.Shape, len);
        var importance = new float[len];
        for (int r = 0; r < rows; r++)
        {
            var (p, q) = (Softmax(m.AsSpan(r * cols, cols)), Softmax(b.AsSpan(r * cols, cols)));
            double kl = 0;
            for (int c = 0; c < cols; c++) kl += (p[c] + 1e-8) * Math.Log((p[c] + 1e-8) / (q[c] + 1e-8));
            for (int c = 0; c < cols; c++) importance[r * cols + c] = (float)(Math.Abs(m[r * cols + c] - b[r * cols + c]) * kl);
        }
        var sample = importance;
        if (len > 1_000_000)
        {
            // A random million, as mergekit's randperm does (its draws are torch's; these are the seeded generator's).
            var pick = (float[])importance.Clone();
            for (int i = 0; i < 1_000_000; i++) { int j = i + (int)(x.Random.NextDouble() * (len - i)); (pick[i], pick[j]) = (pick[j], pick[i]); }
            sample = pick[..1_000_000];
        }
        var sorted = (float[])sample.Clone();
        Array.Sort(sorted);
        float At(float quantile) => sorted[(long)(quantile * (float)(sorted.Length - 1))];
        float threshold = At(0.5f) + 1.5f * (At(0.75f) - At(0.25f));
        var output = new float[len];
        for (int e = 0; e < len; e++) output[e] = x.Compute.Round(importance[e] >= threshold ? b[e] + (m[e] - b[e]) : b[e]);
        return output;
    }

    static double[] Softmax(ReadOnlySpan<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (var v in row) max = Math.Max(max, v);
        var e = new double[row.Length];
        double sum = 0;
        for (int i = 0; i < row.Length; i++) sum += e[i] = Math.Exp(row[i] - max);
        for (int i = 0; i < row.Length; i++) e[i] /= sum;
        return e;
    }
}

/// <summary>
/// mergekit's ram (Reinforced Agent Merging) and ramplus_tl: per element, the task vectors larger than ε in magnitude
/// contribute — alone, in full (scaled for ramplus_tl by 1 + r·clamp(ρ, 0, α), ρ being the model's shared-to-unique count
/// ratio in the tensor), or shared by several, divided by their count.
/// </summary>
public sealed class RamMerge(bool plus) : MergekitMethod
{
    public override string Name => plus ? "ramplus_tl" : "ram";
    public override bool NeedsBase => true;
    public override IReadOnlyList<ParameterDef> Parameters => plus
        ? [new("r", false, 0.1), new("alpha", false, 0.2), new("epsilon", false, 1e-5)]
        : [new("epsilon", false, 1e-5)];

    public override float[] Merge(TensorInputs x)
    {
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, $"{Name} needs base_model");
        var b = x.Tensors[x.BaseIndex];
        var tvs = Enumerable.Range(0, x.Tensors.Count).Where(k => k != x.BaseIndex).Select(k => Vec.Minus(x.Tensors[k], b)).ToList();
        if (tvs.Count == 0) return b;
        int n = tvs.Count, len = b.Length;
        double eps = x.Number("epsilon");
        var counts = new int[len];
        for (int e = 0; e < len; e++) foreach (var tv in tvs) if (Math.Abs(tv[e]) > eps) counts[e]++;
        var scale = new float[n];
        for (int k = 0; k < n; k++)
        {
            if (!plus) { scale[k] = 1; continue; }
            long shared = 0, unique = 0;
            for (int e = 0; e < len; e++)
                if (Math.Abs(tvs[k][e]) > eps) { if (counts[e] > 1) shared++; else if (counts[e] == 1) unique++; }
            float rho = shared / (float)Math.Max(unique, eps);
            scale[k] = 1 + (float)x.Number("r") * Math.Clamp(rho, 0f, (float)x.Number("alpha"));
        }
        var output = new float[len];
        for (int e = 0; e < len; e++)
        {
            float sum = 0;
            for (int k = 0; k < n; k++)
            {
                float v = Math.Abs(tvs[k][e]) > eps ? tvs[k][e] : 0;
                sum += counts[e] == 1 ? v * scale[k] : counts[e] > 1 ? v / counts[e] : 0;
            }
            output[e] = x.Compute.Round(b[e] + sum);
        }
        return output;
    }
}
