using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Attune.Tensors;

namespace Attune.Formats;

/// <summary>The name, dtype and shape of a tensor about to be written.</summary>
public sealed record TensorSpec(string Name, DType DType, long[] Shape)
{
    public long ByteLength => Shape.Aggregate(1L, (a, d) => checked(a * d)) * DType.SizeOf();
}

/// <summary>
/// Streams one safetensors file: the header is fixed up front from the specs, then each tensor's
/// bytes are written in spec order, so a merge or conversion never holds more than one tensor.
/// The file appears under its name only on <see cref="Commit"/>; disposing without it deletes the
/// temporary file.
/// </summary>
public sealed class SafeTensorsWriter : IDisposable
{
    readonly AtomicFileStream _file;
    readonly IReadOnlyList<TensorSpec> _specs;
    int _next;
    long _partial; // bytes of the current tensor written so far by WritePart

    public SafeTensorsWriter(string path, IReadOnlyList<TensorSpec> specs, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in specs)
        {
            if (s.Name == "__metadata__" || !names.Add(s.Name))
                throw new ArgumentException($"tensor name {s.Name} is reserved or repeated", nameof(specs));
        }
        _specs = specs;
        _file = new AtomicFileStream(path);
        try
        {
            var header = BuildHeader(specs, metadata);
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
            _file.Stream.Write(len);
            _file.Stream.Write(header);
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>The header JSON, padded with spaces so the data area starts 8-byte aligned.</summary>
    internal static byte[] BuildHeader(IReadOnlyList<TensorSpec> specs, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var s in specs)
            {
                w.WriteStartObject(s.Name);
                w.WriteString("dtype", s.DType.SafeTensorsName());
                w.WriteStartArray("shape");
                foreach (var d in s.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += s.ByteLength;
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - (ms.Length + 8) % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    /// <summary>The spec of the tensor that <see cref="Write"/> expects next; null when all are written.</summary>
    public TensorSpec? Next => _next < _specs.Count ? _specs[_next] : null;

    /// <summary>Writes the next tensor's bytes (its whole little-endian data).</summary>
    public void Write(string name, ReadOnlySpan<byte> data)
    {
        WritePart(name, data);
        if (_partial != 0)
            throw new InvalidOperationException($"tensor {name} needs {_specs[_next].ByteLength} bytes, got {data.Length}");
    }

    /// <summary>Writes the next piece of tensor <paramref name="name"/>; the tensor is complete when all its bytes are in.</summary>
    public void WritePart(string name, ReadOnlySpan<byte> data)
    {
        if (_next >= _specs.Count) throw new InvalidOperationException($"all {_specs.Count} tensors are already written");
        var spec = _specs[_next];
        if (spec.Name != name) throw new InvalidOperationException($"expected tensor {spec.Name} next, got {name}");
        if (_partial + data.Length > spec.ByteLength)
            throw new InvalidOperationException($"tensor {name} needs {spec.ByteLength} bytes, got {_partial + data.Length}");
        _file.Stream.Write(data);
        _partial += data.Length;
        if (_partial == spec.ByteLength) { _next++; _partial = 0; }
    }

    public void Write<T>(string name, ReadOnlySpan<T> data) where T : unmanaged =>
        Write(name, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));

    /// <summary>Flushes to disk and renames the file into place.</summary>
    public void Commit()
    {
        if (_next != _specs.Count)
            throw new InvalidOperationException($"only {_next} of {_specs.Count} tensors were written");
        _file.Commit();
    }

    public void Dispose() => _file.Dispose();

    /// <summary>Writes a whole file from tensors held in memory.</summary>
    public static void Save(string path, IEnumerable<(TensorSpec Spec, byte[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var w = new SafeTensorsWriter(path, list.Select(t => t.Spec).ToList(), metadata);
        foreach (var (spec, data) in list) w.Write(spec.Name, data);
        w.Commit();
    }
}
