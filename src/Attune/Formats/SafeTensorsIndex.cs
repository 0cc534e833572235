using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Tensors;

namespace Attune.Formats;

/// <summary>
/// The tensors of a checkpoint folder as one namespace: either a single <c>model.safetensors</c>,
/// or the shards that <c>model.safetensors.index.json</c> names in its <c>weight_map</c>.
/// </summary>
public sealed class SafeTensorsIndex : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    readonly Dictionary<string, SafeTensorsFile> _byTensor;
    readonly List<SafeTensorsFile> _files;

    public IReadOnlyList<SafeTensorsFile> Files => _files;
    /// <summary>Every tensor name, in file then header order.</summary>
    public IReadOnlyList<string> Names { get; }

    SafeTensorsIndex(List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byTensor, List<string> names)
    {
        _files = files;
        _byTensor = byTensor;
        Names = names;
    }

    /// <summary>
    /// Opens a folder (index or single file), an index file, or one .safetensors file; mapped, or read into memory
    /// (<paramref name="inMemory"/>: weights for inference, see <see cref="FileBytes"/>).
    /// </summary>
    public static SafeTensorsIndex Open(string path, bool inMemory = false)
    {
        if (Directory.Exists(path))
        {
            var index = Path.Combine(path, IndexFileName);
            if (File.Exists(index)) return OpenIndex(index, inMemory);
            var single = Path.Combine(path, SingleFileName);
            if (File.Exists(single)) return OpenFiles([single], inMemory);
            var any = Directory.GetFiles(path, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
            if (any.Length == 1) return OpenFiles(any, inMemory);
            throw new AttuneException(path, any.Length == 0
                ? $"no {SingleFileName} or {IndexFileName} in this folder"
                : $"several .safetensors files but no {IndexFileName} to say which tensors are where");
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return OpenIndex(path, inMemory);
        return OpenFiles([path], inMemory);
    }

    static SafeTensorsIndex OpenIndex(string indexPath, bool inMemory)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(Utf8Input.ReadAllText(indexPath), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw new AttuneException(indexPath, $"not valid JSON: {e.Message}"); }
        if (root is not JsonObject o || o["weight_map"] is not JsonObject map)
            throw new AttuneException(indexPath, "weight_map", "missing or not an object");
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shardNames = new List<string>();
        var wanted = new List<(string Tensor, string Shard)>();
        foreach (var (tensor, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue<string>(out var shard))
                throw new AttuneException(indexPath, $"weight_map.{tensor}", "must be a file name");
            if (shard.Contains('/') || shard.Contains('\\') || shard == "..")
                throw new AttuneException(indexPath, $"weight_map.{tensor}", $"shard \"{shard}\" must be a file in the same folder");
            if (!shardNames.Contains(shard)) shardNames.Add(shard);
            wanted.Add((tensor, shard));
        }
        foreach (var shard in shardNames)
        {
            if (!File.Exists(Path.Combine(dir, shard)))
            {
                var first = wanted.First(w => w.Shard == shard).Tensor;
                throw new AttuneException(indexPath, $"weight_map.{first}", $"points to missing shard {shard}");
            }
        }
        var files = new List<SafeTensorsFile>();
        try
        {
            var byShard = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var shard in shardNames)
            {
                var f = SafeTensorsFile.Open(Path.Combine(dir, shard), inMemory);
                files.Add(f);
                byShard[shard] = f;
            }
            var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            var names = new List<string>();
            foreach (var (tensor, shard) in wanted)
            {
                var f = byShard[shard];
                if (!f.Contains(tensor))
                    throw new AttuneException(indexPath, $"weight_map.{tensor}", $"shard {shard} has no such tensor");
                byTensor[tensor] = f;
                names.Add(tensor);
            }
            return new SafeTensorsIndex(files, byTensor, names);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    static SafeTensorsIndex OpenFiles(string[] paths, bool inMemory)
    {
        var files = new List<SafeTensorsFile>();
        try
        {
            var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            var names = new List<string>();
            foreach (var p in paths)
            {
                var f = SafeTensorsFile.Open(p, inMemory);
                files.Add(f);
                foreach (var e in f.Entries)
                {
                    if (!byTensor.TryAdd(e.Name, f))
                        throw new AttuneException(p, $"tensor {e.Name}", $"also in {byTensor[e.Name].Path}");
                    names.Add(e.Name);
                }
            }
            return new SafeTensorsIndex(files, byTensor, names);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <summary>The file that holds a tensor (for positioned reads that keep memory bounded).</summary>
    public string FileOf(string name) =>
        _byTensor.TryGetValue(name, out var f) ? f.Path : throw new AttuneException(null, $"tensor {name}", "not in the checkpoint");

    public TensorEntry Entry(string name) =>
        _byTensor.TryGetValue(name, out var f) && f.TryGetEntry(name, out var e) ? e
            : throw new AttuneException(null, $"tensor {name}", "not in the checkpoint");

    public bool TryGetEntry(string name, out TensorEntry entry)
    {
        entry = null!;
        return _byTensor.TryGetValue(name, out var f) && f.TryGetEntry(name, out entry);
    }

    public TensorView GetView(string name) =>
        _byTensor.TryGetValue(name, out var f) ? f.GetView(name)
            : throw new AttuneException(null, $"tensor {name}", "not in the checkpoint");

    /// <summary>Metadata of the first file (shards written by one tool carry the same).</summary>
    public IReadOnlyDictionary<string, string> Metadata =>
        _files.Count > 0 ? _files[0].Metadata : new Dictionary<string, string>();

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

/// <summary>
/// Writes a checkpoint's tensors to a folder: one <c>model.safetensors</c> when they fit in
/// <c>maxShardBytes</c>, otherwise <c>model-0000i-of-0000n.safetensors</c> shards and
/// <c>model.safetensors.index.json</c> (written last, so an index never names a missing shard).
/// </summary>
public sealed class ShardedSafeTensorsWriter : IDisposable
{
    public const long DefaultMaxShardBytes = 5L * 1024 * 1024 * 1024;

    readonly string _dir;
    readonly List<List<TensorSpec>> _shards;
    readonly IReadOnlyDictionary<string, string>? _metadata;
    readonly List<string> _shardFiles;
    readonly Dictionary<string, int> _shardOf = new(StringComparer.Ordinal);
    SafeTensorsWriter? _current;
    int _currentIndex = -1;
    readonly List<string> _committed = [];
    bool _done;

    public IReadOnlyList<string> ShardFiles => _shardFiles;

    public ShardedSafeTensorsWriter(string dir, IReadOnlyList<TensorSpec> specs,
        IReadOnlyDictionary<string, string>? metadata = null, long maxShardBytes = DefaultMaxShardBytes)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes));
        _dir = dir;
        _metadata = metadata;
        _shards = [];
        List<TensorSpec>? cur = null;
        long curBytes = 0;
        foreach (var s in specs)
        {
            // A tensor larger than the limit gets a shard of its own, as Hugging Face does.
            if (cur is null || (curBytes > 0 && curBytes + s.ByteLength > maxShardBytes))
            {
                cur = [];
                _shards.Add(cur);
                curBytes = 0;
            }
            cur.Add(s);
            curBytes += s.ByteLength;
        }
        if (_shards.Count == 0) _shards.Add([]);
        int n = _shards.Count;
        _shardFiles = n == 1
            ? [SafeTensorsIndex.SingleFileName]
            : Enumerable.Range(1, n).Select(i => $"model-{i:D5}-of-{n:D5}.safetensors").ToList();
        for (int i = 0; i < n; i++)
            foreach (var s in _shards[i]) _shardOf[s.Name] = i;
        Directory.CreateDirectory(dir);
    }

    public void Write(string name, ReadOnlySpan<byte> data)
    {
        Switch(name);
        _current!.Write(name, data);
    }

    /// <summary>Writes the next piece of a tensor (see <see cref="SafeTensorsWriter.WritePart"/>).</summary>
    public void WritePart(string name, ReadOnlySpan<byte> data)
    {
        Switch(name);
        _current!.WritePart(name, data);
    }

    void Switch(string name)
    {
        if (!_shardOf.TryGetValue(name, out var shard)) throw new InvalidOperationException($"tensor {name} was not declared");
        if (shard != _currentIndex)
        {
            if (shard != _currentIndex + 1) throw new InvalidOperationException($"tensor {name} written out of order");
            CommitCurrent();
            _currentIndex = shard;
            _current = new SafeTensorsWriter(Path.Combine(_dir, _shardFiles[shard]), _shards[shard], _metadata);
        }
    }

    public void Write<T>(string name, ReadOnlySpan<T> data) where T : unmanaged =>
        Write(name, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));

    void CommitCurrent()
    {
        if (_current is null) return;
        _current.Commit();
        _current.Dispose();
        _committed.Add(_shardFiles[_currentIndex]);
        _current = null;
    }

    public void Commit()
    {
        if (_currentIndex < 0 && _shards.Count == 1 && _shards[0].Count == 0)
        {
            _currentIndex = 0;
            _current = new SafeTensorsWriter(Path.Combine(_dir, _shardFiles[0]), _shards[0], _metadata);
        }
        if (_currentIndex != _shards.Count - 1 || (_current is not null && _current.Next is not null))
            throw new InvalidOperationException("not every tensor was written");
        CommitCurrent();
        if (_shards.Count > 1)
        {
            var map = new JsonObject();
            for (int i = 0; i < _shards.Count; i++)
                foreach (var s in _shards[i]) map[s.Name] = _shardFiles[i];
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = _shards.Sum(sh => sh.Sum(s => s.ByteLength)) },
                ["weight_map"] = map,
            };
            AtomicFile.WriteAllText(Path.Combine(_dir, SafeTensorsIndex.IndexFileName),
                index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        _done = true;
    }

    public void Dispose()
    {
        _current?.Dispose();
        if (!_done)
            foreach (var f in _committed) AtomicFile.TryDelete(Path.Combine(_dir, f));
    }
}
