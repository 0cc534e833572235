using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// Causal grouped-query attention, softmax(q·Kᵀ/√d)·V, for blocks of up to four consecutive query
/// rows of one sequence and one head at a time. Keys are read transposed (see <see cref="KvCache"/>),
/// so scores for 16 positions accumulate in a vector; every key and value load serves all rows of
/// the block. Rows past a query's position (and, with a sliding window, before its window) are
/// masked to probability zero.
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Execute(int start, int end)
    {
        var c = model.Config;
        int hd = c.HeadDim, heads = c.NumHeads, group = heads / c.NumKvHeads;
        float scale = 1f / MathF.Sqrt(hd);
        for (int item = start; item < end; item++)
        {
            var (row0, count) = _blocks[item / heads];
            int h = item % heads, kvh = h / group;
            var cache = _caches[row0];
            int p0 = _pos[row0], last = p0 + count - 1;
            int first = c.SlidingWindow is int win && p0 >= win ? p0 - win + 1 : 0;
            int n = last - first + 1;
            var scores = t_scores is { } sc && sc.Length >= MaxRows * n ? sc : (t_scores = new float[Math.Max(MaxRows * n, 1024)]);
            fixed (float* s = scores)
            {
                float* keys = cache.Keys(_layer, kvh) + first;
                Scores(_q + row0 * heads * hd + h * hd, heads * hd, count, keys, cache.Capacity, hd, n, s, scale);
                for (int r = 0; r < count; r++)
                {
                    int p = p0 + r;
                    int lo = c.SlidingWindow is int w && p >= w ? p - w + 1 - first : 0;
                    int hi = p - first + 1;
                    var row = new Span<float>(s + r * n + lo, hi - lo);
                    Ops.Softmax(row);
                    float* o = _out + (row0 + r) * heads * hd + h * hd;
                    Mix(s + r * n, lo, hi, cache.Values(_layer, kvh) + (long)first * hd, hd, o);
                }
            }
        }
    }

    /// <summary>s[r·n + j] = scale · Σ_d q_r[d] · K[d][j] for <paramref name="rows"/> query rows.</summary>
    static void Scores(float* q, int qStride, int rows, float* keys, int capacity, int hd, int n, float* s, float scale)
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
                    float* k = keys + (long)d * capacity + j;
                    a0 = Vector512.FusedMultiplyAdd(qd, Vector512.Load(k), a0);
                    a1 = Vector512.FusedMultiplyAdd(qd, Vector512.Load(k + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(qd, Vector512.Load(k + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(qd, Vector512.Load(k + 48), a3);
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
                    float* k = keys + (long)d * capacity + j;
                    a0 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k), a0);
                    a1 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(qd, Vector256.Load(k + 24), a3);
                }
                (a0 * scale).Store(s + j); (a1 * scale).Store(s + j + 8);
                (a2 * scale).Store(s + j + 16); (a3 * scale).Store(s + j + 24);
            }
        if (Simd.Level == SimdLevel.V512)
            for (; j + 16 <= n; j += 16)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hd; d++)
                {
                    var k = Vector512.Load(keys + (long)d * capacity + j);
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
                    var k = Vector256.Load(keys + (long)d * capacity + j);
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
                for (int d = 0; d < hd; d++) a = MathF.FusedMultiplyAdd(q[r * qStride + d], keys[(long)d * capacity + j], a);
                s[r * n + j] = a * scale;
            }
    }

    /// <summary>o = Σ_{j∈[lo,hi)} p[j] · V[j], accumulated in registers 64 (or 32) dimensions at a time.</summary>
    static void Mix(float* p, int lo, int hi, float* values, int hd, float* o)
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
                    float* v = values + (long)j * hd + d;
                    float* x = v + hd;
                    a0 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v), a0);
                    a1 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 48), a3);
                    b0 = Vector512.FusedMultiplyAdd(u, Vector512.Load(x), b0);
                    b1 = Vector512.FusedMultiplyAdd(u, Vector512.Load(x + 16), b1);
                    b2 = Vector512.FusedMultiplyAdd(u, Vector512.Load(x + 32), b2);
                    b3 = Vector512.FusedMultiplyAdd(u, Vector512.Load(x + 48), b3);
                }
                for (; j < hi; j++)
                {
                    var w = Vector512.Create(p[j]);
                    float* v = values + (long)j * hd + d;
                    a0 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v), a0);
                    a1 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(w, Vector512.Load(v + 48), a3);
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
                    float* v = values + (long)j * hd + d;
                    a0 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v), a0);
                    a1 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(w, Vector256.Load(v + 24), a3);
                }
                a0.Store(o + d); a1.Store(o + d + 8); a2.Store(o + d + 16); a3.Store(o + d + 24);
            }
        for (; d < hd; d++)
        {
            float a = 0;
            for (int j = lo; j < hi; j++) a = MathF.FusedMultiplyAdd(p[j], values[(long)j * hd + d], a);
            o[d] = a;
        }
    }
}
