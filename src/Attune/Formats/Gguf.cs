using System.Buffers.Binary;
using Attune.Tensors;

namespace Attune.Formats;

/// <summary>GGUF metadata value types (the ids stored in the file).</summary>
public enum GgufType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>ggml tensor types Attune reads and writes (others are recognised by id in errors only).</summary>
public enum GgmlType : uint { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 }

/// <summary>A typed metadata value. Arrays hold a CLR array of the element type (string[] for strings).</summary>
public readonly record struct GgufValue(GgufType Type, object Value, GgufType ElementType = GgufType.UInt8)
{
    public static GgufValue U32(uint v) => new(GgufType.UInt32, v);
    public static GgufValue I32(int v) => new(GgufType.Int32, v);
    public static GgufValue F32(float v) => new(GgufType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufType.Bool, v);
    public static GgufValue Str(string v) => new(GgufType.String, v);
    public static GgufValue Strings(string[] v) => new(GgufType.Array, v, GgufType.String);
    public static GgufValue Int32s(int[] v) => new(GgufType.Array, v, GgufType.Int32);
    public static GgufValue Float32s(float[] v) => new(GgufType.Array, v, GgufType.Float32);
}

/// <summary>One tensor record: dimensions innermost first (<c>ne[0]</c>), type, and where its data is.</summary>
public sealed record GgufTensor(string Name, long[] Ne, uint TypeId, long Offset, long ByteLength)
{
    public bool IsSupported => Enum.IsDefined(typeof(GgmlType), TypeId);
    public GgmlType Type => (GgmlType)TypeId;
    public long Elements => Ne.Aggregate(1L, (a, d) => a * d);
}

public static class GgmlTypes
{
    /// <summary>(values per block, bytes per block) for the types Attune handles.</summary>
    public static (int Block, int Bytes) Layout(GgmlType t) => t switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 or GgmlType.BF16 => (1, 2),
        GgmlType.Q8_0 => (WeightTypes.Q8BlockSize, WeightTypes.Q8BlockBytes),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static long ByteLength(GgmlType t, long[] ne)
    {
        var (block, bytes) = Layout(t);
        long rows = 1;
        for (int i = 1; i < ne.Length; i++) rows = checked(rows * ne[i]);
        return checked(ne[0] / block * bytes * rows);
    }

    public static WeightType ToWeightType(GgmlType t) => t switch
    {
        GgmlType.F32 => WeightType.F32,
        GgmlType.F16 => WeightType.F16,
        GgmlType.BF16 => WeightType.BF16,
        _ => WeightType.Q8_0,
    };

    public static GgmlType FromWeightType(WeightType t) => t switch
    {
        WeightType.F32 => GgmlType.F32,
        WeightType.F16 => GgmlType.F16,
        WeightType.BF16 => GgmlType.BF16,
        _ => GgmlType.Q8_0,
    };

    /// <summary>Names of ggml type ids, for messages about files Attune cannot read.</summary>
    public static string Name(uint id) => id switch
    {
        0 => "F32", 1 => "F16", 2 => "Q4_0", 3 => "Q4_1", 6 => "Q5_0", 7 => "Q5_1", 8 => "Q8_0", 9 => "Q8_1",
        10 => "Q2_K", 11 => "Q3_K", 12 => "Q4_K", 13 => "Q5_K", 14 => "Q6_K", 15 => "Q8_K", 24 => "I8", 25 => "I16",
        26 => "I32", 27 => "I64", 28 => "F64", 30 => "BF16", _ => $"type {id}",
    };
}

/// <summary>
/// A GGUF v2/v3 file, memory-mapped: "GGUF", version, tensor and key counts, the key/value
/// metadata, the tensor records, then the aligned data area. Every length and offset is checked
/// against the file before use, so a truncated or hostile file gives an <see cref="AttuneException"/>.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    const uint Magic = 0x46554747; // "GGUF"
    const long MaxString = 1L << 30;

    readonly FileBytes _bytes;
    readonly byte* _base;
    readonly Dictionary<string, GgufTensor> _byName;
    bool _disposed;

    public string Path { get; }
    public uint Version { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    public IReadOnlyList<GgufTensor> Tensors { get; }
    public long Alignment { get; }
    public long FileLength { get; }

    GgufFile(string path, FileBytes file)
    {
        Path = path;
        _bytes = file;
        byte* b = _base = file.Pointer;
        long length = file.Length;
        FileLength = length;
        var r = new Reader(path, b, length);
        if (r.U32("magic") != Magic) throw new AttuneException(path, "not a GGUF file (bad magic)");
        Version = r.U32("version");
        if (Version is not (2 or 3)) throw new AttuneException(path, $"GGUF version {Version} is not supported (2 or 3)");
        long nTensors = r.I64("tensor count"), nKv = r.I64("metadata count");
        if (nTensors < 0 || nTensors > length / 8) throw new AttuneException(path, $"tensor count {nTensors} is impossible for a {length}-byte file");
        if (nKv < 0 || nKv > length / 8) throw new AttuneException(path, $"metadata count {nKv} is impossible for a {length}-byte file");
        var meta = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        for (long i = 0; i < nKv; i++)
        {
            var key = r.Str("metadata key");
            var type = (GgufType)r.U32($"type of {key}");
            var value = r.Value(type, key);
            if (!meta.TryAdd(key, value)) throw new AttuneException(path, key, "appears twice in the metadata");
        }
        Metadata = meta;
        Alignment = 32;
        if (meta.TryGetValue("general.alignment", out var al))
        {
            if (al.Type != GgufType.UInt32 || (uint)al.Value == 0 || ((uint)al.Value & ((uint)al.Value - 1)) != 0)
                throw new AttuneException(path, "general.alignment", "must be a UINT32 power of two");
            Alignment = (uint)al.Value;
        }
        var infos = new List<(string Name, long[] Ne, uint Type, ulong Offset)>();
        for (long i = 0; i < nTensors; i++)
        {
            var name = r.Str("tensor name");
            uint dims = r.U32($"dimension count of {name}");
            if (dims is 0 or > 4) throw new AttuneException(path, $"tensor {name}", $"{dims} dimensions (1 to 4 allowed)");
            var ne = new long[dims];
            for (int d = 0; d < dims; d++)
            {
                ne[d] = r.I64($"dimension {d} of {name}");
                if (ne[d] < 0) throw new AttuneException(path, $"tensor {name}", $"dimension {d} is negative");
            }
            uint type = r.U32($"type of {name}");
            ulong offset = r.U64($"offset of {name}");
            infos.Add((name, ne, type, offset));
        }
        long dataStart = (r.Position + Alignment - 1) / Alignment * Alignment;
        var tensors = new List<GgufTensor>();
        _byName = new Dictionary<string, GgufTensor>(StringComparer.Ordinal);
        foreach (var (name, ne, type, offset) in infos)
        {
            long bytes = 0;
            if (Enum.IsDefined(typeof(GgmlType), type))
            {
                var (block, _) = GgmlTypes.Layout((GgmlType)type);
                if (ne[0] % block != 0)
                    throw new AttuneException(path, $"tensor {name}", $"{GgmlTypes.Name(type)} rows must be a multiple of {block} long, got {ne[0]}");
                try { bytes = GgmlTypes.ByteLength((GgmlType)type, ne); }
                catch (OverflowException) { throw new AttuneException(path, $"tensor {name}", "is larger than any file"); }
                if (offset % (ulong)Alignment != 0)
                    throw new AttuneException(path, $"tensor {name}", $"offset {offset} is not aligned to {Alignment}");
                if (offset > (ulong)length || dataStart + (long)offset + bytes > length)
                    throw new AttuneException(path, $"tensor {name}", $"data at offset {offset} ({bytes} bytes) runs past the end of the file (truncated?)");
            }
            var t = new GgufTensor(name, ne, type, dataStart + (long)offset, bytes);
            if (!_byName.TryAdd(name, t)) throw new AttuneException(path, $"tensor {name}", "appears twice");
            tensors.Add(t);
        }
        Tensors = tensors;
    }

    /// <summary>Opens a GGUF file: mapped, or read into memory (<paramref name="inMemory"/>: weights for inference, see <see cref="FileBytes"/>).</summary>
    public static GgufFile Open(string path, bool inMemory = false)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        long length = FileLinks.Resolve(path).Length;
        if (length < 24) throw new AttuneException(path, $"file is {length} bytes, too short for a GGUF header");
        var file = FileBytes.Open(path, length, inMemory);
        try { return new GgufFile(path, file); }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public GgufTensor Tensor(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new AttuneException(Path, $"tensor {name}", "missing");

    /// <summary>A 2-D tensor as a weight matrix read in place: rows = ne[1], columns = ne[0].</summary>
    public WeightMatrix Matrix(string name, long rows, long cols)
    {
        var t = Readable(name);
        if (t.Ne.Length != 2 || t.Ne[0] != cols || t.Ne[1] != rows)
            throw new AttuneException(Path, $"tensor {name}", $"has shape [{string.Join(", ", t.Ne)}] (ne), expected [{cols}, {rows}]");
        return new WeightMatrix(_base + t.Offset, GgmlTypes.ToWeightType(t.Type), (int)rows, (int)cols);
    }

    /// <summary>A tensor's values converted to f32.</summary>
    public float[] Floats(string name, long expectedLength)
    {
        var t = Readable(name);
        if (t.Elements != expectedLength)
            throw new AttuneException(Path, $"tensor {name}", $"has {t.Elements} values, expected {expectedLength}");
        var result = GC.AllocateUninitializedArray<float>((int)t.Elements, pinned: true);
        var m = new WeightMatrix(_base + t.Offset, GgmlTypes.ToWeightType(t.Type), (int)(t.Elements / t.Ne[0]), (int)t.Ne[0]);
        for (int r = 0; r < m.Rows; r++) m.RowToSingle(r, result.AsSpan(r * m.Cols, m.Cols));
        return result;
    }

    /// <summary>The raw bytes of a tensor (for conversion).</summary>
    public ReadOnlySpan<byte> Bytes(GgufTensor t) =>
        t.ByteLength <= int.MaxValue ? new ReadOnlySpan<byte>(_base + t.Offset, (int)t.ByteLength)
            : throw new NotSupportedException($"tensor {t.Name} is over 2 GiB");

    GgufTensor Readable(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var t = Tensor(name);
        if (!t.IsSupported)
            throw new AttuneException(Path, $"tensor {name}", $"is {GgmlTypes.Name(t.TypeId)}; Attune reads F32, F16, BF16 and Q8_0 (re-quantize the model with llama.cpp to one of those)");
        return t;
    }

    // Typed metadata access with errors naming the key.
    public bool Has(string key) => Metadata.ContainsKey(key);

    public string String(string key) => Get(key, GgufType.String) is string s ? s : "";
    public string? OptionalString(string key) => Metadata.ContainsKey(key) ? String(key) : null;

    public long Integer(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) throw new AttuneException(Path, key, "missing");
        return v.Value switch
        {
            byte b => b, sbyte sb => sb, ushort us => us, short s => s, uint u => u, int i => i, ulong ul => (long)ul, long l => l,
            _ => throw new AttuneException(Path, key, $"must be an integer, is {v.Type}"),
        };
    }

    public long? OptionalInteger(string key) => Metadata.ContainsKey(key) ? Integer(key) : null;

    public double Number(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) throw new AttuneException(Path, key, "missing");
        return v.Value switch
        {
            float f => f, double d => d, _ when v.Type is not (GgufType.String or GgufType.Array or GgufType.Bool) => Integer(key),
            _ => throw new AttuneException(Path, key, $"must be a number, is {v.Type}"),
        };
    }

    public double? OptionalNumber(string key) => Metadata.ContainsKey(key) ? Number(key) : null;
    public bool? OptionalBool(string key) => Metadata.TryGetValue(key, out var v) ? v.Value as bool? ?? throw new AttuneException(Path, key, "must be a bool") : null;

    public T[] Array<T>(string key, GgufType elementType)
    {
        var v = Get(key, GgufType.Array);
        if (v is not T[] a || Metadata[key].ElementType != elementType)
            throw new AttuneException(Path, key, $"must be an array of {elementType}, is an array of {Metadata[key].ElementType}");
        return a;
    }

    object Get(string key, GgufType type)
    {
        if (!Metadata.TryGetValue(key, out var v)) throw new AttuneException(Path, key, "missing");
        if (v.Type != type) throw new AttuneException(Path, key, $"must be {type}, is {v.Type}");
        return v.Value;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _bytes.Dispose();
    }

    /// <summary>Bounds-checked little-endian reads over the mapped file.</summary>
    ref struct Reader(string path, byte* b, long length)
    {
        public long Position;

        ReadOnlySpan<byte> Take(long n, string what)
        {
            if (n < 0 || n > length - Position)
                throw new AttuneException(path, $"truncated at byte {Position} while reading {what}");
            var s = new ReadOnlySpan<byte>(b + Position, (int)n);
            Position += n;
            return s;
        }

        public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
        public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
        public long I64(string what) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, what));

        public string Str(string what)
        {
            ulong n = U64(what);
            if (n > MaxString) throw new AttuneException(path, $"{what}: string of {n} bytes at byte {Position} (corrupt?)");
            long at = Position;
            return Utf8Input.Decode(Take((long)n, what), path, at, what);
        }

        public GgufValue Value(GgufType type, string key)
        {
            switch (type)
            {
                case GgufType.Array:
                {
                    var et = (GgufType)U32($"element type of {key}");
                    ulong n = U64($"length of {key}");
                    if (n > (ulong)(length - Position)) throw new AttuneException(path, key, $"array of {n} elements cannot fit in the file");
                    return new GgufValue(GgufType.Array, ArrayOf(et, (int)n, key), et);
                }
                case GgufType.String: return new GgufValue(type, Str(key));
                default: return new GgufValue(type, Scalar(type, key));
            }
        }

        object Scalar(GgufType type, string key) => type switch
        {
            GgufType.UInt8 => Take(1, key)[0],
            GgufType.Int8 => (sbyte)Take(1, key)[0],
            GgufType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, key)),
            GgufType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Take(2, key)),
            GgufType.UInt32 => U32(key),
            GgufType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Take(4, key)),
            GgufType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Take(4, key)),
            GgufType.Bool => Take(1, key)[0] != 0,
            GgufType.UInt64 => U64(key),
            GgufType.Int64 => I64(key),
            GgufType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, key)),
            _ => throw new AttuneException(path, key, $"unknown value type {(uint)type}"),
        };

        System.Array ArrayOf(GgufType et, int n, string key)
        {
            switch (et)
            {
                case GgufType.String:
                {
                    var a = new string[n];
                    for (int i = 0; i < n; i++) a[i] = Str(key);
                    return a;
                }
                case GgufType.Int32:
                {
                    var a = new int[n];
                    var s = Take(4L * n, key);
                    for (int i = 0; i < n; i++) a[i] = BinaryPrimitives.ReadInt32LittleEndian(s[(4 * i)..]);
                    return a;
                }
                case GgufType.Float32:
                {
                    var a = new float[n];
                    var s = Take(4L * n, key);
                    for (int i = 0; i < n; i++) a[i] = BinaryPrimitives.ReadSingleLittleEndian(s[(4 * i)..]);
                    return a;
                }
                case GgufType.Array:
                    throw new AttuneException(path, key, "nested arrays are not allowed");
                default:
                {
                    var a = new object[n];
                    for (int i = 0; i < n; i++) a[i] = Scalar(et, key);
                    return a;
                }
            }
        }
    }
}
