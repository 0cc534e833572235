using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Attune.Evaluation.LlamaCpp;

/// <summary>
/// A GGUF model run by llama.cpp in this process (LLamaSharp with its CPU backend): tokenization, and logits of
/// tokens appended to numbered sequences that share one context (llama.cpp's sequence ids), with sequence copies
/// for shared prefixes. The KV cache is kept in f32 and flash attention off, so the numbers are llama.cpp's
/// reference path. Not thread-safe: one caller at a time.
/// </summary>
public sealed class LlamaCppModel : IDisposable
{
    static readonly object LoadLock = new();
    static bool s_configured;

    readonly LLamaWeights _weights;
    readonly LLamaContext _context;
    readonly LLamaBatch _batch = new();

    public string Path { get; }
    public int VocabSize { get; }
    public int ContextSize { get; }
    public int Sequences { get; }
    /// <summary>llama.cpp's architecture name (general.architecture).</summary>
    public string Architecture { get; }
    public int? EndOfText { get; }
    public int? BeginOfText { get; }

    LlamaCppModel(string path, LLamaWeights weights, LLamaContext context, int contextSize, int sequences)
    {
        Path = path;
        _weights = weights;
        _context = context;
        ContextSize = contextSize;
        Sequences = sequences;
        VocabSize = weights.NativeHandle.Vocab.Count;
        Architecture = weights.Metadata.TryGetValue("general.architecture", out var a) ? a : "?";
        EndOfText = weights.NativeHandle.Vocab.EOS is { } eos ? (int)eos : null;
        BeginOfText = weights.NativeHandle.Vocab.BOS is { } bos ? (int)bos : null;
    }

    /// <summary>The context length the model was trained with (its GGUF's context_length).</summary>
    public int TrainedContext { get; private init; }

    /// <summary>
    /// Loads <paramref name="path"/> with a KV cache of <paramref name="contextSize"/> positions shared by
    /// <paramref name="sequences"/> sequences (f32 for exact comparisons, else llama.cpp's default f16); a file
    /// llama.cpp cannot load is one line naming it.
    /// </summary>
    public static LlamaCppModel Load(string path, int contextSize = 4096, int sequences = 1, int? threads = null, bool f32Cache = true)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        lock (LoadLock)
        {
            if (!s_configured)
            {
                // llama.cpp logs every load to stderr; Attune reports problems itself.
                NativeLibraryConfig.All.WithLogCallback((level, message) => { });
                s_configured = true;
            }
        }
        int t = threads ?? Environment.ProcessorCount;
        var p = new ModelParams(path)
        {
            ContextSize = (uint)contextSize,
            GpuLayerCount = 0,
            Threads = t,
            BatchThreads = t,
            BatchSize = 512,
            UBatchSize = 512,
            SeqMax = (uint)sequences,
            TypeK = f32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
            TypeV = f32Cache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
            FlashAttention = false,
            // One pool of positions for all sequences (a copied prefix is shared, not duplicated), and sliding-window
            // layers that keep every position, so sequences can be cut back and copied.
            KVUnified = true,
            SwaFull = true,
        };
        LLamaWeights weights;
        try { weights = LLamaWeights.LoadFromFile(p); }
        catch (Exception e) when (IsLlamaCppFailure(e))
        {
            throw new AttuneException(path, $"llama.cpp could not load it ({e.Message.Trim()})");
        }
        LLamaContext? context = null;
        try
        {
            context = weights.CreateContext(p);
            return new LlamaCppModel(path, weights, context, contextSize, sequences) { TrainedContext = weights.ContextSize };
        }
        catch (Exception e)
        {
            context?.Dispose();
            weights.Dispose();
            if (IsLlamaCppFailure(e)) throw new AttuneException(path, $"llama.cpp could not make a context of {contextSize} positions for it ({e.Message.Trim()})");
            throw;
        }
    }

    /// <summary>What llama.cpp's loading throws: its own errors, and a native library that is missing or cannot load here.</summary>
    static bool IsLlamaCppFailure(Exception e) =>
        e is LLama.Exceptions.LoadWeightsFailedException or LLama.Exceptions.RuntimeError
            or DllNotFoundException or TypeInitializationException or BadImageFormatException or EntryPointNotFoundException;

    /// <summary>Token ids of <paramref name="text"/>; special tokens written in the text are parsed as such when <paramref name="parseSpecial"/>.</summary>
    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial) =>
        _context.Tokenize(text, addSpecial, parseSpecial).Select(t => (int)t).ToArray();

    /// <summary>
    /// The text of some tokens (special tokens as text): their bytes end to end, decoded as UTF-8 with a replacement
    /// character for each ill-formed sequence, as Hugging Face tokenizers and Attune's do.
    /// </summary>
    public string Detokenize(IReadOnlyList<int> tokens)
    {
        var bytes = new List<byte>();
        Span<byte> buffer = stackalloc byte[256];
        foreach (var t in tokens)
        {
            int n = (int)_weights.NativeHandle.TokenToSpan(t, buffer, 0, special: true);
            if (n > buffer.Length)
            {
                var big = new byte[n];
                _weights.NativeHandle.TokenToSpan(t, big, 0, special: true);
                bytes.AddRange(big);
            }
            else bytes.AddRange(buffer[..n]);
        }
        return System.Text.Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>Every token llama.cpp ends a generation at (end of text, end of turn, …).</summary>
    public IEnumerable<int> EndOfGenerationIds()
    {
        var vocab = _weights.NativeHandle.Vocab;
        for (int t = 0; t < VocabSize; t++)
            if (((LLamaToken)t).IsEndOfGeneration(vocab)) yield return t;
    }

    /// <summary>Forgets every sequence.</summary>
    public void Clear() => _context.NativeHandle.MemoryClear(true);

    /// <summary>Drops positions from <paramref name="from"/> on of a sequence.</summary>
    public void Truncate(int sequence, int from) => _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)sequence, from, -1);

    /// <summary>Makes <paramref name="to"/> share positions [0, <paramref name="length"/>) of <paramref name="from"/> (no recomputation).</summary>
    public void CopyPrefix(int from, int to, int length) =>
        _context.NativeHandle.MemorySequenceCopy((LLamaSeqId)from, (LLamaSeqId)to, 0, length);

    /// <summary>One token appended to one sequence, at its position, with or without its logits row.</summary>
    public readonly record struct Entry(int Sequence, int Position, int Token, bool Logits);

    /// <summary>
    /// Runs <paramref name="entries"/> (any mix of sequences) and returns the logits rows asked for, in order.
    /// Entries are decoded in batches of up to the batch size.
    /// </summary>
    public List<float[]> Decode(IReadOnlyList<Entry> entries)
    {
        var rows = new List<float[]>();
        const int batchSize = 512;
        for (int start = 0; start < entries.Count; start += batchSize)
        {
            _batch.Clear();
            var wanted = new List<int>();
            for (int i = start; i < Math.Min(entries.Count, start + batchSize); i++)
            {
                var e = entries[i];
                if ((uint)e.Token >= (uint)VocabSize)
                    throw new AttuneException(Path, $"token id {e.Token} is outside the model's vocabulary of {VocabSize}");
                if (e.Position >= ContextSize)
                    throw new AttuneException(Path, $"sequence of {e.Position + 1} tokens exceeds the context of {ContextSize} this model was opened with");
                if (e.Logits) wanted.Add(_batch.TokenCount);
                _batch.Add(e.Token, e.Position, (LLamaSeqId)e.Sequence, e.Logits);
            }
            var result = _context.NativeHandle.Decode(_batch);
            if (result != DecodeResult.Ok)
                throw new AttuneException(Path, $"llama.cpp could not decode a batch of {_batch.TokenCount} tokens ({result})");
            foreach (var i in wanted) rows.Add(_context.NativeHandle.GetLogitsIth(i).ToArray());
        }
        return rows;
    }

    /// <summary>Appends <paramref name="tokens"/> to a sequence from <paramref name="position"/>; logits of every position, or of the last.</summary>
    public List<float[]> Append(int sequence, int position, IReadOnlyList<int> tokens, bool allLogits = false) =>
        Decode(tokens.Select((t, i) => new Entry(sequence, position + i, t, allLogits || i == tokens.Count - 1)).ToList());

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
