using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// Causal grouped-query attention, softmax(scale·q·Kᵀ)·V (scale 1/√d, or the family's; Gemma 2's scores
/// soft-capped), for blocks of up to four consecutive query
/// rows of one sequence and one head at a time. Keys are read transposed (see <see cref="KvCache"/>),
/// so scores for 16 positions accumulate in a vector; every key and value load serves all rows of
/// the block. Rows past a query's position (and, with a sliding window, before its window) are
/// masked to probability zero. A prompt (many rows of one sequence) goes through <see cref="Prompt"/> instead.
/// </summary>
internal sealed unsafe class Attention(Transformer model) : IRangeJob
{
    const int MaxRows = 4;
    int _layer, _blockCount;
    float* _q, _out;
    KvCache[] _caches = [];
    int[] _pos = [];
    readonly List<(int Row, int Count)> _blocks = [];
    [ThreadStatic] static float[]? t_scores;

    public void Run(WorkerPool pool, int layer, float* q, float* output, KvCache[] caches, int[] pos, int rows)
    {
        _layer = layer; _q = q; _out = output; _caches = caches; _pos = pos;
        if (rows >= PromptRows && AllOneSequence(caches, pos, rows))
        {
            Prompt(pool, rows);
            return;
        }
        // Consecutive rows of one sequence (a prompt) form blocks; a batch of sequences gives blocks of one.
        _blocks.Clear();
        for (int r = 0; r < rows;)
        {
            int n = 1;
            while (n < MaxRows && r + n < rows && caches[r + n] == caches[r] && pos[r + n] == pos[r] + n) n++;
            _blocks.Add((r, n));
            r += n;
        }
        _blockCount = _blocks.Count;
        // Later rows of a prompt attend to more positions; alternate short and long blocks so the
        // threads' fixed shares carry equal work.
        if (_blockCount > 2)
        {
            var order = new List<(int, int)>(_blockCount);
            for (int i = 0, j = _blockCount - 1; i <= j; i++, j--)
            {
                order.Add(_blocks[i]);
                if (i != j) order.Add(_blocks[j]);
            }
            _blocks.Clear();
            _blocks.AddRange(order);
        }
        pool.Run(this, _blockCount * model.Config.NumHeads);
    }

    /// <summary>From this many rows of one sequence on (a prompt), each head's products run on <see cref="Gemm"/>.</summary>
    const int PromptRows = 32;

    /// <summary>Query rows per pass of a prompt: bounds the score buffer to PromptChunk × positions.</summary>
    const int PromptChunk = 256;

    static bool AllOneSequence(KvCache[] caches, int[] pos, int rows)
    {
        for (int r = 1; r < rows; r++)
            if (caches[r] != caches[0] || pos[r] != pos[0] + r) return false;
        return true;
    }

    float[] _promptScores = [];
    /// <summary>A bf16 cache's keys (hd × n) then values (n × hd) of one KV head, widened for a prompt's products.</summary>
    float[] _widened = [];

    static void Widen(ushort* bits, float* to, int n)
    {
        int i = 0;
        for (; i + 16 <= n; i += 16) Bf16Elements.Load512(bits, i).Store(to + i);
        for (; i < n; i++) to[i] = Bf16Elements.Load(bits, i);
    }
    readonly SoftmaxRows _softmax = new();

    /// <summary>
    /// A prompt's attention, head by head, as two dense products: S = q·Kᵀ/√d over every position up to the
    /// chunk's last (the cache holds K transposed, so it is read as a row-major matrix), a masked softmax per
    /// row, then O = P·V. The products include the masked upper triangle, twice the arithmetic the row
    /// kernels need, but at the packed kernel's speed they take a fraction of the time.
    /// </summary>
    void Prompt(WorkerPool pool, int rows)
    {
        var c = model.Config;
        int hd = c.HeadDim, heads = c.NumHeads, group = heads / c.NumKvHeads, qStride = heads * hd;
        int? window = c.WindowOf(_layer);
        float scale = (float)c.AttentionScale, cap = (float)(c.AttnLogitSoftcap ?? 0);
        var cache = _caches[0];
        for (int r0 = 0; r0 < rows; r0 += PromptChunk)
        {
            int count = Math.Min(PromptChunk, rows - r0);
            int p0 = _pos[r0], last = p0 + count - 1;
            int first = window is int win && p0 >= win ? p0 - win + 1 : 0;
            int n = last - first + 1;
            if (_promptScores.Length < count * n) _promptScores = GC.AllocateUninitializedArray<float>(count * n, pinned: true);
            if (cache.Bf16 && _widened.Length < 2 * hd * n) _widened = GC.AllocateUninitializedArray<float>(2 * hd * n, pinned: true);
            fixed (float* s = _promptScores, wide = _widened)
                for (int h = 0; h < heads; h++)
                {
                    int kvh = h / group;
                    float* q = _q + (long)r0 * qStride + h * hd;
                    // A bf16 cache's keys and values for these positions are widened once per KV head for the products.
                    StridedMatrix keys, values;
                    if (!cache.Bf16)
                    {
                        keys = new StridedMatrix(cache.Keys(_layer, kvh) + first, cache.Capacity, 1);
                        values = StridedMatrix.RowMajor(cache.Values(_layer, kvh) + (long)first * hd, hd);
                    }
                    else
                    {
                        if (h % group == 0)
                        {
                            ushort* k16 = cache.KeysBf16(_layer, kvh) + first;
                            for (int d = 0; d < hd; d++) Widen(k16 + (long)d * cache.Capacity, wide + (long)d * n, n);
                            Widen(cache.ValuesBf16(_layer, kvh) + (long)first * hd, wide + (long)hd * n, n * hd);
                        }
                        keys = StridedMatrix.RowMajor(wide, n);
                        values = StridedMatrix.RowMajor(wide + (long)hd * n, hd);
                    }
                    Gemm.Multiply(pool, count, n, hd, StridedMatrix.RowMajor(q, qStride), keys, s, n, false);
                    _softmax.Run(pool, s, count, n, p0, first, window, scale, cap);
                    Gemm.Multiply(pool, count, hd, n, StridedMatrix.RowMajor(s, n), values, _out + (long)r0 * qStride + h * hd, qStride, false);
                }
        }
    }

    /// <summary>
    /// The scores of the query at position <paramref name="p"/> over positions first…first+n−1, turned into
    /// probabilities: those it may see (up to its own, within the window) scaled, soft-capped when
    /// <paramref name="cap"/> is positive, and normalised; the rest zero. Returns the visible range [lo, hi).
    /// </summary>
    static (int Lo, int Hi) MaskedSoftmax(float* row, int n, int p, int first, int? window, float scale, float cap)
    {
        int lo = window is int w && p >= w ? p - w + 1 - first : 0;
        int hi = p - first + 1;
        new Span<float>(row, lo).Clear();
        new Span<float>(row + hi, n - hi).Clear();
        var live = new Span<float>(row + lo, hi - lo);
        if (scale != 1f) TensorPrimitives.Multiply(live, scale, live);
        if (cap > 0) Ops.SoftCap(live, cap);
        Ops.Softmax(live);
        return (lo, hi);
    }

    /// <summary>The rows of a prompt's scores through <see cref="MaskedSoftmax"/>, split over the pool.</summary>
    sealed class SoftmaxRows : IRangeJob
    {
        float* _s;
        int _n, _p0, _first;
        int? _window;
        float _scale, _cap;

        public void Run(WorkerPool pool, float* s, int rows, int n, int p0, int first, int? window, float scale, float cap)
        {
            _s = s; _n = n; _p0 = p0; _first = first; _window = window; _scale = scale; _cap = cap;
            pool.Run(this, rows);
        }

        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++) MaskedSoftmax(_s + (long)r * _n, _n, _p0 + r, _first, _window, _scale, _cap);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Execute(int start, int end)
    {
        var c = model.Config;
        int hd = c.HeadDim, heads = c.NumHeads, group = heads / c.NumKvHeads;
        float scale = (float)c.AttentionScale, cap = (float)(c.AttnLogitSoftcap ?? 0);
        int? window = c.WindowOf(_layer);
        for (int item = start; item < end; item++)
        {
            var (row0, count) = _blocks[item / heads];
            int h = item % heads, kvh = h / group;
            // A prompt's item is one head's rows; a decode row's item is up to four heads of one KV group, so their keys are
            // read once for all of them (the same sums: each score is the same chain of fused multiply-adds either way).
            int rows = count, qStride = heads * hd;
            if (count == 1 && group > 1)
            {
                int g = h % group;
                if (g % MaxRows != 0) continue; // computed by the item of the first head of its four
                rows = Math.Min(MaxRows, group - g);
                qStride = hd;
            }
            var cache = _caches[row0];
            int p0 = _pos[row0], last = p0 + count - 1;
            int first = window is int win && p0 >= win ? p0 - win + 1 : 0;
            int n = last - first + 1;
            var scores = t_scores is { } sc && sc.Length >= MaxRows * n ? sc : (t_scores = new float[Math.Max(MaxRows * n, 1024)]);
            fixed (float* s = scores)
            {
                float* q = _q + row0 * heads * hd + h * hd;
                if (cache.Bf16) Scores<Bf16Elements>(q, qStride, rows, cache.KeysBf16(_layer, kvh) + first, cache.Capacity, hd, n, s, scale);
                else Scores<F32Elements>(q, qStride, rows, cache.Keys(_layer, kvh) + first, cache.Capacity, hd, n, s, scale);
                int minLo = n, maxHi = 0;
                for (int r = 0; r < rows; r++)
                {
                    var (lo, hi) = MaskedSoftmax(s + r * n, n, count == 1 ? p0 : p0 + r, first, window, 1f, cap);
                    minLo = Math.Min(minLo, lo);
                    maxHi = Math.Max(maxHi, hi);
                }
                float* o0 = _out + row0 * heads * hd + h * hd;
                if (cache.Bf16) Output<Bf16Elements>(s, n, count, rows, minLo, maxHi, cache.ValuesBf16(_layer, kvh) + (long)first * hd, hd, o0, qStride);
                else Output<F32Elements>(s, n, count, rows, minLo, maxHi, cache.Values(_layer, kvh) + (long)first * hd, hd, o0, qStride);
            }
        }
    }

    /// <summary>The rows' outputs from their probabilities over <paramref name="values"/>.</summary>
    static void Output<T>(float* s, int n, int count, int rows, int lo, int hi, void* values, int hd, float* o0, int oStride) where T : struct, IKvElements
    {
        // MixFour's single chain per element differs from Mix's two in the last bits: prompts' blocks of four only,
        // as before, so a decode step gives what it gave when each head ran alone.
        if (count == MaxRows && hd % 64 == 0 && Simd.Level == SimdLevel.V512)
            MixFour<T>(s, n, lo, hi, values, hd, o0, oStride);
        else
            for (int r = 0; r < rows; r++) Mix<T>(s + r * n, lo, hi, values, hd, o0 + r * oStride);
    }

    /// <summary>s[r·n + j] = scale · Σ_d q_r[d] · K[d][j] for <paramref name="rows"/> query rows.</summary>
    static void Scores<T>(float* q, int qStride, int rows, void* keys, int capacity, int hd, int n, float* s, float scale) where T : struct, IKvElements
    {
        int j = 0;
        // One query row: four position vectors at once, so four FMA chains run in parallel.
        if (rows == 1 && Simd.Level == SimdLevel.V512)
            for (; j + 64 <= n; j += 64)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hd; d++)
                {
                    var qd = Vector512.Create(q[d]);
                    long k = (long)d * capacity + j;
                    a0 = Vector512.FusedMultiplyAdd(qd, T.Load512(keys, k), a0);
                    a1 = Vector512.FusedMultiplyAdd(qd, T.Load512(keys, k + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(qd, T.Load512(keys, k + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(qd, T.Load512(keys, k + 48), a3);
                }
                (a0 * scale).Store(s + j); (a1 * scale).Store(s + j + 16);
                (a2 * scale).Store(s + j + 32); (a3 * scale).Store(s + j + 48);
            }
        else if (rows == 1 && Simd.Level == SimdLevel.V256)
            for (; j + 32 <= n; j += 32)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hd; d++)
                {
                    var qd = Vector256.Create(q[d]);
                    long k = (long)d * capacity + j;
                    a0 = Vector256.FusedMultiplyAdd(qd, T.Load256(keys, k), a0);
                    a1 = Vector256.FusedMultiplyAdd(qd, T.Load256(keys, k + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(qd, T.Load256(keys, k + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(qd, T.Load256(keys, k + 24), a3);
                }
                (a0 * scale).Store(s + j); (a1 * scale).Store(s + j + 8);
                (a2 * scale).Store(s + j + 16); (a3 * scale).Store(s + j + 24);
            }
        // Four rows: two position vectors per row (eight FMA chains, two key loads per four broadcasts).
        if (rows == 4 && Simd.Level == SimdLevel.V512)
            for (; j + 32 <= n; j += 32)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
                for (int d = 0; d < hd; d++)
                {
                    long kp = (long)d * capacity + j;
                    var k = T.Load512(keys, kp);
                    var k2 = T.Load512(keys, kp + 16);
                    var q0 = Vector512.Create(q[d]); var q1 = Vector512.Create(q[qStride + d]);
                    var q2 = Vector512.Create(q[2 * qStride + d]); var q3 = Vector512.Create(q[3 * qStride + d]);
                    a0 = Vector512.FusedMultiplyAdd(q0, k, a0); b0 = Vector512.FusedMultiplyAdd(q0, k2, b0);
                    a1 = Vector512.FusedMultiplyAdd(q1, k, a1); b1 = Vector512.FusedMultiplyAdd(q1, k2, b1);
                    a2 = Vector512.FusedMultiplyAdd(q2, k, a2); b2 = Vector512.FusedMultiplyAdd(q2, k2, b2);
                    a3 = Vector512.FusedMultiplyAdd(q3, k, a3); b3 = Vector512.FusedMultiplyAdd(q3, k2, b3);
                }
                (a0 * scale).Store(s + j); (b0 * scale).Store(s + j + 16);
                (a1 * scale).Store(s + n + j); (b1 * scale).Store(s + n + j + 16);
                (a2 * scale).Store(s + 2 * n + j); (b2 * scale).Store(s + 2 * n + j + 16);
                (a3 * scale).Store(s + 3 * n + j); (b3 * scale).Store(s + 3 * n + j + 16);
            }
        if (Simd.Level == SimdLevel.V512)
            for (; j + 16 <= n; j += 16)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hd; d++)
                {
                    var k = T.Load512(keys, (long)d * capacity + j);
                    a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q[d]), k, a0);
                    if (rows > 1) a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q[qStride + d]), k, a1);
                    if (rows > 2) a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q[2 * qStride + d]), k, a2);
                    if (rows > 3) a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q[3 * qStride + d]), k, a3);
                }
                (a0 * scale).Store(s + j);
                if (rows > 1) (a1 * scale).Store(s + n + j);
                if (rows > 2) (a2 * scale).Store(s + 2 * n + j);
                if (rows > 3) (a3 * scale).Store(s + 3 * n + j);
            }
        else if (Simd.Level == SimdLevel.V256)
            for (; j + 8 <= n; j += 8)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hd; d++)
                {
                    var k = T.Load256(keys, (long)d * capacity + j);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(q[d]), k, a0);
                    if (rows > 1) a1 = Vector256.FusedMultiplyAdd(Vector256.Create(q[qStride + d]), k, a1);
                    if (rows > 2) a2 = Vector256.FusedMultiplyAdd(Vector256.Create(q[2 * qStride + d]), k, a2);
                    if (rows > 3) a3 = Vector256.FusedMultiplyAdd(Vector256.Create(q[3 * qStride + d]), k, a3);
                }
                (a0 * scale).Store(s + j);
                if (rows > 1) (a1 * scale).Store(s + n + j);
                if (rows > 2) (a2 * scale).Store(s + 2 * n + j);
                if (rows > 3) (a3 * scale).Store(s + 3 * n + j);
            }
        for (; j < n; j++)
            for (int r = 0; r < rows; r++)
            {
                float a = 0;
                for (int d = 0; d < hd; d++) a = MathF.FusedMultiplyAdd(q[r * qStride + d], T.Load(keys, (long)d * capacity + j), a);
                s[r * n + j] = a * scale;
            }
    }

    /// <summary>Four rows' outputs at once, 64 dimensions at a time: each value vector is loaded once for all four.</summary>
    static void MixFour<T>(float* p, int n, int lo, int hi, void* values, int hd, float* o, int oStride) where T : struct, IKvElements
    {
        for (int d = 0; d < hd; d += 64)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default,
                a10 = default, a11 = default, a12 = default, a13 = default,
                a20 = default, a21 = default, a22 = default, a23 = default,
                a30 = default, a31 = default, a32 = default, a33 = default;
            for (int j = lo; j < hi; j++)
            {
                long v = (long)j * hd + d;
                var v0 = T.Load512(values, v); var v1 = T.Load512(values, v + 16); var v2 = T.Load512(values, v + 32); var v3 = T.Load512(values, v + 48);
                var w = Vector512.Create(p[j]);
                a00 = Vector512.FusedMultiplyAdd(w, v0, a00); a01 = Vector512.FusedMultiplyAdd(w, v1, a01);
                a02 = Vector512.FusedMultiplyAdd(w, v2, a02); a03 = Vector512.FusedMultiplyAdd(w, v3, a03);
                w = Vector512.Create(p[n + j]);
                a10 = Vector512.FusedMultiplyAdd(w, v0, a10); a11 = Vector512.FusedMultiplyAdd(w, v1, a11);
                a12 = Vector512.FusedMultiplyAdd(w, v2, a12); a13 = Vector512.FusedMultiplyAdd(w, v3, a13);
                w = Vector512.Create(p[2 * n + j]);
                a20 = Vector512.FusedMultiplyAdd(w, v0, a20); a21 = Vector512.FusedMultiplyAdd(w, v1, a21);
                a22 = Vector512.FusedMultiplyAdd(w, v2, a22); a23 = Vector512.FusedMultiplyAdd(w, v3, a23);
                w = Vector512.Create(p[3 * n + j]);
                a30 = Vector512.FusedMultiplyAdd(w, v0, a30); a31 = Vector512.FusedMultiplyAdd(w, v1, a31);
                a32 = Vector512.FusedMultiplyAdd(w, v2, a32); a33 = Vector512.FusedMultiplyAdd(w, v3, a33);
            }
            a00.Store(o + d); a01.Store(o + d + 16); a02.Store(o + d + 32); a03.Store(o + d + 48);
            a10.Store(o + oStride + d); a11.Store(o + oStride + d + 16); a12.Store(o + oStride + d + 32); a13.Store(o + oStride + d + 48);
            a20.Store(o + 2 * oStride + d); a21.Store(o + 2 * oStride + d + 16); a22.Store(o + 2 * oStride + d + 32); a23.Store(o + 2 * oStride + d + 48);
            a30.Store(o + 3 * oStride + d); a31.Store(o + 3 * oStride + d + 16); a32.Store(o + 3 * oStride + d + 32); a33.Store(o + 3 * oStride + d + 48);
        }
    }

    /// <summary>o = Σ_{j∈[lo,hi)} p[j] · V[j], accumulated in registers 64 (or 32) dimensions at a time.</summary>
    static void Mix<T>(float* p, int lo, int hi, void* values, int hd, float* o) where T : struct, IKvElements
    {
        int d = 0;
        if (Simd.Level == SimdLevel.V512)
            for (; d + 64 <= hd; d += 64)
            {
                // Two positions per step into separate accumulators: eight independent FMA chains.
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
                int j = lo;
                for (; j + 2 <= hi; j += 2)
                {
                    var w = Vector512.Create(p[j]);
                    var u = Vector512.Create(p[j + 1]);
                    long v = (long)j * hd + d;
                    long x = v + hd;
                    a0 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v), a0);
                    a1 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 48), a3);
                    b0 = Vector512.FusedMultiplyAdd(u, T.Load512(values, x), b0);
                    b1 = Vector512.FusedMultiplyAdd(u, T.Load512(values, x + 16), b1);
                    b2 = Vector512.FusedMultiplyAdd(u, T.Load512(values, x + 32), b2);
                    b3 = Vector512.FusedMultiplyAdd(u, T.Load512(values, x + 48), b3);
                }
                for (; j < hi; j++)
                {
                    var w = Vector512.Create(p[j]);
                    long v = (long)j * hd + d;
                    a0 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v), a0);
                    a1 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(w, T.Load512(values, v + 48), a3);
                }
                (a0 + b0).Store(o + d); (a1 + b1).Store(o + d + 16); (a2 + b2).Store(o + d + 32); (a3 + b3).Store(o + d + 48);
            }
        if (Simd.Level >= SimdLevel.V256)
            for (; d + 32 <= hd; d += 32)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int j = lo; j < hi; j++)
                {
                    var w = Vector256.Create(p[j]);
                    long v = (long)j * hd + d;
                    a0 = Vector256.FusedMultiplyAdd(w, T.Load256(values, v), a0);
                    a1 = Vector256.FusedMultiplyAdd(w, T.Load256(values, v + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(w, T.Load256(values, v + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(w, T.Load256(values, v + 24), a3);
                }
                a0.Store(o + d); a1.Store(o + d + 8); a2.Store(o + d + 16); a3.Store(o + d + 24);
            }
        for (; d < hd; d++)
        {
            float a = 0;
            for (int j = lo; j < hi; j++) a = MathF.FusedMultiplyAdd(p[j], T.Load(values, (long)j * hd + d), a);
            o[d] = a;
        }
    }
}

/// <summary>How attention reads a KV cache's elements as f32: as they are stored, or widened from bf16 bits.</summary>
internal unsafe interface IKvElements
{
    /// <summary>Elements i … i+15.</summary>
    static abstract Vector512<float> Load512(void* p, long i);

    /// <summary>Elements i … i+7.</summary>
    static abstract Vector256<float> Load256(void* p, long i);

    static abstract float Load(void* p, long i);
}

internal readonly unsafe struct F32Elements : IKvElements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(void* p, long i) => Vector512.Load((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(void* p, long i) => Vector256.Load((float*)p + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* p, long i) => ((float*)p)[i];
}

/// <summary>bf16 is the top half of an f32: widening is a zero extension and a shift.</summary>
internal readonly unsafe struct Bf16Elements : IKvElements
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(void* p, long i) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load((ushort*)p + i).ToVector512Unsafe()), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(void* p, long i) =>
        Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load((ushort*)p + i).ToVector256Unsafe()), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* p, long i) => BFloat16.ToSingle(((ushort*)p)[i]);
}
