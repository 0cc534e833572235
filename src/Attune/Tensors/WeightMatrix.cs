namespace Attune.Tensors;

/// <summary>Storage formats of weight matrices the kernels read in place.</summary>
public enum WeightType { F32, F16, BF16, Q8_0 }

public static class WeightTypes
{
    /// <summary>Q8_0 (GGUF): blocks of 32 weights, an f16 scale then 32 signed bytes; weight = scale × byte.</summary>
    public const int Q8BlockSize = 32;
    public const int Q8BlockBytes = 34;

    public static long RowBytes(this WeightType t, int cols) => t switch
    {
        WeightType.F32 => 4L * cols,
        WeightType.F16 or WeightType.BF16 => 2L * cols,
        WeightType.Q8_0 => (long)cols / Q8BlockSize * Q8BlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static WeightType FromDType(DType d) => d switch
    {
        DType.F32 => WeightType.F32,
        DType.F16 => WeightType.F16,
        DType.BF16 => WeightType.BF16,
        _ => throw new NotSupportedException($"{d} is not a weight dtype"),
    };
}

/// <summary>
/// A row-major matrix of weights, <c>[Rows, Cols]</c> (a linear layer's <c>[out, in]</c>), read in place
/// from a memory-mapped file or from memory the owner keeps alive.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    public readonly byte* Data;
    public readonly WeightType Type;
    public readonly int Rows;
    public readonly int Cols;
    public readonly long RowBytes;

    public WeightMatrix(byte* data, WeightType type, int rows, int cols)
    {
        if (type == WeightType.Q8_0 && cols % WeightTypes.Q8BlockSize != 0)
            throw new ArgumentException($"Q8_0 rows must be a multiple of {WeightTypes.Q8BlockSize} long, got {cols}");
        Data = data;
        Type = type;
        Rows = rows;
        Cols = cols;
        RowBytes = type.RowBytes(cols);
    }

    public byte* Row(int r) => Data + r * RowBytes;

    public long ByteLength => Rows * RowBytes;

    /// <summary>Dot product of row <paramref name="r"/> with <paramref name="x"/> (length <see cref="Cols"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public float DotRow(int r, float* x) => Dot.Row(Type, Row(r), x, Cols);

    /// <summary>Row <paramref name="r"/> converted to f32.</summary>
    public void RowToSingle(int r, Span<float> dst) => Dot.Dequantize(Type, Row(r), dst[..Cols]);
}
