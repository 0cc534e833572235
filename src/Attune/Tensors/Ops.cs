using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Attune.Tensors;

/// <summary>
/// Element-wise and row-wise layer functions (forward), with explicit vector paths (the exponential
/// included: see <see cref="Exp(ReadOnlySpan{float}, Span{float})"/>).
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

    /// <summary>σ(x) = 1 / (1 + e^−x), in the form that does not overflow for large |x|.</summary>
    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>Softmax in place, shifted by the maximum for stability.</summary>
    public static void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Divide(x, sum, x);
    }

    /// <summary>SwiGLU's gate: gate ← silu(gate) · up, with silu(g) = g·σ(g) = g / (1 + e^−g).</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up, Span<float> scratch)
    {
        TensorPrimitives.Negate(gate, scratch);
        Exp(scratch, scratch);
        TensorPrimitives.Add(scratch, 1f, scratch);
        TensorPrimitives.Divide(gate, scratch, gate);
        TensorPrimitives.Multiply(gate, up, gate);
    }

    /// <summary>√(2/π) and the cubic coefficient of GELU's tanh approximation.</summary>
    const float GeluC = 0.7978845608028654f, GeluA = 0.044715f;

    /// <summary>
    /// GeGLU's gate: gate ← gelu(gate) · up, with GELU's tanh form gelu(g) = ½·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))
    /// (PyTorch's gelu(approximate="tanh"), llama.cpp's ggml_gelu).
    /// </summary>
    public static void GeluTanhMul(Span<float> gate, ReadOnlySpan<float> up, Span<float> scratch)
    {
        int n = gate.Length;
        var s = scratch[..n];
        TensorPrimitives.Multiply(gate, gate, s);                   // g²
        TensorPrimitives.Multiply(s, GeluA, s);
        TensorPrimitives.Add(s, 1f, s);                             // 1 + a·g²
        TensorPrimitives.Multiply(s, gate, s);                      // g + a·g³
        TensorPrimitives.Multiply(s, GeluC, s);
        Tanh(s, s);
        TensorPrimitives.Add(s, 1f, s);
        TensorPrimitives.Multiply(s, gate, s);
        TensorPrimitives.Multiply(s, 0.5f, s);
        TensorPrimitives.Multiply(s, up, gate);
    }

    /// <summary>
    /// GeGLU backward: with t = tanh(u), u = √(2/π)·(g + a·g³): gelu'(g) = ½·(1 + t) + ½·g·(1 − t²)·√(2/π)·(1 + 3a·g²);
    /// dg = dh·up·gelu'(g), du = dh·gelu(g).
    /// </summary>
    public static void GeluTanhMulBackward(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, ReadOnlySpan<float> dh, Span<float> dGate, Span<float> dUp)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            double t = Math.Tanh(GeluC * (g + GeluA * g * g * g));
            double gelu = 0.5 * g * (1 + t);
            double derivative = 0.5 * (1 + t) + 0.5 * g * (1 - t * t) * GeluC * (1 + 3 * GeluA * g * g);
            dUp[i] = (float)(dh[i] * gelu);
            dGate[i] = (float)(dh[i] * up[i] * derivative);
        }
    }

    /// <summary>Soft-capping in place: x ← cap·tanh(x / cap) (Gemma 2's attention scores and logits).</summary>
    public static void SoftCap(Span<float> x, float cap)
    {
        TensorPrimitives.Multiply(x, 1f / cap, x);
        Tanh(x, x);
        TensorPrimitives.Multiply(x, cap, x);
    }

    // tanh's odd Taylor series to x¹³ below |x| = 0.3 (next term < 1e-10 relative there), and 1 − 2/(e^{2|x|} + 1)
    // with x's sign above it (cancellation costs at most 2 bits at 0.3).
    const float TanhSmall = 0.3f;
    const float T3 = -1f / 3, T5 = 2f / 15, T7 = -17f / 315, T9 = 62f / 2835, T11 = -1382f / 155925, T13 = 21844f / 6081075;

    /// <summary>
    /// y = tanh(x) element-wise to a few ulps at every magnitude, the same sequence of operations on every SIMD level.
    /// System.Numerics.Tensors' Tanh loses relative accuracy near zero (measured: 3e-4 at 1e-4, 5% at 1e-6), which
    /// soft-capping small attention scores (cap·tanh(s/cap)) turns straight into error.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tanh(ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("output shorter than input", nameof(y));
        int n = x.Length, i = 0;
        fixed (float* xp = x, yp = y)
        {
            if (Simd.Level == SimdLevel.V512)
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(xp + i);
                    var a = Vector512.Abs(v);
                    var x2 = v * v;
                    var p = Vector512.FusedMultiplyAdd(Vector512.Create(T13), x2, Vector512.Create(T11));
                    p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(T9));
                    p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(T7));
                    p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(T5));
                    p = Vector512.FusedMultiplyAdd(p, x2, Vector512.Create(T3));
                    var small = Vector512.FusedMultiplyAdd(v * x2, p, v);
                    var large = Vector512<float>.One - Vector512.Create(2f) / (Exp512(a + a) + Vector512<float>.One);
                    large = Vector512.CopySign(large, v);
                    Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(TanhSmall)), small, large).Store(yp + i);
                }
            else if (Simd.Level == SimdLevel.V256)
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(xp + i);
                    var a = Vector256.Abs(v);
                    var x2 = v * v;
                    var p = Vector256.FusedMultiplyAdd(Vector256.Create(T13), x2, Vector256.Create(T11));
                    p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(T9));
                    p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(T7));
                    p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(T5));
                    p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(T3));
                    var small = Vector256.FusedMultiplyAdd(v * x2, p, v);
                    var large = Vector256<float>.One - Vector256.Create(2f) / (Exp256(a + a) + Vector256<float>.One);
                    large = Vector256.CopySign(large, v);
                    Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(TanhSmall)), small, large).Store(yp + i);
                }
            for (; i < n; i++) yp[i] = Tanh(xp[i]);
        }
    }

    /// <summary>tanh for one float, the scalar twin of the vector paths.</summary>
    public static float Tanh(float v)
    {
        float a = MathF.Abs(v);
        if (a < TanhSmall)
        {
            float x2 = v * v;
            float p = MathF.FusedMultiplyAdd(T13, x2, T11);
            p = MathF.FusedMultiplyAdd(p, x2, T9);
            p = MathF.FusedMultiplyAdd(p, x2, T7);
            p = MathF.FusedMultiplyAdd(p, x2, T5);
            p = MathF.FusedMultiplyAdd(p, x2, T3);
            return MathF.FusedMultiplyAdd(v * x2, p, v);
        }
        return MathF.CopySign(1f - 2f / (Exp(a + a) + 1f), v);
    }

    // e^x = 2^n · e^r with n = round(x·log₂e) and r = x − n·ln 2 (ln 2 in two parts, so r is exact
    // to float precision), |r| ≤ ln 2 / 2; e^r from its Taylor series to r⁶ (relative error < 2e-7).
    const float Log2E = 1.44269504f, Ln2Hi = 0.693145751953125f, Ln2Lo = 1.42860677e-6f;
    const float ExpMax = 88f, ExpMin = -87.3365479f;
    const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720;

    /// <summary>
    /// y = e^x element-wise, the same sequence of fused operations on every SIMD level (so the levels agree
    /// bit for bit); e^x is 0 below e^−87.3 (the smallest normal float) and +∞ above e^88, NaN stays NaN.
    /// System.Numerics.Tensors' Exp measured ~3 ns per float here, which made exponentials the largest
    /// part of prompt attention; this is several times faster.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Exp(ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("output shorter than input", nameof(y));
        int n = x.Length, i = 0;
        fixed (float* xp = x, yp = y)
        {
            if (Simd.Level == SimdLevel.V512)
                for (; i + 16 <= n; i += 16) Exp512(Vector512.Load(xp + i)).Store(yp + i);
            else if (Simd.Level == SimdLevel.V256)
                for (; i + 8 <= n; i += 8) Exp256(Vector256.Load(xp + i)).Store(yp + i);
            for (; i < n; i++) yp[i] = Exp(xp[i]);
        }
    }

    /// <summary>e^x for one float, the scalar twin of the vector paths.</summary>
    public static float Exp(float x)
    {
        if (float.IsNaN(x)) return x;
        if (x > ExpMax) return float.PositiveInfinity;
        if (x < ExpMin) return 0;
        float k = MathF.Round(x * Log2E);
        float r = MathF.FusedMultiplyAdd(k, -Ln2Hi, x);
        r = MathF.FusedMultiplyAdd(k, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(C6, r, C5);
        p = MathF.FusedMultiplyAdd(p, r, C4);
        p = MathF.FusedMultiplyAdd(p, r, C3);
        p = MathF.FusedMultiplyAdd(p, r, C2);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        return p * BitConverter.Int32BitsToSingle(((int)k + 127) << 23);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Exp512(Vector512<float> x)
    {
        var k = Vector512.Round(x * Log2E);
        var r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(C6), r, Vector512.Create(C5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        // 2^k from the exponent bits; k is clamped first so the bits stay a normal float where it matters.
        var kc = Vector512.Min(Vector512.Max(k, Vector512.Create(-126f)), Vector512.Create(127f));
        var result = p * Vector512.ShiftLeft(Vector512.ConvertToInt32(kc) + Vector512.Create(127), 23).AsSingle();
        result = Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512.Create(ExpMax)), Vector512.Create(float.PositiveInfinity), result);
        result = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(ExpMin)), Vector512<float>.Zero, result);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Exp256(Vector256<float> x)
    {
        var k = Vector256.Round(x * Log2E);
        var r = Vector256.FusedMultiplyAdd(k, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(k, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(C6), r, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        var kc = Vector256.Min(Vector256.Max(k, Vector256.Create(-126f)), Vector256.Create(127f));
        var result = p * Vector256.ShiftLeft(Vector256.ConvertToInt32(kc) + Vector256.Create(127), 23).AsSingle();
        result = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(ExpMax)), Vector256.Create(float.PositiveInfinity), result);
        result = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(ExpMin)), Vector256<float>.Zero, result);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), result, x);
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
