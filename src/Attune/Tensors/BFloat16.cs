using System.Runtime.CompilerServices;

namespace Attune.Tensors;

/// <summary>
/// Brain floating point: the top 16 bits of an IEEE binary32. Stored as raw bits so that a
/// memory-mapped bf16 tensor can be viewed as <c>ReadOnlySpan&lt;BFloat16&gt;</c> without copying.
/// </summary>
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    public readonly ushort Bits;

    public BFloat16(ushort bits) => Bits = bits;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest, ties to even, as PyTorch does; NaN stays a (quiet) NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromSingle(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value);
        if ((x & 0x7FFF_FFFF) > 0x7F80_0000) return (ushort)((x >> 16) | 0x0040);
        uint roundingBias = 0x7FFF + ((x >> 16) & 1);
        return (ushort)((x + roundingBias) >> 16);
    }

    public static explicit operator float(BFloat16 v) => ToSingle(v.Bits);
    public static explicit operator BFloat16(float v) => new(FromSingle(v));

    public bool Equals(BFloat16 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is BFloat16 b && Equals(b);
    public override int GetHashCode() => Bits;
    public override string ToString() => ((float)this).ToString();
}
