using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Attune.Tensors;

namespace Attune.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter 2019) over f32 master weights: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
/// m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ), w ← w − lr·(m̂/(√v̂ + ε) + λ·w) — the weight decay is decoupled from the
/// gradient, as in PyTorch's AdamW. One instance per parameter tensor. The update is element-wise in f32,
/// the same operations in the same order on every SIMD level, split over the pool in fixed chunks.
/// </summary>
public sealed class AdamW(int size, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.01)
{
    readonly float[] _m = new float[size];
    readonly float[] _v = new float[size];

    public int Step { get; private set; }
    public float[] FirstMoment => _m;
    public float[] SecondMoment => _v;

    const int Chunk = 1 << 14;

    /// <summary>Updates <paramref name="weights"/> in place from <paramref name="gradients"/> at learning rate <paramref name="lr"/>.</summary>
    public void Update(float[] weights, float[] gradients, double lr, WorkerPool? pool = null)
    {
        if (weights.Length != size || gradients.Length != size) throw new ArgumentException("sizes differ");
        Step++;
        double c1 = 1 - Math.Pow(beta1, Step), c2 = 1 - Math.Pow(beta2, Step);
        var k = new Coefficients((float)beta1, (float)(1 - beta1), (float)beta2, (float)(1 - beta2),
            (float)(lr * weightDecay), (float)(lr / c1), (float)(1 / c2), (float)epsilon);
        int chunks = (size + Chunk - 1) / Chunk;
        if (pool is null || chunks < 2) Range(weights, gradients, 0, size, k);
        else pool.For(chunks, (s, e) => Range(weights, gradients, s * Chunk, Math.Min(size, e * Chunk), k));
    }

    readonly record struct Coefficients(float B1, float OneMinusB1, float B2, float OneMinusB2, float LrDecay, float LrOverC1, float InvC2, float Eps);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    unsafe void Range(float[] weights, float[] gradients, int start, int end, Coefficients k)
    {
        fixed (float* w = weights, g = gradients, m = _m, v = _v)
        {
            int i = start;
            if (Simd.Level == SimdLevel.V512)
                for (; i + 16 <= end; i += 16)
                {
                    var gi = Vector512.Load(g + i);
                    var mi = Vector512.Create(k.B1) * Vector512.Load(m + i) + Vector512.Create(k.OneMinusB1) * gi;
                    var vi = Vector512.Create(k.B2) * Vector512.Load(v + i) + Vector512.Create(k.OneMinusB2) * (gi * gi);
                    mi.Store(m + i); vi.Store(v + i);
                    var wi = Vector512.Load(w + i);
                    wi = wi - Vector512.Create(k.LrDecay) * wi;
                    wi = wi - Vector512.Create(k.LrOverC1) * mi / (Vector512.Sqrt(vi * Vector512.Create(k.InvC2)) + Vector512.Create(k.Eps));
                    wi.Store(w + i);
                }
            else if (Simd.Level == SimdLevel.V256)
                for (; i + 8 <= end; i += 8)
                {
                    var gi = Vector256.Load(g + i);
                    var mi = Vector256.Create(k.B1) * Vector256.Load(m + i) + Vector256.Create(k.OneMinusB1) * gi;
                    var vi = Vector256.Create(k.B2) * Vector256.Load(v + i) + Vector256.Create(k.OneMinusB2) * (gi * gi);
                    mi.Store(m + i); vi.Store(v + i);
                    var wi = Vector256.Load(w + i);
                    wi = wi - Vector256.Create(k.LrDecay) * wi;
                    wi = wi - Vector256.Create(k.LrOverC1) * mi / (Vector256.Sqrt(vi * Vector256.Create(k.InvC2)) + Vector256.Create(k.Eps));
                    wi.Store(w + i);
                }
            for (; i < end; i++)
            {
                float gi = g[i];
                float mi = k.B1 * m[i] + k.OneMinusB1 * gi;
                float vi = k.B2 * v[i] + k.OneMinusB2 * (gi * gi);
                m[i] = mi; v[i] = vi;
                float wi = w[i];
                wi = wi - k.LrDecay * wi;
                wi = wi - k.LrOverC1 * mi / (MathF.Sqrt(vi * k.InvC2) + k.Eps);
                w[i] = wi;
            }
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
        double norm = GlobalNorm(gradients);
        if (norm > maxNorm && norm > 0)
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var g in gradients) System.Numerics.Tensors.TensorPrimitives.Multiply(g, scale, g);
        }
        return norm;
    }

    /// <summary>√(Σ g²) over every tensor (each tensor's sum in f32 blocks, the total in double).</summary>
    public static double GlobalNorm(IReadOnlyList<float[]> gradients)
    {
        double sq = 0;
        foreach (var g in gradients)
            for (int i = 0; i < g.Length; i += 1 << 16)
                sq += System.Numerics.Tensors.TensorPrimitives.SumOfSquares(g.AsSpan(i, Math.Min(1 << 16, g.Length - i)));
        return Math.Sqrt(sq);
    }
}
