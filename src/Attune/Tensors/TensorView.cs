using System.Runtime.InteropServices;

namespace Attune.Tensors;

/// <summary>
/// A typed, read-only view of one stored tensor: a pointer into a memory-mapped file plus its
/// dtype and shape. Nothing is copied; the view is valid while the file that owns it is open.
/// </summary>
public readonly unsafe struct TensorView
{
    readonly byte* _data;

    public string Name { get; }
    public DType DType { get; }
    /// <summary>Dimensions, outermost first (row-major, as safetensors and PyTorch store them).</summary>
    public IReadOnlyList<long> Shape { get; }
    public long ByteLength { get; }

    internal TensorView(string name, DType dtype, long[] shape, byte* data, long byteLength)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        _data = data;
        ByteLength = byteLength;
    }

    /// <summary>The first byte, for kernels that read the tensor in place.</summary>
    public byte* Pointer => _data;

    public long ElementCount => DType.SizeOf() == 0 ? 0 : ByteLength / DType.SizeOf();

    public int Rank => Shape.Count;

    /// <summary>The raw little-endian bytes.</summary>
    public ReadOnlySpan<byte> Bytes
    {
        get
        {
            if (ByteLength > int.MaxValue)
                throw new NotSupportedException($"tensor {Name} is {ByteLength} bytes; read it in rows with {nameof(Rows)}");
            return new ReadOnlySpan<byte>(_data, (int)ByteLength);
        }
    }

    /// <summary>The elements as <typeparamref name="T"/>, which must match the dtype's CLR type.</summary>
    public ReadOnlySpan<T> As<T>() where T : unmanaged
    {
        if (typeof(T) != DType.ClrType())
            throw new InvalidOperationException($"tensor {Name} is {DType.SafeTensorsName()}, not {typeof(T).Name}");
        return MemoryMarshal.Cast<byte, T>(Bytes);
    }

    /// <summary>Bytes of rows [first, first+count) of the outermost dimension; works for tensors over 2 GiB.</summary>
    public ReadOnlySpan<byte> Rows(long first, int count)
    {
        if (Shape.Count == 0) throw new InvalidOperationException($"tensor {Name} is a scalar");
        long rows = Shape[0];
        if (first < 0 || count < 0 || first + count > rows)
            throw new ArgumentOutOfRangeException(nameof(first), $"rows {first}..{first + count} of {rows} in {Name}");
        long rowBytes = rows == 0 ? 0 : ByteLength / rows;
        return new ReadOnlySpan<byte>(_data + first * rowBytes, checked((int)(count * rowBytes)));
    }

    public override string ToString() =>
        $"{Name} {DType.SafeTensorsName()}[{string.Join(", ", Shape)}]";
}
