using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Tensors;
using Microsoft.Win32.SafeHandles;

namespace Attune.Merging;

public sealed record MergeOptions
{
    /// <summary>One output per λ; several λ are written in one pass over the inputs.</summary>
    public required IReadOnlyList<double> Lambdas { get; init; }
    /// <summary>Output dtype; null keeps each tensor's dtype from the instruct model.</summary>
    public DType? DType { get; init; }
    /// <summary>Which model's tokenizer files and chat template the output carries: "instruct" or "base".</summary>
    public string TokenizerFrom { get; init; } = "instruct";
    public long MaxShardBytes { get; init; } = ShardedSafeTensorsWriter.DefaultMaxShardBytes;
    /// <summary>Elements per streamed chunk (bounds memory whatever the tensor size).</summary>
    public int ChunkElements { get; init; } = 1 << 22;
    /// <summary>How the models are combined; linear partial adaptation by default.</summary>
    public IMergeMethod Method { get; init; } = new LinearMethod();
    /// <summary>Method parameters as written into the recipe (for the record).</summary>
    public IReadOnlyDictionary<string, string> MethodParameters { get; init; } = new Dictionary<string, string>();

    /// <summary>Per-tensor λ (first match wins; see <see cref="TensorRule"/>); unmatched tensors take the run's λ.</summary>
    public IReadOnlyList<TensorRule> Rules { get; init; } = [];

    /// <summary>The λ a tensor gets in the run whose λ is <paramref name="lambda"/>.</summary>
    public double LambdaFor(string tensor, double lambda, int layers)
    {
        foreach (var r in Rules)
            if (r.Matches(tensor)) return r.ValueFor(TensorRule.LayerOf(tensor), layers);
        return lambda;
    }
}

/// <summary>
/// Partial adaptation (linear interpolation) between a base checkpoint and its instruct sibling:
/// M(λ) = W_base + λ·(W_instruct − W_base), computed in f32 as (1 − λ)·W_base + λ·W_instruct so that
/// λ = 0 and λ = 1 reproduce the inputs bit for bit and λ = 0.5 is the element-wise mean. Tensors are
/// streamed in row chunks with positioned reads (not through the memory map), so memory stays
/// bounded whatever the model size; each output folder appears only when complete.
/// What differs between the two models is handled as users meet it: rows beyond the base's vocabulary
/// come from the instruct model (and the output says so), a tied side lends its embedding as lm_head,
/// dtypes may differ; any other mismatch is an error naming the tensor before anything is written.
/// </summary>
public static class PartialAdaptation
{
    /// <summary>The folder name of one λ when several are written: <c>lambda-0.50</c> (<see cref="Models.Lambda.Name"/>).</summary>
    public static string FolderName(double lambda) => new Models.Lambda(lambda).Name;

    /// <summary>One output tensor: where each side's rows come from.</summary>
    internal sealed record Plan(string Name, long[] Shape, string BaseName, IReadOnlyList<string> ModelNames, long BaseRows, DType OutDType)
    {
        public long Elements => Shape.Aggregate(1L, (x, y) => x * y);
        public long Columns => Shape.Length > 1 ? Shape.Skip(1).Aggregate(1L, (x, y) => x * y) : 1;
    }

    /// <summary>
    /// Streams every planned tensor in row chunks, handing each λ's encoded chunk to <paramref name="sink"/>
    /// (output index, tensor, bytes). Shared by the folder merge and the in-memory model, so both hold
    /// the same bytes.
    /// </summary>
    internal delegate void ChunkSink(int output, Plan plan, ReadOnlySpan<byte> bytes);

    internal static void Stream(Checkpoint b, IReadOnlyList<Checkpoint> models, List<Plan> plans, MergeOptions options, ChunkSink sink, IProgress<double>? progress)
    {
        var lambdas = options.Lambdas;
        var method = options.Method;
        int chunkElements = options.ChunkElements;
        int layers = models[0].Config.NumLayers;
        float[] mixed = [];
        byte[] encoded = [];
        using var baseReader = new TensorReader(b.Weights);
        var readers = models.Select(m => new TensorReader(m.Weights)).ToList();
        try
        {
            long total = plans.Sum(p => p.Elements) * (1 + method.StatisticsPasses), done = 0;
            foreach (var p in plans)
            {
                long rows = p.Shape[0], cols = p.Columns;
                long chunkRows = Math.Max(1, chunkElements / Math.Max(1, cols));
                method.BeginTensor(p.Name, p.Elements);
                for (int pass = 0; pass <= method.StatisticsPasses; pass++)
                    for (long r0 = 0; r0 < rows; r0 += chunkRows)
                    {
                        int n = (int)(Math.Min(chunkRows, rows - r0) * cols);
                        var chunks = readers.Select((r, k) => r.Read(p.ModelNames[k], r0 * cols, n)).ToList();
                        // Rows the base does not have (vocabulary extension) are left to the method.
                        long baseElems = Math.Clamp((p.BaseRows - r0) * cols, 0, n);
                        var bas = baseElems > 0 ? baseReader.Read(p.BaseName, r0 * cols, (int)baseElems) : [];
                        if (pass < method.StatisticsPasses)
                        {
                            method.Observe(pass, bas, chunks, n, r0 * cols);
                            done += n;
                            continue;
                        }
                        if (mixed.Length < n) { mixed = new float[n]; encoded = new byte[n * 4]; }
                        for (int k = 0; k < lambdas.Count; k++)
                        {
                            method.Compute(bas, chunks, n, r0 * cols, options.LambdaFor(p.Name, lambdas[k], layers), mixed);
                            int bytes = n * p.OutDType.SizeOf();
                            DTypes.FromSingle(p.OutDType, mixed.AsSpan(0, n), encoded.AsSpan(0, bytes));
                            sink(k, p, encoded.AsSpan(0, bytes));
                        }
                        done += n;
                        progress?.Report((double)done / total);
                    }
            }
        }
        finally
        {
            foreach (var r in readers) r.Dispose();
        }
    }

    /// <summary>Opens the base and the other models and plans the merge (errors name the mismatched field or tensor).</summary>
    internal static (Checkpoint Base, List<Checkpoint> Models, List<Plan> Plans) Open(string basePath, IReadOnlyList<string> modelPaths, MergeOptions options, TextWriter? log)
    {
        if (modelPaths.Count == 0) throw new AttuneException(null, "--instruct", "no model to merge with the base");
        var opened = new List<Checkpoint>();
        try
        {
            var b = Checkpoint.Open(basePath);
            opened.Add(b);
            var models = new List<Checkpoint>();
            foreach (var m in modelPaths) { var c = Checkpoint.Open(m); opened.Add(c); models.Add(c); }
            return (b, models, PlanTensors(b, models, options, log));
        }
        catch
        {
            foreach (var c in opened) c.Dispose();
            throw;
        }
    }

    public static void Merge(string basePath, string instructPath, string outDir, MergeOptions options,
        IProgress<double>? progress = null, TextWriter? log = null) =>
        Merge(basePath, [instructPath], outDir, options, progress, log);

    /// <summary>Merges the base with one or more models (the first is the "instruct" side: config, tokenizer, extra rows).</summary>
    public static void Merge(string basePath, IReadOnlyList<string> modelPaths, string outDir, MergeOptions options,
        IProgress<double>? progress = null, TextWriter? log = null)
    {
        if (options.Method is LinearMethod or SlerpMethod && modelPaths.Count != 1)
            throw new AttuneException(null, "--instruct", $"{options.Method.Name} merges the base with exactly one model");
        if (options.Lambdas.Count == 0) throw new AttuneException(null, "--lambda", "no λ given");
        if (options.TokenizerFrom is not ("instruct" or "base"))
            throw new AttuneException(null, "--tokenizer-from", $"\"{options.TokenizerFrom}\" is not base or instruct");
        if (options.DType is { } dt && dt is not (Tensors.DType.F32 or Tensors.DType.F16 or Tensors.DType.BF16))
            throw new AttuneException(null, "--dtype", "a merged checkpoint holds f32, f16 or bf16 weights");
        var (b, models, plans) = Open(basePath, modelPaths, options, log);
        using var _ = b;
        using var __ = new DisposeAll(models);
        var i = models[0];
        var instructPath = modelPaths[0];
        foreach (var l in options.Lambdas.Concat(options.Rules.SelectMany(r => r.Values)).Where(l => l < 0 || l > 1).Distinct())
            log?.WriteLine($"warning: λ = {l.ToString(CultureInfo.InvariantCulture)} is outside [0, 1]: this extrapolates beyond the two models");

        // The inputs are hashed on a second core while the merge streams; the headers carry same-length
        // placeholders that are patched with the hashes before the outputs are renamed into place.
        string baseHash = new('?', 64), instructHash = string.Join(",", modelPaths.Select(_ => new string('!', 64)));
        var outputs = options.Lambdas.Count == 1 ? [(options.Lambdas[0], outDir)]
            : options.Lambdas.Select(l => (l, Path.Combine(outDir, FolderName(l)))).ToList();
        foreach (var (_, dir) in outputs)
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
                throw new AttuneException(dir, "already exists and is not empty");

        // All outputs are built in temporary folders and renamed only when every one is complete.
        var hashing = Task.Run(() => (WeightsSha256(b), string.Join(",", models.Select(WeightsSha256))));
        var temps = outputs.Select(o => TempSibling(o.Item2)).ToList();
        var writers = new List<ShardedSafeTensorsWriter>();
        try
        {
            var extraRows = plans.Where(p => p.Shape[0] > p.BaseRows).Select(p => $"{p.Name}: rows {p.BaseRows}..{p.Shape[0] - 1} from instruct").ToList();
            for (int k = 0; k < outputs.Count; k++)
            {
                var recipe = Recipe(basePath, modelPaths, baseHash, instructHash, outputs[k].Item1, options, extraRows);
                var folder = new CheckpointWriter(temps[k]);
                WriteSideFiles(folder, b, i, options, plans);
                writers.Add(folder.Weights(plans.Select(p => new TensorSpec(p.Name, p.OutDType, p.Shape)).ToList(), options.MaxShardBytes,
                    new Dictionary<string, string> { ["attune.merge"] = recipe }));
            }
            foreach (var row in extraRows) log?.WriteLine($"note: {row} (beyond the base's vocabulary)");

            Stream(b, models, plans, options, (k, p, bytes) => writers[k].WritePart(p.Name, bytes), progress);
            foreach (var w in writers) w.Commit();
            var (realBase, realInstruct) = hashing.GetAwaiter().GetResult();
            for (int k = 0; k < outputs.Count; k++)
            {
                foreach (var file in Directory.GetFiles(temps[k], "*.safetensors"))
                    PatchHeader(file, [(baseHash, realBase), (instructHash, realInstruct)]);
                File.WriteAllText(Path.Combine(temps[k], "attune_merge.yml"),
                    Recipe(basePath, modelPaths, realBase, realInstruct, outputs[k].Item1, options, extraRows));
                if (Mergekit.MergekitEquivalent.Write(basePath, modelPaths, outputs[k].Item1, options) is { } mergekit)
                    File.WriteAllText(Path.Combine(temps[k], "mergekit_config.yml"), mergekit);
            }
            for (int k = 0; k < outputs.Count; k++)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outputs[k].Item2))!);
                if (Directory.Exists(outputs[k].Item2)) Directory.Delete(outputs[k].Item2);
                Directory.Move(temps[k], outputs[k].Item2);
            }
        }
        catch
        {
            try { hashing.Wait(); } catch (AggregateException) { }
            foreach (var w in writers) w.Dispose();
            foreach (var t in temps) try { if (Directory.Exists(t)) Directory.Delete(t, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>(1 − λ)·base + λ·instruct element-wise; positions past the base's length copy the instruct value.</summary>
    public static float[] Interpolate(ReadOnlySpan<float> b, ReadOnlySpan<float> instruct, float lambda)
    {
        var r = new float[instruct.Length];
        Interpolate(b, instruct, lambda, r);
        return r;
    }

    /// <summary>As above, into <paramref name="r"/> (at least instruct.Length long).</summary>
    public static void Interpolate(ReadOnlySpan<float> b, ReadOnlySpan<float> instruct, float lambda, Span<float> r)
    {
        float keep = 1f - lambda;
        int k = 0;
        // Two products and a sum, each rounded, exactly as the scalar formula (no fused multiply-add),
        // so every path and machine gives the same bits.
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
        {
            var vk = System.Runtime.Intrinsics.Vector512.Create(keep);
            var vl = System.Runtime.Intrinsics.Vector512.Create(lambda);
            for (; k + 16 <= b.Length; k += 16)
                (vk * System.Runtime.Intrinsics.Vector512.Create(b[k..]) + vl * System.Runtime.Intrinsics.Vector512.Create(instruct[k..])).CopyTo(r[k..]);
        }
        for (; k < b.Length; k++) r[k] = keep * b[k] + lambda * instruct[k];
        instruct[b.Length..].CopyTo(r[b.Length..]);
    }

    static List<Plan> PlanTensors(Checkpoint b, IReadOnlyList<Checkpoint> models, MergeOptions options, TextWriter? log)
    {
        var bc = b.Config;
        var i = models[0];
        var ic = i.Config;
        var problems = new List<string>();
        foreach (var m in models)
        {
            var mc = m.Config;
            var label = models.Count == 1 ? "instruct" : m.Directory;
            void Same<T>(string field, T x, T y) { if (!EqualityComparer<T>.Default.Equals(x, y)) problems.Add($"{field}: base {x}, {label} {y}"); }
            Same("architectures", bc.ArchitectureName, mc.ArchitectureName);
            Same("hidden_size", bc.HiddenSize, mc.HiddenSize);
            Same("num_hidden_layers", bc.NumLayers, mc.NumLayers);
            Same("num_attention_heads", bc.NumHeads, mc.NumHeads);
            Same("num_key_value_heads", bc.NumKvHeads, mc.NumKvHeads);
            Same("head_dim", bc.HeadDim, mc.HeadDim);
            Same("intermediate_size", bc.IntermediateSize, mc.IntermediateSize);
            if (mc.VocabSize < bc.VocabSize) problems.Add($"vocab_size: {label} has {mc.VocabSize}, smaller than the base's {bc.VocabSize}");
            if (mc.VocabSize != ic.VocabSize) problems.Add($"vocab_size: {m.Directory} has {mc.VocabSize}, {i.Directory} {ic.VocabSize}");
        }
        if (problems.Count > 0)
            throw new AttuneException(i.Directory, $"cannot merge with {b.Directory}: {string.Join("; ", problems)}");

        var plans = new List<Plan>();
        bool baseLendsHead = false;
        foreach (var t in TensorLayout.Expected(ic).Where(t => !t.Optional))
        {
            string baseName = t.Name;
            var modelNames = new List<string>();
            if (t.Name == TensorLayout.LmHead && (!b.Weights.Contains(TensorLayout.LmHead) || bc.TieWordEmbeddings))
            {
                // A tied side has no separate head: its embedding is its head.
                baseName = TensorLayout.Embedding;
                baseLendsHead = true;
            }
            foreach (var m in models)
                modelNames.Add(t.Name == TensorLayout.LmHead && !m.Weights.Contains(TensorLayout.LmHead) ? TensorLayout.Embedding : t.Name);
            if (!b.Weights.TryGetEntry(baseName, out var be))
            {
                problems.Add($"tensor {t.Name}: missing in the base model");
                continue;
            }
            var ie = i.Weights.Entry(modelNames[0]);
            bool vocabRows = t.Name is TensorLayout.Embedding or TensorLayout.LmHead;
            bool sameTail = be.Shape.Skip(1).SequenceEqual(ie.Shape.Skip(1));
            if (!sameTail || be.Shape.Length != ie.Shape.Length || (!vocabRows && be.Shape[0] != ie.Shape[0]) || be.Shape[0] > ie.Shape[0])
            {
                problems.Add($"tensor {t.Name}: base shape [{string.Join(", ", be.Shape)}] vs instruct [{string.Join(", ", ie.Shape)}]");
                continue;
            }
            for (int k = 1; k < models.Count; k++)
                if (!models[k].Weights.Entry(modelNames[k]).Shape.SequenceEqual(ie.Shape))
                    problems.Add($"tensor {t.Name}: {models[k].Directory} has shape [{string.Join(", ", models[k].Weights.Entry(modelNames[k]).Shape)}], {i.Directory} [{string.Join(", ", ie.Shape)}]");
            plans.Add(new Plan(t.Name, ie.Shape, baseName, modelNames, be.Shape[0], options.DType ?? ie.DType));
        }
        if (baseLendsHead)
            log?.WriteLine("note: the base model ties its embeddings and the instruct model does not; the base's embedding serves as its lm_head");
        if (bc.TieWordEmbeddings != ic.TieWordEmbeddings && ic.TieWordEmbeddings)
            log?.WriteLine("note: the instruct model ties its embeddings: the output does too, and the base's separate lm_head is not used");
        if (problems.Count > 0)
            throw new AttuneException(i.Directory, $"cannot merge with {b.Directory}: {string.Join("; ", problems)}");
        return plans;
    }

    static string Recipe(string basePath, IReadOnlyList<string> modelPaths, string baseHash, string modelHashes, double lambda, MergeOptions o, List<string> extraRows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Written by attune merge: how this checkpoint was made.");
        sb.AppendLine($"method: {o.Method.Name}");
        sb.AppendLine($"lambda: {lambda.ToString("R", CultureInfo.InvariantCulture)}");
        if (o.Method is LinearMethod) sb.AppendLine("formula: (1 - lambda) * base + lambda * instruct, in f32");
        foreach (var (k, v) in o.MethodParameters) sb.AppendLine($"{k}: {v}");
        sb.AppendLine($"base: {Quote(Path.GetFullPath(basePath))}");
        sb.AppendLine($"base_sha256: {baseHash}");
        if (modelPaths.Count == 1)
        {
            sb.AppendLine($"instruct: {Quote(Path.GetFullPath(modelPaths[0]))}");
            sb.AppendLine($"instruct_sha256: {modelHashes}");
        }
        else
        {
            var hashes = modelHashes.Split(',');
            sb.AppendLine("models:");
            for (int k = 0; k < modelPaths.Count; k++)
                sb.AppendLine($"  - path: {Quote(Path.GetFullPath(modelPaths[k]))}\n    sha256: {hashes[k]}");
        }
        sb.AppendLine($"dtype: {(o.DType?.SafeTensorsName() ?? "from instruct")}");
        sb.AppendLine($"tokenizer_from: {o.TokenizerFrom}");
        if (o.Rules.Count > 0)
        {
            sb.AppendLine("rules:");
            foreach (var r in o.Rules)
                sb.AppendLine($"  - match: {Quote(r.Pattern)}\n    lambda: {(r.Values.Count == 1 ? r.Values[0].ToString("R", CultureInfo.InvariantCulture) : "[" + string.Join(", ", r.Values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]")}");
        }
        if (extraRows.Count > 0)
        {
            sb.AppendLine("rows_from_instruct:");
            foreach (var r in extraRows) sb.AppendLine($"  - {Quote(r)}");
        }
        return sb.ToString();
    }

    static string Quote(string s) => JsonSerializer.Serialize(s);

    sealed class DisposeAll(IEnumerable<IDisposable> items) : IDisposable
    {
        public void Dispose() { foreach (var i in items) i.Dispose(); }
    }

    /// <summary>SHA-256 over the checkpoint's weight files, in name order (each file hashed in full).</summary>
    internal static string WeightsSha256(Checkpoint c)
    {
        using var all = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var f in c.Weights.Files.Select(f => f.Path).Order(StringComparer.Ordinal))
        {
            using var s = File.OpenRead(f);
            int n;
            while ((n = s.Read(buffer)) > 0) all.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(all.GetHashAndReset());
    }

    /// <summary>Replaces same-length ASCII placeholders inside a safetensors header (the data area is untouched).</summary>
    static void PatchHeader(string file, (string Placeholder, string Value)[] patches)
    {
        using var fs = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> len = stackalloc byte[8];
        fs.ReadExactly(len);
        var header = new byte[System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(len)];
        fs.ReadExactly(header);
        var text = Encoding.UTF8.GetString(header);
        foreach (var (placeholder, value) in patches)
        {
            if (value.Length != placeholder.Length) throw new InvalidOperationException("patch must keep the header length");
            text = text.Replace(placeholder, value, StringComparison.Ordinal);
        }
        var patched = Encoding.UTF8.GetBytes(text);
        if (patched.Length != header.Length) throw new InvalidOperationException("patch changed the header length");
        fs.Position = 8;
        fs.Write(patched);
        fs.Flush(flushToDisk: true);
    }

    static void WriteSideFiles(CheckpointWriter folder, Checkpoint b, Checkpoint i, MergeOptions o, List<Plan> plans)
    {
        var dtypes = plans.Select(p => p.OutDType).Distinct().ToList();
        i.CopyConfigTo(folder, dtypes.Count == 1 ? dtypes[0] : null);
        (o.TokenizerFrom == "base" ? b : i).CopyTokenizerFilesTo(folder);
    }

    static string TempSibling(string dir)
    {
        var full = Path.GetFullPath(dir);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        return temp;
    }

    /// <summary>Positioned reads of tensor element ranges, converted to f32 (no memory map, so memory stays bounded).</summary>
    sealed class TensorReader(SafeTensorsIndex index) : IDisposable
    {
        readonly Dictionary<string, SafeFileHandle> _handles = [];
        byte[] _buffer = [];

        public float[] Read(string name, long firstElement, int count)
        {
            var e = index.Entry(name);
            int size = e.DType.SizeOf();
            var path = index.FileOf(name);
            if (!_handles.TryGetValue(path, out var h)) _handles[path] = h = File.OpenHandle(path);
            int bytes = count * size;
            if (_buffer.Length < bytes) _buffer = new byte[bytes];
            long offset = e.Offset + firstElement * size;
            int got = 0;
            while (got < bytes)
            {
                int n = RandomAccess.Read(h, _buffer.AsSpan(got, bytes - got), offset + got);
                if (n == 0) throw new AttuneException(path, $"tensor {name}", "file ended early");
                got += n;
            }
            var f = new float[count];
            DTypes.ToSingle(e.DType, _buffer.AsSpan(0, bytes), f);
            return f;
        }

        public void Dispose()
        {
            foreach (var h in _handles.Values) h.Dispose();
        }
    }
}
