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
/// The decoder-only transformer forward pass, reading top to bottom like the equations:
/// embed (× √hidden for Gemma) → per layer [(RMSNorm) → q,k,v (+bias) → (q/k norm) → RoPE → causal
/// GQA attention over the KV cache (soft-capped scores, a sliding window on local layers) → o →
/// (RMSNorm) → residual → (RMSNorm) → SwiGLU or GeGLU MLP → (RMSNorm) → residual] → RMSNorm →
/// lm_head (→ soft-cap). Which norms exist is the family's (pre-norms in Llama and Qwen, both in
/// Gemma, post-norms in OLMo 2). Rows of one call may belong to different sequences (each with its
/// own cache), so the same code runs a prompt's prefill and a batch of decode steps. One call at a
/// time per instance.
/// </summary>
public sealed unsafe class Transformer
{
    readonly Rope _rope;
    /// <summary>The sliding-window layers' rotary table when their base differs (Gemma 3); else <see cref="_rope"/>.</summary>
    readonly Rope _localRope;
    readonly WorkerPool _pool;
    readonly MatMul _mm = new();
    readonly Attention _attention;
    readonly RunState _s;
    readonly RowJob _rows;

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    /// <summary>Milliseconds spent per phase since the last reset, when <see cref="Profiling"/> is on (for bench/).</summary>
    public ForwardProfile? Profile { get; private set; }

    public bool Profiling
    {
        get => Profile is not null;
        set => Profile = value ? new ForwardProfile() : null;
    }

    public Transformer(ModelWeights weights, WorkerPool? pool = null)
    {
        Weights = weights;
        Config = weights.Config;
        _pool = pool ?? WorkerPool.Shared;
        _rope = new Rope(Config, weights.RopeInterleaved, weights.RopeFactors);
        _localRope = Rope.Local(Config, weights.RopeInterleaved) ?? _rope;
        _s = new RunState(Config);
        _attention = new Attention(this);
        _rows = new RowJob(this);
    }

    /// <summary>
    /// Whether new caches hold keys and values in bf16 (half the bytes attention reads; scores and outputs still
    /// accumulate in f32). Off by default; ATTUNE_KV_CACHE=bf16 turns it on for a process.
    /// </summary>
    public bool KvCacheBf16 { get; set; } = Environment.GetEnvironmentVariable("ATTUNE_KV_CACHE") == "bf16";

    public KvCache NewCache(int capacity) => new(Config, capacity, KvCacheBf16);

    /// <summary>
    /// A prompt of at least twice this many tokens whose last logits alone are wanted is prefilled in pieces of this
    /// many rows (the last piece takes the remainder, so every piece has 128–255 rows), so the activations held are
    /// those of 255 rows at most whatever the prompt's length. Every piece runs on the packed products and attends from
    /// position 0, so the logits are those of one pass, bit for bit. Models with sliding-window layers are not split:
    /// a window's products start at its first position, which moves with the piece, and their sums would differ in the
    /// last bits.
    /// </summary>
    public const int PrefillPiece = 128;

    /// <summary>Appends <paramref name="tokens"/> to one sequence; logits for the last position, or for all.</summary>
    public Logits Forward(KvCache cache, ReadOnlySpan<int> tokens, bool allLogits = false)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        if (!allLogits && Config.SlidingWindow is null)
            while (tokens.Length >= 2 * PrefillPiece)
            {
                var piece = new KvCache[PrefillPiece];
                Array.Fill(piece, cache);
                Run(piece, tokens[..PrefillPiece], []);
                tokens = tokens[PrefillPiece..];
            }
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

    /// <summary>
    /// Appends tokens to several sequences in one pass (a ragged batch: few-shot items, a question's choices): sequence i
    /// takes the next <paramref name="lengths"/>[i] of <paramref name="tokens"/>. Every linear layer runs once over all
    /// the rows, so many short sequences keep the packed product busy where each alone would not. Logits for the rows
    /// in <paramref name="logitRows"/> (indices into <paramref name="tokens"/>, ascending), or for each sequence's last row.
    /// </summary>
    public Logits ForwardMany(IReadOnlyList<KvCache> caches, ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, int[]? logitRows = null)
    {
        if (caches.Count != lengths.Length) throw new ArgumentException("one length per cache");
        var rowCache = new KvCache[tokens.Length];
        var distinct = new HashSet<KvCache>();
        int row = 0;
        var lastRows = logitRows is null ? new int[lengths.Length] : null;
        for (int i = 0; i < lengths.Length; i++)
        {
            if (!distinct.Add(caches[i])) throw new ArgumentException("each sequence may appear once in a batch");
            if (lengths[i] <= 0 || row + lengths[i] > tokens.Length) throw new ArgumentException("lengths must be positive and cover the tokens");
            Array.Fill(rowCache, caches[i], row, lengths[i]);
            row += lengths[i];
            if (lastRows is not null) lastRows[i] = row - 1;
        }
        if (row != tokens.Length) throw new ArgumentException("lengths must be positive and cover the tokens");
        if (logitRows is not null)
            for (int i = 0; i < logitRows.Length; i++)
                if ((uint)logitRows[i] >= (uint)tokens.Length || (i > 0 && logitRows[i] <= logitRows[i - 1]))
                    throw new ArgumentException("logit rows must be ascending indices into the tokens", nameof(logitRows));
        return Run(rowCache, tokens, logitRows ?? lastRows);
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
        _localRope.Reserve(next.Values.Max());
        _s.Reserve(t, logitRows?.Length ?? t);

        int hidden = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim, inter = c.IntermediateSize;
        var prof = Profile;
        prof?.Start();
        long started = t >= MatMul.GemmMinRows ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        fixed (float* x = _s.X, xb = _s.Xb, q = _s.Q, k = _s.K, v = _s.V, att = _s.Att, hb = _s.Hb, hb2 = _s.Hb2)
        {
            for (int r = 0; r < t; r++)
                Weights.Embedding.RowToSingle(tokens[r], new Span<float>(x + r * hidden, hidden));
            if (c.EmbeddingScale is float embedScale)
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(x, t * hidden), embedScale, new Span<float>(x, t * hidden));

            for (int l = 0; l < c.NumLayers; l++)
            {
                var w = Weights.Layers[l];
                // Attention block.
                _rows.Run(_pool, RowJob.Kind.Norm, t, x, xb, null, w.AttnNorm);
                prof?.Mark(ForwardProfile.Elementwise);
                fixed (float* qb = w.QBias, kb = w.KBias, vb = w.VBias)
                {
                    _mm.Run(_pool, xb, t, new Linear(w.Q, q, qb), new Linear(w.K, k, kb), new Linear(w.V, v, vb));
                }
                prof?.Mark(ForwardProfile.Linear);
                _rows.RunRope(_pool, t, q, k, v, w, l, rowCache, pos);
                prof?.Mark(ForwardProfile.Elementwise);
                _attention.Run(_pool, l, q, att, rowCache, pos, t);
                prof?.Mark(ForwardProfile.Attention);
                fixed (float* ob = w.OBias) _mm.Run(_pool, w.O, att, t, xb, ob);
                prof?.Mark(ForwardProfile.Linear);

                // MLP block: down(act(gate(x)) · up(x)); the residual add is fused into the norms' job.
                _rows.Run(_pool, RowJob.Kind.Residual, t, x, xb, w.AttnPostNorm, w.FfnNorm);
                prof?.Mark(ForwardProfile.Elementwise);
                fixed (float* gb = w.GateBias, ub = w.UpBias, db = w.DownBias)
                {
                    _mm.Run(_pool, xb, t, new Linear(w.Gate, hb, gb), new Linear(w.Up, hb2, ub));
                    prof?.Mark(ForwardProfile.Linear);
                    _rows.Run(_pool, c.Activation == Activation.GeluTanh ? RowJob.Kind.GeluMul : RowJob.Kind.SiluMul, t, hb, hb2, null, null);
                    prof?.Mark(ForwardProfile.Elementwise);
                    _mm.Run(_pool, w.Down, hb, t, xb, db);
                    prof?.Mark(ForwardProfile.Linear);
                }
                _rows.Run(_pool, RowJob.Kind.Add, t, x, xb, w.FfnPostNorm, null);
            }

            foreach (var (cache, end) in next) cache.Length = end;

            // Final norm and lm_head, only for the rows whose logits are wanted.
            int rows = logitRows?.Length ?? t;
            if (rows == 0)
            {
                if (started != 0) PromptPasses.Add(t, System.Diagnostics.Stopwatch.GetTimestamp() - started);
                return new Logits(_s.Logits, 0, Weights.LmHead.Rows);
            }
            fixed (float* norm = Weights.FinalNorm, logits = _s.Logits)
            {
                for (int i = 0; i < rows; i++)
                {
                    int r = logitRows?[i] ?? i;
                    Ops.RmsNorm(x + r * hidden, norm, xb + i * hidden, hidden, (float)c.RmsNormEps);
                }
                prof?.Mark(ForwardProfile.Elementwise);
                _mm.Run(_pool, Weights.LmHead, xb, rows, logits);
                if (c.FinalLogitSoftcap is double cap)
                    Ops.SoftCap(new Span<float>(logits, rows * Weights.LmHead.Rows), (float)cap);
                prof?.Mark(ForwardProfile.Output);
            }
            if (started != 0) PromptPasses.Add(t, System.Diagnostics.Stopwatch.GetTimestamp() - started);
            return new Logits(_s.Logits, rows, Weights.LmHead.Rows);
        }
    }

    /// <summary>Per-row element-wise steps of a layer, split over the pool by rows.</summary>
    sealed class RowJob(Transformer model) : IRangeJob
    {
        public enum Kind { Norm, Residual, Add, SiluMul, GeluMul, Rope }

        Kind _kind;
        float* _a, _b, _c;
        float[]? _post, _pre;
        LayerWeights? _layer;
        int _layerIndex;
        KvCache[] _caches = [];
        int[] _pos = [];
        [ThreadStatic] static float[]? t_scratch;

        /// <summary>
        /// Norm: b = pre(a). Residual: b = post(b), a += b, then b = pre(a). Add: b = post(b), a += b.
        /// SiluMul / GeluMul: a = act(a) · b. A missing norm (null) passes its input through.
        /// </summary>
        public void Run(WorkerPool pool, Kind kind, int rows, float* a, float* b, float[]? post, float[]? pre)
        {
            _kind = kind; _a = a; _b = b; _post = post; _pre = pre;
            pool.Run(this, rows);
        }

        /// <summary>q/k norms, RoPE, and the new keys and values into each row's cache.</summary>
        public void RunRope(WorkerPool pool, int rows, float* q, float* k, float* v, LayerWeights layer, int layerIndex, KvCache[] caches, int[] pos)
        {
            _kind = Kind.Rope; _a = q; _b = k; _c = v; _layer = layer; _layerIndex = layerIndex; _caches = caches; _pos = pos;
            pool.Run(this, rows);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end)
        {
            var c = model.Config;
            int hidden = c.HiddenSize, inter = c.IntermediateSize, hd = c.HeadDim;
            float eps = (float)c.RmsNormEps;
            switch (_kind)
            {
                case Kind.Norm:
                case Kind.Residual:
                case Kind.Add:
                    fixed (float* post = _post, pre = _pre)
                        for (int r = start; r < end; r++)
                        {
                            float* x = _a + (long)r * hidden, y = _b + (long)r * hidden;
                            if (_kind != Kind.Norm)
                            {
                                if (post != null) Ops.RmsNorm(y, post, y, hidden, eps);
                                Ops.Add(x, y, hidden);
                            }
                            if (_kind == Kind.Add) continue;
                            if (pre != null) Ops.RmsNorm(x, pre, y, hidden, eps);
                            else new ReadOnlySpan<float>(x, hidden).CopyTo(new Span<float>(y, hidden));
                        }
                    break;
                case Kind.SiluMul:
                case Kind.GeluMul:
                {
                    int n = (end - start) * inter;
                    var scratch = t_scratch is { } sc && sc.Length >= n ? sc : (t_scratch = new float[n]);
                    var gate = new Span<float>(_a + (long)start * inter, n);
                    var up = new ReadOnlySpan<float>(_b + (long)start * inter, n);
                    if (_kind == Kind.SiluMul) Ops.SiluMul(gate, up, scratch.AsSpan(0, n));
                    else Ops.GeluTanhMul(gate, up, scratch.AsSpan(0, n));
                    break;
                }
                case Kind.Rope:
                {
                    int qDim = c.NumHeads * hd, kvDim = c.NumKvHeads * hd;
                    var layer = _layer!;
                    var rope = c.WindowOf(_layerIndex) is null ? model._rope : model._localRope;
                    fixed (float* qn = layer.QNorm, kn = layer.KNorm)
                        for (int r = start; r < end; r++)
                        {
                            float* q = _a + (long)r * qDim, k = _b + (long)r * kvDim;
                            if (c.QkNorm == QkNorm.PerHead)
                            {
                                for (int h = 0; h < c.NumHeads; h++) Ops.RmsNorm(q + h * hd, qn, q + h * hd, hd, eps);
                                for (int h = 0; h < c.NumKvHeads; h++) Ops.RmsNorm(k + h * hd, kn, k + h * hd, hd, eps);
                            }
                            else if (c.QkNorm == QkNorm.Whole)
                            {
                                Ops.RmsNorm(q, qn, q, qDim, eps);
                                Ops.RmsNorm(k, kn, k, kvDim, eps);
                            }
                            rope.Apply(q, c.NumHeads, _pos[r]);
                            rope.Apply(k, c.NumKvHeads, _pos[r]);
                            _caches[r].Write(_layerIndex, _pos[r], k, _c + (long)r * kvDim);
                        }
                    break;
                }
            }
        }
    }

    /// <summary>
    /// Rows and time of every pass of at least <see cref="MatMul.GemmMinRows"/> rows (prompts, scoring batches) in this
    /// process, for benchmarks to report prompt tokens per second inside a whole run.
    /// </summary>
    public static class PromptPasses
    {
        static long s_rows, s_ticks;
        public static long Rows => Interlocked.Read(ref s_rows);
        public static TimeSpan Time => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref s_ticks));
        internal static void Add(int rows, long ticks)
        {
            Interlocked.Add(ref s_rows, rows);
            Interlocked.Add(ref s_ticks, ticks);
        }
    }

    /// <summary>Where forward time goes: linear layers, attention, element-wise work, the output layer.</summary>
    public sealed class ForwardProfile
    {
        public const int Linear = 0, Attention = 1, Elementwise = 2, Output = 3;
        static readonly string[] Names = ["linear", "attention", "elementwise", "output"];
        readonly long[] _ticks = new long[4];
        long _last;

        internal void Start() => _last = System.Diagnostics.Stopwatch.GetTimestamp();

        internal void Mark(int phase)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            _ticks[phase] += now - _last;
            _last = now;
        }

        public void Reset() => Array.Clear(_ticks);

        public override string ToString() => string.Join(", ", Names.Select((n, i) =>
            $"{n} {_ticks[i] * 1000.0 / System.Diagnostics.Stopwatch.Frequency:F0} ms"));
    }

    /// <summary>Activation buffers, grown to the largest batch seen and reused.</summary>
    sealed class RunState(ModelConfig c)
    {
        int _rows, _logitRows;
        public float[] X = [], Xb = [], Q = [], K = [], V = [], Att = [], Hb = [], Hb2 = [], Logits = [];

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
