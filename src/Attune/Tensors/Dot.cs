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
    public static float Row(WeightType type, byte* row, float* x, int n) => type switch
    {
        WeightType.F32 => F32((float*)row, x, n),
        WeightType.F16 => F16((ushort*)row, x, n),
        WeightType.BF16 => BF16((ushort*)row, x, n),
        WeightType.Q8_0 => Q8_0(row, x, n),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

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
    /// IEEE half → single on integer lanes: the magnitude bits shifted into place and scaled by
    /// 2^112 (exact for normal and subnormal halves), exponent 31 mapped to inf/NaN, sign restored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> HalfToSingle(Vector512<uint> h)
    {
        var magnitude = Vector512.ShiftLeft(h & Vector512.Create(0x7FFFu), 13);
        var value = magnitude.AsSingle() * Vector512.Create(5.192296858534828e33f); // 2^112
        var infNan = Vector512.Equals(h & Vector512.Create(0x7C00u), Vector512.Create(0x7C00u));
        value = Vector512.ConditionalSelect(infNan.AsSingle(), (magnitude | Vector512.Create(0x7F800000u)).AsSingle(), value);
        return (value.AsUInt32() | Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> HalfToSingle(Vector256<uint> h)
    {
        var magnitude = Vector256.ShiftLeft(h & Vector256.Create(0x7FFFu), 13);
        var value = magnitude.AsSingle() * Vector256.Create(5.192296858534828e33f);
        var infNan = Vector256.Equals(h & Vector256.Create(0x7C00u), Vector256.Create(0x7C00u));
        value = Vector256.ConditionalSelect(infNan.AsSingle(), (magnitude | Vector256.Create(0x7F800000u)).AsSingle(), value);
        return (value.AsUInt32() | Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

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

    /// <summary>A stored row converted to f32.</summary>
    public static void Dequantize(WeightType type, byte* row, Span<float> dst)
    {
        int n = dst.Length;
        switch (type)
        {
            case WeightType.F32:
                new ReadOnlySpan<float>(row, n).CopyTo(dst);
                break;
            case WeightType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(row, n), dst);
                break;
            case WeightType.BF16:
            {
                var src = new ReadOnlySpan<ushort>(row, n);
                for (int i = 0; i < n; i++) dst[i] = BFloat16.ToSingle(src[i]);
                break;
            }
            case WeightType.Q8_0:
                for (int b = 0; b < n / WeightTypes.Q8BlockSize; b++)
                {
                    byte* blk = row + b * WeightTypes.Q8BlockBytes;
                    float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)blk);
                    sbyte* q = (sbyte*)(blk + 2);
                    for (int k = 0; k < WeightTypes.Q8BlockSize; k++) dst[b * WeightTypes.Q8BlockSize + k] = d * q[k];
                }
                break;
        }
    }
}
