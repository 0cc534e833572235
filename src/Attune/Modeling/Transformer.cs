using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>Next-token logits of some rows of a forward pass; valid until the next forward.</summary>
public readonly struct Logits(float[] buffer, int rows, int vocab)
{
    public int Rows => rows;
    public int Vocab => vocab;
    public ReadOnlySpan<float> Row(int i) =>
        (uint)i < (uint)rows ? buffer.AsSpan(i * vocab, vocab) : throw new ArgumentOutOfRangeException(nameof(i));
}

/// <summary>
/// The decoder-only transformer of the Llama family, forward pass, reading top to bottom like
/// the equations: embed → per layer [RMSNorm → q,k,v (+bias) → (q/k norm) → RoPE → causal GQA
/// attention over the KV cache → o → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm →
/// lm_head. Rows of one call may belong to different sequences (each with its own cache), so the
/// same code runs a prompt's prefill and a batch of decode steps. One call at a time per instance.
/// </summary>
public sealed unsafe class Transformer
{
    readonly Rope _rope;
    readonly WorkerPool _pool;
    readonly MatMul _mm = new();
    readonly Attention _attention;
    readonly RunState _s;

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    public Transformer(ModelWeights weights, WorkerPool? pool = null)
    {
        Weights = weights;
        Config = weights.Config;
        _pool = pool ?? WorkerPool.Shared;
        _rope = new Rope(Config, weights.RopeInterleaved, weights.RopeFactors);
        _s = new RunState(Config);
        _attention = new Attention(this);
    }

    public KvCache NewCache(int capacity) => new(Config, capacity);

    /// <summary>Appends <paramref name="tokens"/> to one sequence; logits for the last position, or for all.</summary>
    public Logits Forward(KvCache cache, ReadOnlySpan<int> tokens, bool allLogits = false)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        var caches = new KvCache[tokens.Length];
        Array.Fill(caches, cache);
        return Run(caches, tokens, allLogits ? null : [tokens.Length - 1]);
    }

    /// <summary>Appends <paramref name="tokens"/> to one sequence; logits for positions from <paramref name="firstLogitRow"/> on.</summary>
    public Logits Forward(KvCache cache, ReadOnlySpan<int> tokens, int firstLogitRow)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        if (firstLogitRow < 0 || firstLogitRow >= tokens.Length) throw new ArgumentOutOfRangeException(nameof(firstLogitRow));
        var caches = new KvCache[tokens.Length];
        Array.Fill(caches, cache);
        return Run(caches, tokens, Enumerable.Range(firstLogitRow, tokens.Length - firstLogitRow).ToArray());
    }

    /// <summary>One new token for each of several sequences (batched decode); logits row i is sequence i's.</summary>
    public Logits ForwardBatch(ReadOnlySpan<KvCache> caches, ReadOnlySpan<int> tokens)
    {
        if (caches.Length != tokens.Length) throw new ArgumentException("one token per cache");
        var distinct = new HashSet<KvCache>();
        foreach (var c in caches)
            if (!distinct.Add(c)) throw new ArgumentException("each sequence may appear once in a batch");
        return Run(caches.ToArray(), tokens, null);
    }

    Logits Run(KvCache[] rowCache, ReadOnlySpan<int> tokens, int[]? logitRows)
    {
        var c = Config;
        int t = tokens.Length;
        // Positions: each row continues its own sequence.
        var pos = new int[t];
        var next = new Dictionary<KvCache, int>();
        for (int r = 0; r < t; r++)
        {
            var cache = rowCache[r];
            if (!next.TryGetValue(cache, out var p)) p = cache.Length;
            pos[r] = p;
            next[cache] = p + 1;
            int token = tokens[r];
            if ((uint)token >= (uint)Weights.Embedding.Rows)
                throw new AttuneException(null, $"token id {token} is outside the model's vocabulary of {Weights.Embedding.Rows}");
        }
        foreach (var (cache, end) in next)
        {
            if (end > c.MaxPositionEmbeddings)
                throw new AttuneException(null, $"sequence of {end} tokens exceeds the context window of {c.MaxPositionEmbeddings}");
            cache.Reserve(end);
        }
        _rope.Reserve(next.Values.Max());
        _s.Reserve(t, logitRows?.Length ?? t);

        int hidden = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim, inter = c.IntermediateSize;
        fixed (float* x = _s.X, xb = _s.Xb, q = _s.Q, k = _s.K, v = _s.V, att = _s.Att, hb = _s.Hb, hb2 = _s.Hb2)
        {
            for (int r = 0; r < t; r++)
                Weights.Embedding.RowToSingle(tokens[r], new Span<float>(x + r * hidden, hidden));

            for (int l = 0; l < c.NumLayers; l++)
            {
                var w = Weights.Layers[l];
                // Attention block.
                fixed (float* norm = w.AttnNorm)
                    for (int r = 0; r < t; r++) Ops.RmsNorm(x + r * hidden, norm, xb + r * hidden, hidden, (float)c.RmsNormEps);
                fixed (float* qb = w.QBias, kb = w.KBias, vb = w.VBias)
                {
                    _mm.Run(_pool, w.Q, xb, t, q, qb);
                    _mm.Run(_pool, w.K, xb, t, k, kb);
                    _mm.Run(_pool, w.V, xb, t, v, vb);
                }
                for (int r = 0; r < t; r++)
                {
                    if (w.QNorm is not null)
                        fixed (float* qn = w.QNorm, kn = w.KNorm)
                        {
                            for (int h = 0; h < c.NumHeads; h++) Ops.RmsNorm(q + r * qDim + h * c.HeadDim, qn, q + r * qDim + h * c.HeadDim, c.HeadDim, (float)c.RmsNormEps);
                            for (int h = 0; h < c.NumKvHeads; h++) Ops.RmsNorm(k + r * kvDim + h * c.HeadDim, kn, k + r * kvDim + h * c.HeadDim, c.HeadDim, (float)c.RmsNormEps);
                        }
                    _rope.Apply(q + r * qDim, c.NumHeads, pos[r]);
                    _rope.Apply(k + r * kvDim, c.NumKvHeads, pos[r]);
                    rowCache[r].Write(l, pos[r], k + r * kvDim, v + r * kvDim);
                }
                _attention.Run(_pool, l, q, att, rowCache, pos, t);
                fixed (float* ob = w.OBias) _mm.Run(_pool, w.O, att, t, xb, ob);
                Ops.Add(x, xb, t * hidden);

                // MLP block: down(silu(gate(x)) · up(x)).
                fixed (float* norm = w.FfnNorm)
                    for (int r = 0; r < t; r++) Ops.RmsNorm(x + r * hidden, norm, xb + r * hidden, hidden, (float)c.RmsNormEps);
                fixed (float* gb = w.GateBias, ub = w.UpBias, db = w.DownBias)
                {
                    _mm.Run(_pool, w.Gate, xb, t, hb, gb);
                    _mm.Run(_pool, w.Up, xb, t, hb2, ub);
                    Ops.SiluMul(new Span<float>(hb, t * inter), new ReadOnlySpan<float>(hb2, t * inter), _s.Scratch.AsSpan(0, t * inter));
                    _mm.Run(_pool, w.Down, hb, t, xb, db);
                }
                Ops.Add(x, xb, t * hidden);
            }

            foreach (var (cache, end) in next) cache.Length = end;

            // Final norm and lm_head, only for the rows whose logits are wanted.
            int rows = logitRows?.Length ?? t;
            fixed (float* norm = Weights.FinalNorm, logits = _s.Logits)
            {
                for (int i = 0; i < rows; i++)
                {
                    int r = logitRows?[i] ?? i;
                    Ops.RmsNorm(x + r * hidden, norm, xb + i * hidden, hidden, (float)c.RmsNormEps);
                }
                _mm.Run(_pool, Weights.LmHead, xb, rows, logits);
            }
            return new Logits(_s.Logits, rows, Weights.LmHead.Rows);
        }
    }

    /// <summary>Activation buffers, grown to the largest batch seen and reused.</summary>
    sealed class RunState(ModelConfig c)
    {
        int _rows, _logitRows;
        public float[] X = [], Xb = [], Q = [], K = [], V = [], Att = [], Hb = [], Hb2 = [], Scratch = [], Logits = [];

        public void Reserve(int rows, int logitRows)
        {
            if (rows > _rows)
            {
                _rows = rows;
                int hidden = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim, inter = c.IntermediateSize;
                X = new float[rows * hidden];
                Xb = new float[rows * Math.Max(hidden, 1)];
                Q = new float[rows * qDim];
                K = new float[rows * kvDim];
                V = new float[rows * kvDim];
                Att = new float[rows * qDim];
                Hb = new float[rows * inter];
                Hb2 = new float[rows * inter];
                Scratch = new float[rows * inter];
            }
            if (logitRows > _logitRows)
            {
                _logitRows = logitRows;
                Logits = new float[(long)logitRows * c.VocabSize > int.MaxValue
                    ? throw new AttuneException(null, $"{logitRows} rows of logits over a vocabulary of {c.VocabSize} do not fit in memory; ask for fewer")
                    : logitRows * c.VocabSize];
            }
        }
    }
}
