using System.Runtime.Intrinsics;
namespace Attune.Tensors;

/// <summary>Element types of stored tensors. Names follow safetensors (<c>F32</c>, <c>BF16</c>, …).</summary>
public enum DType
{
    F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool,
}

public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType t) => t switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>The <c>torch_dtype</c> spelling in a Hugging Face config.json (float types only).</summary>
    public static string TorchName(this DType t) => t switch
    {
        DType.F32 => "float32",
        DType.F16 => "float16",
        DType.BF16 => "bfloat16",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a float type a checkpoint is stored in"),
    };

    /// <summary>
    /// The one parser of a weight dtype a user names (<c>--dtype</c>, a recipe's <c>dtype</c>): the spellings of
    /// Hugging Face configs (<c>float32</c>, <c>float16</c>, <c>bfloat16</c>, also <c>torch.bfloat16</c>), the short
    /// ones (<c>f32</c>, <c>fp16</c>, <c>bf16</c>, …) and safetensors' (<c>F32</c>, <c>BF16</c>); any case.
    /// </summary>
    public static DType ParseFloat(string text, string field = "--dtype", string? source = null) =>
        TryParseFloat(text, out var t) ? t : throw new AttuneException(source, field, $"\"{text}\" is not a weight dtype: f32|float32, f16|float16, bf16|bfloat16");

    public static bool TryParseFloat(string text, out DType t)
    {
        var s = text.Trim().ToLowerInvariant();
        if (s.StartsWith("torch.", StringComparison.Ordinal)) s = s[6..];
        (t, var ok) = s switch
        {
            "f32" or "fp32" or "float32" or "float" => (DType.F32, true),
            "f16" or "fp16" or "float16" or "half" => (DType.F16, true),
            "bf16" or "bfloat16" => (DType.BF16, true),
            _ => (default(DType), false),
        };
        return ok;
    }

    /// <summary>The safetensors header spelling.</summary>
    public static string SafeTensorsName(this DType t) => t switch
    {
        DType.Bool => "BOOL",
        _ => t.ToString().ToUpperInvariant(),
    };

    /// <summary>Parses a safetensors dtype string; false for names Attune does not read.</summary>
    public static bool TryParseSafeTensors(string name, out DType t)
    {
        switch (name)
        {
            case "F64": t = DType.F64; return true;
            case "F32": t = DType.F32; return true;
            case "F16": t = DType.F16; return true;
            case "BF16": t = DType.BF16; return true;
            case "I64": t = DType.I64; return true;
            case "I32": t = DType.I32; return true;
            case "I16": t = DType.I16; return true;
            case "I8": t = DType.I8; return true;
            case "U8": t = DType.U8; return true;
            case "BOOL": t = DType.Bool; return true;
            default: t = default; return false;
        }
    }

    /// <summary>The CLR element type a view of this dtype is read as.</summary>
    public static Type ClrType(this DType t) => t switch
    {
        DType.F64 => typeof(double),
        DType.F32 => typeof(float),
        DType.F16 => typeof(Half),
        DType.BF16 => typeof(BFloat16),
        DType.I64 => typeof(long),
        DType.I32 => typeof(int),
        DType.I16 => typeof(short),
        DType.I8 => typeof(sbyte),
        DType.U8 => typeof(byte),
        DType.Bool => typeof(bool),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>f32 → the bytes of <paramref name="t"/> (f32, f16, or bf16 rounded to nearest even as PyTorch does).</summary>
    public static byte[] FromSingle(DType t, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * t.SizeOf()];
        FromSingle(t, values, bytes);
        return bytes;
    }

    /// <summary>f32 → the bytes of <paramref name="t"/>, into <paramref name="dst"/> (values.Length × size bytes).</summary>
    public static void FromSingle(DType t, ReadOnlySpan<float> values, Span<byte> dst)
    {
        switch (t)
        {
            case DType.F32:
                System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).CopyTo(dst);
                return;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(dst));
                return;
            case DType.BF16:
            {
                var outBits = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(dst);
                var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values);
                int i = 0;
                if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
                    for (; i + 32 <= bits.Length; i += 32)
                        System.Runtime.Intrinsics.Vector512.Narrow(ToBf16(System.Runtime.Intrinsics.Vector512.Create(bits[i..])),
                            ToBf16(System.Runtime.Intrinsics.Vector512.Create(bits[(i + 16)..]))).CopyTo(outBits[i..]);
                for (; i < bits.Length; i++) outBits[i] = BFloat16.FromSingle(values[i]);
                return;
            }
            default:
                throw new NotSupportedException($"{t} is not a floating-point dtype");
        }
    }

    /// <summary>The BFloat16 rounding of <see cref="BFloat16.FromSingle"/> on 16 lanes (result in the low 16 bits).</summary>
    static System.Runtime.Intrinsics.Vector512<uint> ToBf16(System.Runtime.Intrinsics.Vector512<uint> x)
    {
        var rounded = (x + System.Runtime.Intrinsics.Vector512.Create(0x7FFFu) + ((x >> 16) & System.Runtime.Intrinsics.Vector512<uint>.One)) >> 16;
        var nan = System.Runtime.Intrinsics.Vector512.GreaterThan(x & System.Runtime.Intrinsics.Vector512.Create(0x7FFF_FFFFu), System.Runtime.Intrinsics.Vector512.Create(0x7F80_0000u));
        return System.Runtime.Intrinsics.Vector512.ConditionalSelect(nan, (x >> 16) | System.Runtime.Intrinsics.Vector512.Create(0x0040u), rounded);
    }

    /// <summary>Converts any floating-point view to f32 (the working precision of Attune's kernels).</summary>
    public static void ToSingle(DType t, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (t)
        {
            case DType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(src), dst);
                break;
            case DType.BF16:
                unsafe
                {
                    fixed (byte* p = src) Dot.Dequantize(WeightType.BF16, p, dst[..(src.Length / 2)]);
                }
                break;
            case DType.F64:
            {
                var d = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(src);
                for (int i = 0; i < d.Length; i++) dst[i] = (float)d[i];
                break;
            }
            default:
                throw new NotSupportedException($"{t} is not a floating-point dtype");
        }
    }
}
