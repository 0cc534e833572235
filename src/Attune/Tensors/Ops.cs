using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Attune.Tensors;

/// <summary>
/// Element-wise and row-wise layer functions (forward). Exponentials come from
/// System.Numerics.Tensors, which vectorizes them; the rest has explicit vector paths.
/// </summary>
public static unsafe class Ops
{
    /// <summary>RMSNorm: y = x / sqrt(mean(x²) + eps) · weight (Zhang &amp; Sennrich 2019).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* weight, float* y, int n, float eps)
    {
        float ss = SumOfSquares(x, n);
        float scale = 1f / MathF.Sqrt(ss / n + eps);
        int i = 0;
        if (Simd.Level == SimdLevel.V512)
            for (; i + 16 <= n; i += 16)
                (Vector512.Load(x + i) * scale * Vector512.Load(weight + i)).Store(y + i);
        else if (Simd.Level == SimdLevel.V256)
            for (; i + 8 <= n; i += 8)
                (Vector256.Load(x + i) * scale * Vector256.Load(weight + i)).Store(y + i);
        for (; i < n; i++) y[i] = x[i] * scale * weight[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    /// <summary>
    /// RMSNorm backward. With r = 1/sqrt(mean(x²) + eps) and y = x·r·w:
    /// dw += dy·x·r, and dx = r·(dy·w) − x·r³·mean(dy·w·x).
    /// </summary>
    public static void RmsNormBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> dy, float eps,
        Span<float> dx, Span<float> dWeight)
    {
        int n = x.Length;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double r = 1 / Math.Sqrt(ss / n + eps);
        double dot = 0; // Σ dy·w·x
        for (int i = 0; i < n; i++) dot += (double)dy[i] * weight[i] * x[i];
        double c = r * r * r * dot / n;
        for (int i = 0; i < n; i++)
        {
            dWeight[i] += (float)(dy[i] * x[i] * r);
            dx[i] = (float)(r * dy[i] * weight[i] - x[i] * c);
        }
    }

    static float SumOfSquares(float* x, int n)
    {
        int i = 0;
        float ss = 0;
        if (Simd.Level == SimdLevel.V512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16) { var v = Vector512.Load(x + i); acc = Vector512.FusedMultiplyAdd(v, v, acc); }
            ss = Vector512.Sum(acc);
        }
        else if (Simd.Level == SimdLevel.V256 && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8) { var v = Vector256.Load(x + i); acc = Vector256.FusedMultiplyAdd(v, v, acc); }
            ss = Vector256.Sum(acc);
        }
        for (; i < n; i++) ss = MathF.FusedMultiplyAdd(x[i], x[i], ss);
        return ss;
    }

    /// <summary>Softmax in place, shifted by the maximum for stability.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Divide(x, sum, x);
    }

    /// <summary>SwiGLU's gate: gate ← silu(gate) · up, with silu(g) = g·σ(g).</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up, Span<float> scratch)
    {
        TensorPrimitives.Sigmoid(gate, scratch);
        TensorPrimitives.Multiply(gate, scratch, gate);
        TensorPrimitives.Multiply(gate, up, gate);
    }

    /// <summary>
    /// SwiGLU gate backward: for h = silu(g)·u with silu(g) = g·σ(g),
    /// dg = dh·u·σ(g)·(1 + g·(1 − σ(g))) and du = dh·silu(g).
    /// </summary>
    public static void SiluMulBackward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dh, Span<float> dGate, Span<float> dUp)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            float s = 1f / (1f + MathF.Exp(-g));
            dUp[i] = dh[i] * g * s;
            dGate[i] = dh[i] * up[i] * s * (1f + g * (1f - s));
        }
    }

    /// <summary>y += x.</summary>
    public static void Add(float* y, float* x, int n) =>
        TensorPrimitives.Add(new ReadOnlySpan<float>(y, n), new ReadOnlySpan<float>(x, n), new Span<float>(y, n));

    /// <summary>y += a·x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Axpy(float* y, float a, float* x, int n)
    {
        int i = 0;
        if (Simd.Level == SimdLevel.V512)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= n; i += 16) Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
        }
        else if (Simd.Level == SimdLevel.V256)
        {
            var va = Vector256.Create(a);
            for (; i + 8 <= n; i += 8) Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }
}
