using System.Buffers.Binary;
using System.Text.Json;
using Attune.Tensors;

namespace Attune.Formats;

/// <summary>Where one tensor lives in a safetensors file (offsets relative to the start of the file).</summary>
public sealed record TensorEntry(string Name, DType DType, long[] Shape, long Offset, long ByteLength)
{
    public long ElementCount => ByteLength / DType.SizeOf();
}

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped read-only. Layout: an 8-byte little-endian header
/// length N, N bytes of JSON (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}</c>),
/// then the data area that the offsets index. Every field is checked before any byte of data is
/// touched, so a truncated or hostile file gives an <see cref="AttuneException"/>, never an
/// out-of-bounds read.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Headers above this size are refused (the reference implementation uses the same bound).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    readonly FileBytes _bytes;
    readonly byte* _base;
    readonly Dictionary<string, TensorEntry> _entries;
    bool _disposed;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<TensorEntry> Entries { get; }
    public long FileLength { get; }

    SafeTensorsFile(string path, FileBytes bytes, byte* basePtr,
        long length, List<TensorEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _bytes = bytes;
        _base = basePtr;
        FileLength = length;
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    /// <summary>Opens a .safetensors file: mapped, or read into memory (<paramref name="inMemory"/>: weights for inference, see <see cref="FileBytes"/>).</summary>
    public static SafeTensorsFile Open(string path, bool inMemory = false)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        long length;
        try { length = FileLinks.Resolve(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new AttuneException(path, $"cannot read: {e.Message}"); }
        if (length < 8)
            throw new AttuneException(path, $"file is {length} bytes, too short for the 8-byte header length");

        var bytes = FileBytes.Open(path, length, inMemory);
        try
        {
            byte* basePtr = bytes.Pointer;
            var (entries, metadata) = ParseHeader(path, new ReadOnlySpan<byte>(basePtr, 8), length, basePtr);
            return new SafeTensorsFile(path, bytes, basePtr, length, entries, metadata);
        }
        catch
        {
            bytes.Dispose();
            throw;
        }
    }

    static (List<TensorEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> lengthBytes, long fileLength, byte* basePtr)
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (n > (ulong)MaxHeaderBytes)
            throw new AttuneException(path, $"header length {n} bytes is above the {MaxHeaderBytes}-byte limit (corrupt file?)");
        if (n > (ulong)(fileLength - 8))
            throw new AttuneException(path, $"header length {n} bytes runs past the end of the {fileLength}-byte file (truncated?)");
        if (n < 2)
            throw new AttuneException(path, $"header length {n} bytes is too short for a JSON object");
        long dataStart = 8 + (long)n;
        long dataLength = fileLength - dataStart;
        var header = new ReadOnlySpan<byte>(basePtr + 8, (int)n).ToArray();
        Utf8Input.Check(header, path, 8, "header");

        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e)
        { throw new AttuneException(path, $"header is not valid JSON: {e.Message}"); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new AttuneException(path, "header is not a JSON object");
            var entries = new List<TensorEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                    throw new AttuneException(path, $"tensor {prop.Name}", "appears twice in the header");
                if (prop.Name == "__metadata__")
                {
                    ParseMetadata(path, prop.Value, metadata);
                    continue;
                }
                entries.Add(ParseEntry(path, prop.Name, prop.Value, dataStart, dataLength));
            }
            CheckNoOverlap(path, entries);
            return (entries, metadata);
        }
    }

    static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw new AttuneException(path, "__metadata__", "must be an object of strings");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw new AttuneException(path, $"__metadata__.{m.Name}", "must be a string");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                throw new AttuneException(path, $"__metadata__.{m.Name}", "appears twice");
        }
    }

    static TensorEntry ParseEntry(string path, string name, JsonElement value, long dataStart, long dataLength)
    {
        var where = $"tensor {name}";
        if (value.ValueKind != JsonValueKind.Object)
            throw new AttuneException(path, where, "header entry is not an object");
        if (!value.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new AttuneException(path, where, "missing string field \"dtype\"");
        var dtypeName = dt.GetString()!;
        if (!DTypes.TryParseSafeTensors(dtypeName, out var dtype))
            throw new AttuneException(path, where, $"unknown dtype \"{dtypeName}\" (Attune reads F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
        if (!value.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new AttuneException(path, where, "missing array field \"shape\"");
        var shape = new long[sh.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw new AttuneException(path, where, $"shape[{i}] is not a non-negative integer");
            shape[i++] = dim;
            try { elements = checked(elements * dim); }
            catch (OverflowException) { throw new AttuneException(path, where, "shape has more elements than any file can hold"); }
        }
        if (!value.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new AttuneException(path, where, "missing field \"data_offsets\" ([begin, end])");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new AttuneException(path, where, "data_offsets must be two integers with 0 <= begin <= end");
        long expected;
        try { expected = checked(elements * dtype.SizeOf()); }
        catch (OverflowException) { throw new AttuneException(path, where, "shape has more elements than any file can hold"); }
        if (end - begin != expected)
            throw new AttuneException(path, where,
                $"shape [{string.Join(", ", shape)}] × {dtypeName} is {expected} bytes but data_offsets span {end - begin}");
        if (end > dataLength)
            throw new AttuneException(path, where,
                $"data_offsets [{begin}, {end}] run past the {dataLength}-byte data area (truncated file?)");
        return new TensorEntry(name, dtype, shape, dataStart + begin, end - begin);
    }

    static void CheckNoOverlap(string path, List<TensorEntry> entries)
    {
        var sorted = entries.Where(e => e.ByteLength > 0).OrderBy(e => e.Offset).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            var a = sorted[i - 1];
            var b = sorted[i];
            if (b.Offset < a.Offset + a.ByteLength)
                throw new AttuneException(path, $"tensor {b.Name}", $"data overlaps tensor {a.Name}");
        }
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public bool TryGetEntry(string name, out TensorEntry entry) => _entries.TryGetValue(name, out entry!);

    /// <summary>A zero-copy view of a tensor.</summary>
    public TensorView GetView(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_entries.TryGetValue(name, out var e))
            throw new AttuneException(Path, $"tensor {name}", "not in this file");
        return new TensorView(e.Name, e.DType, e.Shape, _base + e.Offset, e.ByteLength);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _bytes.Dispose();
    }
}
