namespace Attune.Tensors;

/// <summary>
/// GGUF's Q8_0 format: per block of 32 values, scale d = max|x| / 127 stored as f16, then
/// q = round(x / d) as signed bytes (rounding half away from zero, as llama.cpp's reference does).
/// </summary>
public static class Q8_0
{
    public static int BlockCount(int n) =>
        n % WeightTypes.Q8BlockSize == 0 ? n / WeightTypes.Q8BlockSize
            : throw new ArgumentException($"Q8_0 needs a multiple of {WeightTypes.Q8BlockSize} values, got {n}");

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int blocks = BlockCount(src.Length);
        if (dst.Length < blocks * WeightTypes.Q8BlockBytes) throw new ArgumentException("destination too small", nameof(dst));
        for (int b = 0; b < blocks; b++)
        {
            var x = src.Slice(b * WeightTypes.Q8BlockSize, WeightTypes.Q8BlockSize);
            var blk = dst.Slice(b * WeightTypes.Q8BlockBytes, WeightTypes.Q8BlockBytes);
            float amax = 0;
            foreach (var v in x) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            BitConverter.TryWriteBytes(blk, BitConverter.HalfToUInt16Bits((Half)d));
            for (int i = 0; i < WeightTypes.Q8BlockSize; i++)
                blk[2 + i] = (byte)(sbyte)MathF.Round(x[i] * id, MidpointRounding.AwayFromZero);
        }
    }

    public static byte[] Quantize(ReadOnlySpan<float> src)
    {
        var dst = new byte[BlockCount(src.Length) * WeightTypes.Q8BlockBytes];
        Quantize(src, dst);
        return dst;
    }
}
