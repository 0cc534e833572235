using System.Runtime.InteropServices;
using Attune.Tensors;

namespace Attune.Tests.Tensors;

/// <summary>Kernels against plain double sums, on every SIMD level; levels are restored after each test.</summary>
[Collection("Simd")]
public class KernelTests : IDisposable
{
    readonly SimdLevel _saved = Simd.Level;
    public void Dispose() => Simd.Level = _saved;

    public static TheoryData<SimdLevel> Levels() => [SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512];

    static float[] RandomFloats(Random rng, int n, float scale = 1) =>
        Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

    /// <summary>A weight row stored in <paramref name="type"/> plus the exact f32 values it holds.</summary>
    static (byte[] Bytes, float[] Values) Stored(WeightType type, float[] w)
    {
        switch (type)
        {
            case WeightType.F32:
                return (MemoryMarshal.AsBytes(w.AsSpan()).ToArray(), w);
            case WeightType.F16:
            {
                var h = w.Select(v => (Half)v).ToArray();
                return (MemoryMarshal.AsBytes(h.AsSpan()).ToArray(), h.Select(v => (float)v).ToArray());
            }
            case WeightType.BF16:
            {
                var b = w.Select(BFloat16.FromSingle).ToArray();
                return (MemoryMarshal.AsBytes(b.AsSpan()).ToArray(), b.Select(BFloat16.ToSingle).ToArray());
            }
            default:
            {
                var q = Q8_0.Quantize(w);
                var back = new float[w.Length];
                unsafe { fixed (byte* p = q) Dot.Dequantize(WeightType.Q8_0, p, back); }
                return (q, back);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public unsafe void Dot_products_of_every_type_match_a_double_sum(SimdLevel level)
    {
        Simd.Level = level;
        var rng = new Random(3);
        foreach (var type in Enum.GetValues<WeightType>())
            foreach (int n in new[] { 32, 64, 96, 576, 1024 + 32 })
            {
                var (bytes, values) = Stored(type, RandomFloats(rng, n));
                var x = RandomFloats(rng, n);
                double expected = 0, magnitude = 0;
                for (int i = 0; i < n; i++) { expected += (double)values[i] * x[i]; magnitude += Math.Abs((double)values[i] * x[i]); }
                float got;
                fixed (byte* w = bytes) fixed (float* xp = x) got = Dot.Row(type, w, xp, n);
                Assert.True(Math.Abs(got - expected) <= 1e-6 * magnitude + 1e-6, $"{type} n={n} level={level}: {got} vs {expected}");
            }
        foreach (int n in new[] { 1, 7, 17, 33, 100 })
        {
            var w = RandomFloats(rng, n);
            var x = RandomFloats(rng, n);
            double expected = 0;
            for (int i = 0; i < n; i++) expected += (double)w[i] * x[i];
            fixed (float* wp = w) fixed (float* xp = x)
                Assert.True(Math.Abs(expected - Dot.F32(wp, xp, n)) < 1e-5, $"n={n}");
        }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public unsafe void Q8_0_integer_dots_are_exact_for_every_byte_including_minus_128(SimdLevel level)
    {
        // Weight bytes over the whole signed range (−128 included, which llama.cpp's quantizer never
        // writes but a file may hold) against input bytes at the quantizer's limits ±127; block counts
        // that exercise the four-block, two-block and single-block steps.
        Simd.Level = level;
        var rng = new Random(9);
        foreach (int blocks in new[] { 1, 2, 3, 4, 5, 7, 18, 28 })
        {
            int n = blocks * WeightTypes.Q8BlockSize;
            var row = new byte[blocks * WeightTypes.Q8BlockBytes];
            var xq = new sbyte[n];
            var xd = new float[blocks];
            double expected = 0, magnitude = 0;
            for (int b = 0; b < blocks; b++)
            {
                var scale = (Half)(0.5 + rng.NextDouble());
                BitConverter.TryWriteBytes(row.AsSpan(b * WeightTypes.Q8BlockBytes), BitConverter.HalfToUInt16Bits(scale));
                xd[b] = (float)(0.25 + rng.NextDouble());
                long isum = 0;
                for (int k = 0; k < WeightTypes.Q8BlockSize; k++)
                {
                    sbyte w = k < 4 ? (sbyte)-128 : (sbyte)rng.Next(-128, 128);
                    sbyte x = k % 3 == 0 ? (sbyte)(rng.Next(2) == 0 ? -127 : 127) : (sbyte)rng.Next(-127, 128);
                    row[b * WeightTypes.Q8BlockBytes + 2 + k] = (byte)w;
                    xq[b * WeightTypes.Q8BlockSize + k] = x;
                    isum += w * x;
                }
                double blockScale = (double)(float)scale * xd[b];
                expected += blockScale * isum;
                magnitude += Math.Abs(blockScale) * 128 * 127 * WeightTypes.Q8BlockSize;
            }
            float got;
            fixed (byte* w = row) fixed (sbyte* x = xq) fixed (float* d = xd) got = Dot.Q8_0Q8(w, x, d, n);
            Assert.True(Math.Abs(got - expected) <= 1e-6 * magnitude, $"blocks={blocks} level={level}: {got} vs {expected}");
        }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public unsafe void Every_half_value_converts_exactly(SimdLevel level)
    {
        Simd.Level = level;
        var w = new ushort[32];
        var x = Enumerable.Repeat(1f, 32).ToArray();
        fixed (ushort* wp = w) fixed (float* xp = x)
            for (int h = 0; h < 65536; h++)
            {
                w[0] = (ushort)h;
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h);
                float got = Dot.F16(wp, xp, 32);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(got)
                    || (float.IsNaN(expected) && float.IsNaN(got)) || (expected == 0 && got == 0), $"half 0x{h:X4}: {got} vs {expected}");
            }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public unsafe void Matrix_products_match_row_by_row_dots_for_every_type_and_batch(SimdLevel level)
    {
        Simd.Level = level;
        var rng = new Random(5);
        using var pool = new WorkerPool(2);
        var mm = new MatMul();
        foreach (var type in Enum.GetValues<WeightType>())
            // Prefill packs weights sixteen rows at a time and in strips of 64: shapes below, at and past both,
            // with a last k block of 32 and (not Q8_0, whose blocks are 32 wide) of 8.
            foreach (var (rows, cols) in new[] { (7, 64), (12, 96), (33, 160), (130, 224), (70, type == WeightType.Q8_0 ? 160 : 200) })
                foreach (int t in new[] { 1, 3, 4, 9, MatMul.GemmMinRows, 70 }) // decode, batched decode, prefill
                {
                    var (bytes, values) = Stored(type, RandomFloats(rng, rows * cols));
                    var x = RandomFloats(rng, t * cols);
                    var bias = RandomFloats(rng, rows);
                    var y = new float[t * rows];
                    fixed (byte* w = bytes) fixed (float* xp = x, yp = y, bp = bias)
                        mm.Run(pool, new WeightMatrix(w, type, rows, cols), xp, t, yp, bp);
                    // Q8_0 layers see their input rounded to Q8_0 blocks.
                    var xs = x;
                    if (type == WeightType.Q8_0)
                    {
                        var q = new sbyte[x.Length];
                        var d = new float[x.Length / 32];
                        Dot.QuantizeInput(x, q, d);
                        xs = q.Select((v, i) => v * d[i / 32]).ToArray();
                    }
                    for (int i = 0; i < t; i++)
                        for (int r = 0; r < rows; r++)
                        {
                            double e = bias[r];
                            for (int k = 0; k < cols; k++) e += (double)values[r * cols + k] * xs[i * cols + k];
                            Assert.True(Math.Abs(y[i * rows + r] - e) < 1e-4, $"{type} {rows}x{cols} t={t} ({i},{r}): {y[i * rows + r]} vs {e}");
                        }
                }
    }

    [Fact]
    public unsafe void Prefill_products_are_bit_identical_on_every_simd_level_and_thread_count()
    {
        var rng = new Random(8);
        int t = 70;
        foreach (var type in Enum.GetValues<WeightType>())
        {
            int rows = 150, cols = type == WeightType.Q8_0 ? 224 : 200;
            var (bytes, _) = Stored(type, RandomFloats(rng, rows * cols));
            var x = RandomFloats(rng, t * cols);
            float[]? first = null;
            foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512 })
                foreach (int threads in new[] { 1, 2 })
                {
                    Simd.Level = level;
                    using var pool = new WorkerPool(threads);
                    var y = new float[t * rows];
                    fixed (byte* w = bytes) fixed (float* xp = x, yp = y)
                        new MatMul().Run(pool, new WeightMatrix(w, type, rows, cols), xp, t, yp);
                    first ??= y;
                    Assert.True(first.AsSpan().SequenceEqual(y), $"{type} at {level} on {threads} threads differs from the scalar path on one");
                }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(MatMul.GemmMinRows + 3)]
    public unsafe void Layers_run_together_give_what_each_gives_alone(int t)
    {
        // q, k, v shapes (k and v narrower, one of them Q8_0) in one job, against one job each.
        var rng = new Random(11);
        using var pool = new WorkerPool(2);
        int cols = 64;
        var parts = new[] { (WeightType.BF16, 20), (WeightType.Q8_0, 9), (WeightType.F32, 9) }
            .Select(p => (p.Item1, p.Item2, Stored(p.Item1, RandomFloats(rng, p.Item2 * cols)).Bytes, RandomFloats(rng, p.Item2))).ToArray();
        var x = RandomFloats(rng, t * cols);
        var together = parts.Select(p => new float[t * p.Item2]).ToArray();
        var alone = parts.Select(p => new float[t * p.Item2]).ToArray();
        fixed (byte* w0 = parts[0].Bytes, w1 = parts[1].Bytes, w2 = parts[2].Bytes)
        fixed (float* b0 = parts[0].Item4, b1 = parts[1].Item4, b2 = parts[2].Item4, xp = x)
        fixed (float* y0 = together[0], y1 = together[1], y2 = together[2], z0 = alone[0], z1 = alone[1], z2 = alone[2])
        {
            var m0 = new WeightMatrix(w0, parts[0].Item1, parts[0].Item2, cols);
            var m1 = new WeightMatrix(w1, parts[1].Item1, parts[1].Item2, cols);
            var m2 = new WeightMatrix(w2, parts[2].Item1, parts[2].Item2, cols);
            var mm = new MatMul();
            mm.Run(pool, xp, t, new Linear(m0, y0, b0), new Linear(m1, y1, b1), new Linear(m2, y2, b2));
            mm.Run(pool, m0, xp, t, z0, b0);
            mm.Run(pool, m1, xp, t, z1, b1);
            mm.Run(pool, m2, xp, t, z2, b2);
        }
        for (int i = 0; i < 3; i++) Assert.Equal(alone[i], together[i]);
    }

    [Fact]
    public void The_exponential_is_accurate_and_the_same_on_every_simd_level()
    {
        var rng = new Random(12);
        var x = Enumerable.Range(0, 4000).Select(_ => (float)(rng.NextDouble() * 180 - 90)).Concat(
            [0f, -0f, 1f, -1f, 88f, 88.001f, 100f, -87.33f, -87.34f, -100f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e-8f, -1e-8f]).ToArray();
        float[] Run(SimdLevel level) { Simd.Level = level; var y = new float[x.Length]; Ops.Exp(x, y); return y; }
        var scalar = Run(SimdLevel.Scalar);
        Assert.Equal(scalar, Run(SimdLevel.V256));
        Assert.Equal(scalar, Run(SimdLevel.V512));
        for (int i = 0; i < x.Length; i++)
        {
            double e = Math.Exp(x[i]);
            if (float.IsNaN(x[i])) Assert.True(float.IsNaN(scalar[i]));
            else if (x[i] > 88) Assert.Equal(float.PositiveInfinity, scalar[i]);
            else if (x[i] < -87.3365) Assert.Equal(0f, scalar[i]);
            else Assert.True(Math.Abs(scalar[i] - e) <= 3e-7 * e, $"e^{x[i]}: {scalar[i]} vs {e}");
        }
    }

    [Fact]
    public void Tanh_is_accurate_near_zero_and_far_from_it_and_the_same_on_every_simd_level()
    {
        var rng = new Random(13);
        // Magnitudes from 1e-9 to 1e2 on a log scale, both signs, plus the threshold between the two formulas.
        var x = Enumerable.Range(0, 4000).Select(_ => (float)((rng.Next(2) * 2 - 1) * Math.Pow(10, rng.NextDouble() * 11 - 9))).Concat(
            [0f, -0f, 0.3f, -0.3f, 0.29999998f, 0.30000001f, 9f, 44f, 45f, 1000f, float.PositiveInfinity, float.NegativeInfinity, float.NaN]).ToArray();
        float[] Run(SimdLevel level) { Simd.Level = level; var y = new float[x.Length]; Ops.Tanh(x, y); return y; }
        var scalar = Run(SimdLevel.Scalar);
        Assert.Equal(scalar, Run(SimdLevel.V256));
        Assert.Equal(scalar, Run(SimdLevel.V512));
        for (int i = 0; i < x.Length; i++)
        {
            double t = Math.Tanh(x[i]);
            if (float.IsNaN(x[i])) Assert.True(float.IsNaN(scalar[i]));
            else Assert.True(Math.Abs(scalar[i] - t) <= 4.8e-7 * Math.Abs(t) + 1e-45, $"tanh {x[i]:R}: {scalar[i]:R} vs {t:R}");
        }
    }

    [Fact]
    public unsafe void Results_do_not_depend_on_the_thread_count()
    {
        var rng = new Random(9);
        var w = RandomFloats(rng, 50 * 64);
        var x = RandomFloats(rng, 6 * 64);
        float[] Run(int threads)
        {
            using var pool = new WorkerPool(threads);
            var y = new float[6 * 50];
            fixed (float* wp = w, xp = x, yp = y)
                new MatMul().Run(pool, new WeightMatrix((byte*)wp, WeightType.F32, 50, 64), xp, 6, yp);
            return y;
        }
        Assert.Equal(Run(1), Run(2));
        Assert.Equal(Run(1), Run(3));
    }

    [Fact]
    public void Vector_and_scalar_input_quantization_agree_bit_for_bit_including_ties()
    {
        var rng = new Random(8);
        // Values at exact half steps of their block's scale test rounding of ties away from zero.
        var x = RandomFloats(rng, 320, 4);
        for (int b = 0; b < 10; b++) { x[b * 32] = 127f; for (int i = 1; i < 8; i++) x[b * 32 + i] = (i - 4) + 0.5f; }
        sbyte[] Q(SimdLevel level) { Simd.Level = level; var q = new sbyte[320]; Dot.QuantizeInput(x, q, new float[10]); return q; }
        float[] R(SimdLevel level) { Simd.Level = level; var r = new float[320]; Dot.RoundToQ8_0(x, r); return r; }
        Assert.Equal(Q(SimdLevel.Scalar), Q(SimdLevel.V512));
        Assert.Equal(R(SimdLevel.Scalar), R(SimdLevel.V512));
        var q0 = Q(SimdLevel.V512);
        Assert.Equal([-3, -2, -1, 1, 2, 3, 4], q0[1..8].Select(v => (int)v)); // -2.5 → -3, 0.5 → 1, 3.5 → 4
    }

    [Fact]
    public void Input_quantization_rounds_each_block_to_its_scale()
    {
        var rng = new Random(4);
        var x = RandomFloats(rng, 64, 2);
        var q = new sbyte[64];
        var d = new float[2];
        Dot.QuantizeInput(x, q, d);
        for (int b = 0; b < 2; b++)
        {
            float amax = x.Skip(32 * b).Take(32).Max(MathF.Abs);
            Assert.Equal((float)(Half)(amax / 127f), d[b]); // stored as f16, as llama.cpp does
            Assert.Contains(q.Skip(32 * b).Take(32), v => Math.Abs((int)v) == 127);
            for (int i = 32 * b; i < 32 * b + 32; i++) Assert.True(MathF.Abs(x[i] - q[i] * d[b]) <= d[b] * (0.5f + 127f / 2048f) + 1e-6f);
        }
    }

    [Fact]
    public void Q8_0_round_trip_error_is_within_half_a_step()
    {
        var rng = new Random(1);
        var x = RandomFloats(rng, 320, 3);
        var q = Q8_0.Quantize(x);
        var back = new float[x.Length];
        unsafe { fixed (byte* p = q) Dot.Dequantize(WeightType.Q8_0, p, back); }
        for (int b = 0; b < 10; b++)
        {
            float amax = x.Skip(b * 32).Take(32).Max(MathF.Abs);
            float step = amax / 127;
            // Half a step of rounding, plus the scale's own rounding to f16 (2^-11 relative) over up to 127 steps.
            for (int i = b * 32; i < b * 32 + 32; i++) Assert.True(MathF.Abs(x[i] - back[i]) <= step * (0.5f + 127f / 2048f) + 1e-7f);
        }
        Assert.Throws<ArgumentException>(() => Q8_0.Quantize(new float[31]));
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public unsafe void RmsNorm_and_softmax_match_double_formulas(SimdLevel level)
    {
        Simd.Level = level;
        var rng = new Random(2);
        var x = RandomFloats(rng, 100);
        var w = RandomFloats(rng, 100);
        var y = new float[100];
        fixed (float* xp = x, wp = w, yp = y) Ops.RmsNorm(xp, wp, yp, 100, 1e-5f);
        double rms = Math.Sqrt(x.Sum(v => (double)v * v) / 100 + 1e-5);
        for (int i = 0; i < 100; i++) Assert.True(Math.Abs(x[i] / rms * w[i] - y[i]) < 1e-5, $"{i}");
        var s = RandomFloats(rng, 37, 20);
        var expected = s.Select(v => Math.Exp(v - s.Max())).ToArray();
        double sum = expected.Sum();
        Ops.Softmax(s);
        for (int i = 0; i < 37; i++) Assert.True(Math.Abs(expected[i] / sum - s[i]) < 1e-6, $"{i}");
    }

    /// <summary>C = A·B (+ C) for every layout the trainer uses, against double sums; bit-identical across SIMD levels and thread counts.</summary>
    [Fact]
    public unsafe void Gemm_matches_double_sums_for_every_stride_layout_and_is_bit_identical_across_levels_and_threads()
    {
        var rng = new Random(11);
        foreach (var (m, n, k) in new[] { (1, 1, 1), (5, 70, 3), (9, 130, 300), (67, 33, 513), (4, 64, 256) })
            foreach (bool aT in new[] { false, true })
                foreach (bool bT in new[] { false, true })
                    foreach (bool accumulate in new[] { false, true })
                    {
                        var a = RandomFloats(rng, m * k);
                        var b = RandomFloats(rng, k * n);
                        var c0 = RandomFloats(rng, m * n);
                        double[] expected = new double[m * n];
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++)
                            {
                                double s = accumulate ? c0[i * n + j] : 0;
                                for (int p = 0; p < k; p++)
                                    s += (double)(aT ? a[p * m + i] : a[i * k + p]) * (bT ? b[j * k + p] : b[p * n + j]);
                                expected[i * n + j] = s;
                            }
                        float[]? first = null;
                        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512 })
                            foreach (int threads in new[] { 1, 2 })
                            {
                                Simd.Level = level;
                                using var pool = new WorkerPool(threads);
                                var c = (float[])c0.Clone();
                                fixed (float* ap = a, bp = b, cp = c)
                                    Gemm.Multiply(threads == 1 ? null : pool, m, n, k,
                                        aT ? StridedMatrix.Transposed(ap, m) : StridedMatrix.RowMajor(ap, k),
                                        bT ? StridedMatrix.Transposed(bp, k) : StridedMatrix.RowMajor(bp, n), cp, n, accumulate);
                                for (int i = 0; i < m * n; i++)
                                    Assert.True(Math.Abs(c[i] - expected[i]) <= 1e-5 * (k + 1), $"{m}x{n}x{k} aT={aT} bT={bT} acc={accumulate} {level}: [{i}] {c[i]} vs {expected[i]}");
                                if (first is null) first = c;
                                else Assert.True(first.AsSpan().SequenceEqual(c), $"{m}x{n}x{k} aT={aT} bT={bT}: {level} with {threads} threads differs in some bit");
                            }
                    }
    }
}
