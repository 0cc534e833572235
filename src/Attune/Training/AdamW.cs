namespace Attune.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter 2019) over f32 master weights: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
/// m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ), w ← w − lr·(m̂/(√v̂ + ε) + λ·w) — the weight decay is decoupled from the
/// gradient, as in PyTorch's AdamW. One instance per parameter tensor.
/// </summary>
public sealed class AdamW(int size, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.01)
{
    readonly float[] _m = new float[size];
    readonly float[] _v = new float[size];

    public int Step { get; private set; }
    public float[] FirstMoment => _m;
    public float[] SecondMoment => _v;

    /// <summary>Updates <paramref name="weights"/> in place from <paramref name="gradients"/> at learning rate <paramref name="lr"/>.</summary>
    public void Update(Span<float> weights, ReadOnlySpan<float> gradients, double lr)
    {
        if (weights.Length != size || gradients.Length != size) throw new ArgumentException("sizes differ");
        Step++;
        double c1 = 1 - Math.Pow(beta1, Step), c2 = 1 - Math.Pow(beta2, Step);
        for (int i = 0; i < size; i++)
        {
            double g = gradients[i];
            double m = beta1 * _m[i] + (1 - beta1) * g;
            double v = beta2 * _v[i] + (1 - beta2) * g * g;
            _m[i] = (float)m;
            _v[i] = (float)v;
            double w = weights[i];
            w -= lr * weightDecay * w;
            w -= lr * (m / c1) / (Math.Sqrt(v / c2) + epsilon);
            weights[i] = (float)w;
        }
    }

    /// <summary>Restores the moments and step count (for --resume).</summary>
    public void Restore(ReadOnlySpan<float> m, ReadOnlySpan<float> v, int step)
    {
        m.CopyTo(_m);
        v.CopyTo(_v);
        Step = step;
    }
}

/// <summary>Clipping by the global L2 norm over all gradients (PyTorch's clip_grad_norm_).</summary>
public static class GradientClipping
{
    /// <summary>Scales every gradient so the global norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipByGlobalNorm(IReadOnlyList<float[]> gradients, double maxNorm)
    {
        double sq = 0;
        foreach (var g in gradients)
            foreach (var x in g) sq += (double)x * x;
        double norm = Math.Sqrt(sq);
        if (norm > maxNorm && norm > 0)
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var g in gradients) System.Numerics.Tensors.TensorPrimitives.Multiply(g, scale, g);
        }
        return norm;
    }
}
