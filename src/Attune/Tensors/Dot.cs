using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Attune.Tensors;

/// <summary>
/// Dot products of one stored weight row with an f32 vector, per storage type, accumulated in
/// f32 — the inner loop of every matrix-vector product. Each has a <see cref="Vector512"/>,
/// a <see cref="Vector256"/> and a scalar path (see <see cref="Simd.Level"/>).
/// </summary>
public static unsafe class Dot
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Row(WeightType type, byte* row, float* x, int n) => type switch
    {
        WeightType.F32 => F32((float*)row, x, n),
        WeightType.F16 => F16((ushort*)row, x, n),
        WeightType.BF16 => BF16((ushort*)row, x, n),
        WeightType.Q8_0 => Q8_0(row, x, n),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F32(float* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (Simd.Level == SimdLevel.V512 && n >= 64)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 64 <= n; i += 64)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 32), Vector512.Load(x + i + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 48), Vector512.Load(x + i + 48), a3);
            }
            for (; i + 16 <= n; i += 16)
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
            sum = Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        else if (Simd.Level >= SimdLevel.V256 && n >= 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= n; i += 32)
            {
                a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 8), Vector256.Load(x + i + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 16), Vector256.Load(x + i + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 24), Vector256.Load(x + i + 24), a3);
            }
            for (; i + 8 <= n; i += 8)
                a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i), Vector256.Load(x + i), a0);
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(w[i], x[i], sum);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float BF16(ushort* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (Simd.Level == SimdLevel.V512 && n >= 32)
        {
            Vector512<float> a0 = default, a1 = default;
            for (; i + 32 <= n; i += 32)
            {
                var bits = Vector512.Load(w + i);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenLower(bits), 16).AsSingle(), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenUpper(bits), 16).AsSingle(), Vector512.Load(x + i + 16), a1);
            }
            sum = Vector512.Sum(a0 + a1);
        }
        else if (Simd.Level >= SimdLevel.V256 && n >= 16)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var bits = Vector256.Load(w + i);
                a0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Vector256.WidenLower(bits), 16).AsSingle(), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Vector256.WidenUpper(bits), 16).AsSingle(), Vector256.Load(x + i + 8), a1);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(BFloat16.ToSingle(w[i]), x[i], sum);
        return sum;
    }

    /// <summary>
    /// IEEE half → single on integer lanes, exactly: normal halves by re-biasing the exponent,
    /// subnormals as mantissa × 2^-24 (an integer conversion, so no denormal float is ever formed —
    /// those cost microcode assists), exponent 31 as inf/NaN; then the sign.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        var exponent = h & Vector512.Create(0x7C00u);
        var shifted = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        var normal = shifted + Vector512.Create(112u << 23);
        var infNan = shifted | Vector512.Create(0x7F800000u);
        var subnormal = (Vector512.ConvertToSingle((h & Vector512.Create(0x3FFu)).AsInt32()) * Vector512.Create(5.9604645e-8f)).AsUInt32();
        var magnitude = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512<uint>.Zero), subnormal,
            Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512.Create(0x7C00u)), infNan, normal));
        return (magnitude | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        var exponent = h & Vector256.Create(0x7C00u);
        var shifted = Vector256.ShiftLeft(h & Vector256.Create(0x7FFFu), 13);
        var normal = shifted + Vector256.Create(112u << 23);
        var infNan = shifted | Vector256.Create(0x7F800000u);
        var subnormal = (Vector256.ConvertToSingle((h & Vector256.Create(0x3FFu)).AsInt32()) * Vector256.Create(5.9604645e-8f)).AsUInt32();
        var magnitude = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256<uint>.Zero), subnormal,
            Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256.Create(0x7C00u)), infNan, normal));
        return (magnitude | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F16(ushort* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (Simd.Level == SimdLevel.V512 && n >= 32)
        {
            Vector512<float> a0 = default, a1 = default;
            for (; i + 32 <= n; i += 32)
            {
                var bits = Vector512.Load(w + i);
                a0 = Vector512.FusedMultiplyAdd(HalfToSingle(Vector512.WidenLower(bits)), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(HalfToSingle(Vector512.WidenUpper(bits)), Vector512.Load(x + i + 16), a1);
            }
            sum = Vector512.Sum(a0 + a1);
        }
        else if (Simd.Level >= SimdLevel.V256 && n >= 16)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var bits = Vector256.Load(w + i);
                a0 = Vector256.FusedMultiplyAdd(HalfToSingle(Vector256.WidenLower(bits)), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(HalfToSingle(Vector256.WidenUpper(bits)), Vector256.Load(x + i + 8), a1);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd((float)BitConverter.UInt16BitsToHalf(w[i]), x[i], sum);
        return sum;
    }

    /// <summary>Q8_0: per block, scale × Σ byte·x, with the bytes widened to f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8_0(byte* row, float* x, int n)
    {
        int blocks = n / WeightTypes.Q8BlockSize;
        float sum = 0;
        if (Simd.Level == SimdLevel.V512 && Avx512F.IsSupported)
        {
            var acc = Vector512<float>.Zero;
            for (int b = 0; b < blocks; b++)
            {
                byte* blk = row + b * WeightTypes.Q8BlockBytes;
                float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)blk);
                sbyte* q = (sbyte*)(blk + 2);
                float* xb = x + b * WeightTypes.Q8BlockSize;
                var lo = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q)));
                var hi = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16)));
                var s = Vector512.FusedMultiplyAdd(hi, Vector512.Load(xb + 16), lo * Vector512.Load(xb));
                acc = Vector512.FusedMultiplyAdd(s, Vector512.Create(d), acc);
            }
            return Vector512.Sum(acc);
        }
        if (Simd.Level >= SimdLevel.V256 && Avx2.IsSupported)
        {
            var acc = Vector256<float>.Zero;
            for (int b = 0; b < blocks; b++)
            {
                byte* blk = row + b * WeightTypes.Q8BlockBytes;
                float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)blk);
                sbyte* q = (sbyte*)(blk + 2);
                float* xb = x + b * WeightTypes.Q8BlockSize;
                var s = Vector256<float>.Zero;
                for (int k = 0; k < 32; k += 8)
                    s = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + k)), Vector256.Load(xb + k), s);
                acc = Vector256.FusedMultiplyAdd(s, Vector256.Create(d), acc);
            }
            return Vector256.Sum(acc);
        }
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * WeightTypes.Q8BlockBytes;
            float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)blk);
            sbyte* q = (sbyte*)(blk + 2);
            float* xb = x + b * WeightTypes.Q8BlockSize;
            float s = 0;
            for (int k = 0; k < 32; k++) s = MathF.FusedMultiplyAdd(q[k], xb[k], s);
            sum = MathF.FusedMultiplyAdd(s, d, sum);
        }
        return sum;
    }

    /// <summary>f16 bit pattern → f32, for Q8_0 block scales (256 KiB, built once).</summary>
    internal static readonly float[] HalfTable = BuildHalfTable();

    static float[] BuildHalfTable()
    {
        var t = new float[65536];
        for (int i = 0; i < t.Length; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }

    /// <summary>
    /// Q8_0 weights against an input already quantized to Q8_0 blocks (<paramref name="xq"/> bytes,
    /// <paramref name="xd"/> scales): per block an exact integer dot product of the signed bytes,
    /// scaled by both block scales. This is how llama.cpp computes Q8_0 products; the input's
    /// quantization is its only rounding. The vector paths multiply |w| (unsigned) by x carrying w's
    /// sign with vpmaddubsw: |w| ≤ 128 and |x| ≤ 127 (the input quantizer's range), so a pair sums to at
    /// most 32512 and the 16-bit step cannot saturate, even for a weight byte of −128.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8_0Q8(byte* row, sbyte* xq, float* xd, int n)
    {
        int blocks = n / WeightTypes.Q8BlockSize, b = 0;
        float sum = 0;
        fixed (float* table = HalfTable)
        {
            if (Simd.Level == SimdLevel.V512 && Avx512BW.IsSupported)
            {
                // Two blocks per step: lanes 0–7 hold block b's four-byte sums, lanes 8–15 block b+1's.
                var acc0 = Vector512<float>.Zero;
                var acc1 = Vector512<float>.Zero;
                var ones = Vector512.Create((short)1);
                for (; b + 4 <= blocks; b += 4)
                {
                    byte* blk = row + b * WeightTypes.Q8BlockBytes;
                    acc0 = Vector512.FusedMultiplyAdd(BlockPairSums(blk, xq + b * WeightTypes.Q8BlockSize, ones),
                        PairScales(table, blk, xd + b), acc0);
                    blk += 2 * WeightTypes.Q8BlockBytes;
                    acc1 = Vector512.FusedMultiplyAdd(BlockPairSums(blk, xq + (b + 2) * WeightTypes.Q8BlockSize, ones),
                        PairScales(table, blk, xd + b + 2), acc1);
                }
                if (b + 2 <= blocks)
                {
                    byte* blk = row + b * WeightTypes.Q8BlockBytes;
                    acc0 = Vector512.FusedMultiplyAdd(BlockPairSums(blk, xq + b * WeightTypes.Q8BlockSize, ones),
                        PairScales(table, blk, xd + b), acc0);
                    b += 2;
                }
                sum = Vector512.Sum(acc0 + acc1);
            }
            if (Simd.Level >= SimdLevel.V256 && Avx2.IsSupported)
            {
                var acc = Vector256<float>.Zero;
                var ones = Vector256.Create((short)1);
                for (; b < blocks; b++)
                {
                    byte* blk = row + b * WeightTypes.Q8BlockBytes;
                    var w = Vector256.Load((sbyte*)(blk + 2));
                    var signedX = Avx2.Sign(Vector256.Load(xq + b * WeightTypes.Q8BlockSize), w);
                    var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), signedX);
                    var sums = Avx2.MultiplyAddAdjacent(pairs, ones);
                    acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(sums), Vector256.Create(table[*(ushort*)blk] * xd[b]), acc);
                }
                return sum + Vector256.Sum(acc);
            }
            for (; b < blocks; b++)
            {
                byte* blk = row + b * WeightTypes.Q8BlockBytes;
                sbyte* q = (sbyte*)(blk + 2);
                sbyte* xb = xq + b * WeightTypes.Q8BlockSize;
                int isum = 0;
                for (int k = 0; k < WeightTypes.Q8BlockSize; k++) isum += q[k] * xb[k];
                sum = MathF.FusedMultiplyAdd(isum, table[*(ushort*)blk] * xd[b], sum);
            }
            return sum;
        }
    }

    /// <summary>Exact integer sums of two consecutive Q8_0 blocks against 64 input bytes, four bytes per lane, as f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> BlockPairSums(byte* blk, sbyte* x, Vector512<short> ones)
    {
        var w = Avx512F.InsertVector256(Vector256.Load((sbyte*)(blk + 2)).ToVector512Unsafe(), Vector256.Load((sbyte*)(blk + 2 + WeightTypes.Q8BlockBytes)), 1);
        var xv = Vector512.Load(x);
        var signedX = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -xv, xv);
        var pairs = Avx512BW.MultiplyAddAdjacent(Vector512.Abs(w).AsByte(), signedX);
        return Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(pairs, ones));
    }

    /// <summary>Block b's scale product (weight × input) in lanes 0–7 and block b+1's in lanes 8–15.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> PairScales(float* table, byte* blk, float* xd) =>
        Avx512F.InsertVector256(Vector256.Create(table[*(ushort*)blk] * xd[0]).ToVector512Unsafe(),
            Vector256.Create(table[*(ushort*)(blk + WeightTypes.Q8BlockBytes)] * xd[1]), 1);

    /// <summary>Quantizes an f32 vector to Q8_0 blocks as separate bytes and scales (the input side of <see cref="Q8_0Q8"/>).</summary>
    public static void QuantizeInput(ReadOnlySpan<float> x, Span<sbyte> q, Span<float> d)
    {
        fixed (float* xp = x) fixed (sbyte* qp = q) fixed (float* dp = d)
            Quantize(xp, x.Length, qp, dp, null);
    }

    /// <summary>Rounds an f32 vector to the values its Q8_0 blocks hold (q · d), in place of the bytes.</summary>
    public static void RoundToQ8_0(ReadOnlySpan<float> x, Span<float> rounded)
    {
        fixed (float* xp = x) fixed (float* rp = rounded)
            Quantize(xp, x.Length, null, null, rp);
    }

    /// <summary>
    /// Per block of 32: scale = max|x| / 127 (bytes are computed with this f32 scale, which is then
    /// stored as f16, as llama.cpp does) and q = round(x / scale), halves away from zero — exactly
    /// C's roundf, built from truncation plus a correction when the (exact) fraction is ≥ 0.5.
    /// Writes bytes and scales, or the rounded values q · scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Quantize(float* x, int n, sbyte* q, float* d, float* rounded)
    {
        for (int b = 0; b < n / WeightTypes.Q8BlockSize; b++)
        {
            float* xb = x + b * WeightTypes.Q8BlockSize;
            float amax = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(new ReadOnlySpan<float>(xb, WeightTypes.Q8BlockSize));
            float scale = amax / 127f;
            float inv = scale != 0 ? 1f / scale : 0f;
            float stored = (float)(Half)scale;
            if (d != null) d[b] = stored;
            if (Simd.Level == SimdLevel.V512 && Avx512F.IsSupported)
            {
                for (int h = 0; h < WeightTypes.Q8BlockSize; h += 16)
                {
                    var v = Vector512.Load(xb + h) * inv;
                    var t = Vector512.ConvertToInt32(v); // truncates toward zero
                    var frac = v - Vector512.ConvertToSingle(t);
                    var away = Vector512.GreaterThanOrEqual(Vector512.Abs(frac), Vector512.Create(0.5f)).AsInt32();
                    var sign = Vector512.ConditionalSelect(Vector512.LessThan(v, Vector512<float>.Zero).AsInt32(), Vector512.Create(-1), Vector512.Create(1));
                    var r = t + (away & sign);
                    if (q != null) Avx512F.ConvertToVector128SByte(r).Store(q + b * WeightTypes.Q8BlockSize + h);
                    if (rounded != null) (Vector512.ConvertToSingle(r) * stored).Store(rounded + b * WeightTypes.Q8BlockSize + h);
                }
                continue;
            }
            for (int i = 0; i < WeightTypes.Q8BlockSize; i++)
            {
                int r = (int)MathF.Round(xb[i] * inv, MidpointRounding.AwayFromZero);
                if (q != null) q[b * WeightTypes.Q8BlockSize + i] = (sbyte)r;
                if (rounded != null) rounded[b * WeightTypes.Q8BlockSize + i] = r * stored;
            }
        }
    }

    /// <summary>A stored row converted to f32 (vectorized: prefill converts every weight row once per input tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(WeightType type, byte* row, Span<float> dst)
    {
        int n = dst.Length;
        fixed (float* y = dst)
        {
            int i = 0;
            switch (type)
            {
                case WeightType.F32:
                    new ReadOnlySpan<float>(row, n).CopyTo(dst);
                    return;
                case WeightType.BF16:
                {
                    var src = (ushort*)row;
                    if (Simd.Level == SimdLevel.V512)
                        for (; i + 32 <= n; i += 32)
                        {
                            var bits = Vector512.Load(src + i);
                            Vector512.ShiftLeft(Vector512.WidenLower(bits), 16).AsSingle().Store(y + i);
                            Vector512.ShiftLeft(Vector512.WidenUpper(bits), 16).AsSingle().Store(y + i + 16);
                        }
                    else if (Simd.Level == SimdLevel.V256)
                        for (; i + 16 <= n; i += 16)
                        {
                            var bits = Vector256.Load(src + i);
                            Vector256.ShiftLeft(Vector256.WidenLower(bits), 16).AsSingle().Store(y + i);
                            Vector256.ShiftLeft(Vector256.WidenUpper(bits), 16).AsSingle().Store(y + i + 8);
                        }
                    for (; i < n; i++) y[i] = BFloat16.ToSingle(src[i]);
                    return;
                }
                case WeightType.F16:
                {
                    var src = (ushort*)row;
                    if (Simd.Level == SimdLevel.V512)
                        for (; i + 32 <= n; i += 32)
                        {
                            var bits = Vector512.Load(src + i);
                            HalfToSingle(Vector512.WidenLower(bits)).Store(y + i);
                            HalfToSingle(Vector512.WidenUpper(bits)).Store(y + i + 16);
                        }
                    else if (Simd.Level == SimdLevel.V256)
                        for (; i + 16 <= n; i += 16)
                        {
                            var bits = Vector256.Load(src + i);
                            HalfToSingle(Vector256.WidenLower(bits)).Store(y + i);
                            HalfToSingle(Vector256.WidenUpper(bits)).Store(y + i + 8);
                        }
                    for (; i < n; i++) y[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
                    return;
                }
                case WeightType.Q8_0:
                    fixed (float* table = HalfTable)
                        for (int b = 0; b < n / WeightTypes.Q8BlockSize; b++)
                        {
                            byte* blk = row + b * WeightTypes.Q8BlockBytes;
                            float d = table[*(ushort*)blk];
                            sbyte* q = (sbyte*)(blk + 2);
                            float* yb = y + b * WeightTypes.Q8BlockSize;
                            if (Simd.Level == SimdLevel.V512 && Avx512F.IsSupported)
                            {
                                var vd = Vector512.Create(d);
                                (Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q))) * vd).Store(yb);
                                (Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16))) * vd).Store(yb + 16);
                            }
                            else
                                for (int k = 0; k < WeightTypes.Q8BlockSize; k++) yb[k] = d * q[k];
                        }
                    return;
            }
        }
    }
}
