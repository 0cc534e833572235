using System.Buffers.Binary;
using System.Text;

namespace Attune.Formats;

/// <summary>A tensor about to be written to GGUF: dimensions innermost first (<c>ne</c>).</summary>
public sealed record GgufTensorSpec(string Name, GgmlType Type, long[] Ne)
{
    public long ByteLength => GgmlTypes.ByteLength(Type, Ne);
}

/// <summary>
/// Streams a GGUF v3 file: header, metadata and tensor records up front, then each tensor's data
/// in record order, each padded to the alignment (llama.cpp checks that offsets are exactly the
/// padded running sum). The file appears under its name only on <see cref="Commit"/>.
/// </summary>
public sealed class GgufWriter : IDisposable
{
    public const uint Alignment = 32;

    readonly AtomicFileStream _file;
    readonly IReadOnlyList<GgufTensorSpec> _tensors;
    int _next;

    public GgufWriter(string path, IReadOnlyList<(string Key, GgufValue Value)> metadata, IReadOnlyList<GgufTensorSpec> tensors)
    {
        _tensors = tensors;
        _file = new AtomicFileStream(path);
        try
        {
            var header = new MemoryStream();
            WriteU32(header, 0x46554747);
            WriteU32(header, 3);
            WriteU64(header, (ulong)tensors.Count);
            WriteU64(header, (ulong)metadata.Count);
            foreach (var (key, value) in metadata)
            {
                WriteString(header, key);
                WriteU32(header, (uint)value.Type);
                WriteValue(header, value);
            }
            ulong offset = 0;
            foreach (var t in tensors)
            {
                WriteString(header, t.Name);
                WriteU32(header, (uint)t.Ne.Length);
                foreach (var d in t.Ne) WriteU64(header, (ulong)d);
                WriteU32(header, (uint)t.Type);
                WriteU64(header, offset);
                offset += Pad((ulong)t.ByteLength);
            }
            while (header.Length % Alignment != 0) header.WriteByte(0);
            header.Position = 0;
            header.CopyTo(_file.Stream);
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    static ulong Pad(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    /// <summary>Writes the next tensor's data.</summary>
    public void Write(string name, ReadOnlySpan<byte> data)
    {
        if (_next >= _tensors.Count) throw new InvalidOperationException("all tensors are written");
        var t = _tensors[_next];
        if (t.Name != name) throw new InvalidOperationException($"expected tensor {t.Name} next, got {name}");
        if (data.Length != t.ByteLength) throw new InvalidOperationException($"tensor {name} needs {t.ByteLength} bytes, got {data.Length}");
        _file.Stream.Write(data);
        for (ulong i = (ulong)data.Length; i < Pad((ulong)data.Length); i++) _file.Stream.WriteByte(0);
        _next++;
    }

    public void Commit()
    {
        if (_next != _tensors.Count) throw new InvalidOperationException($"only {_next} of {_tensors.Count} tensors were written");
        _file.Commit();
    }

    public void Dispose() => _file.Dispose();

    static void WriteU32(Stream s, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }
    static void WriteU64(Stream s, ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b); }

    static void WriteString(Stream s, string v)
    {
        var bytes = Encoding.UTF8.GetBytes(v);
        WriteU64(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    static void WriteValue(Stream s, GgufValue v)
    {
        switch (v.Type)
        {
            case GgufType.Array:
                WriteU32(s, (uint)v.ElementType);
                var a = (Array)v.Value;
                WriteU64(s, (ulong)a.Length);
                foreach (var e in a) WriteScalar(s, v.ElementType, e!);
                break;
            default:
                WriteScalar(s, v.Type, v.Value);
                break;
        }
    }

    static void WriteScalar(Stream s, GgufType type, object value)
    {
        Span<byte> b = stackalloc byte[8];
        switch (type)
        {
            case GgufType.String: WriteString(s, (string)value); return;
            case GgufType.UInt8: s.WriteByte(Convert.ToByte(value)); return;
            case GgufType.Int8: s.WriteByte((byte)Convert.ToSByte(value)); return;
            case GgufType.Bool: s.WriteByte((bool)value ? (byte)1 : (byte)0); return;
            case GgufType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(b, Convert.ToUInt16(value)); s.Write(b[..2]); return;
            case GgufType.Int16: BinaryPrimitives.WriteInt16LittleEndian(b, Convert.ToInt16(value)); s.Write(b[..2]); return;
            case GgufType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(b, Convert.ToUInt32(value)); s.Write(b[..4]); return;
            case GgufType.Int32: BinaryPrimitives.WriteInt32LittleEndian(b, Convert.ToInt32(value)); s.Write(b[..4]); return;
            case GgufType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b, Convert.ToSingle(value)); s.Write(b[..4]); return;
            case GgufType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(b, Convert.ToUInt64(value)); s.Write(b); return;
            case GgufType.Int64: BinaryPrimitives.WriteInt64LittleEndian(b, Convert.ToInt64(value)); s.Write(b); return;
            case GgufType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b, Convert.ToDouble(value)); s.Write(b); return;
            default: throw new ArgumentException($"cannot write a value of type {type}");
        }
    }
}
