using System.Numerics.Tensors;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// Causal grouped-query attention for training, forward and backward side by side, over a batch of
/// sequences laid end to end: q [T, heads·d], k and v [T, kvHeads·d], query head h reads KV head
/// h / (heads / kvHeads), and no position sees another sequence.
/// Forward: S = c·Q·Kᵀ (c = 1/√d unless given; j ≤ i, and within the sliding window when given),
/// soft-capped to cap·tanh(S/cap) when a cap is given, P = softmax_j(S), O = P·V; the probabilities are
/// kept for the backward: dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)) (times 1 − tanh² through the cap,
/// whose scores are recomputed), dQ = c·dS·K, dK = c·dSᵀ·Q, dV = Pᵀ·dO. Each product is a <see cref="Gemm"/>; (sequence, head)
/// pairs are split over the pool, and the heads of a group add their dK and dV in head order, so the
/// result does not depend on the thread count.
/// </summary>
public sealed unsafe class CausalAttention(int heads, int kvHeads, int headDim, int? slidingWindow = null, double? scale = null, double? softcap = null) : IRangeJob
{
    readonly float _scale = (float)(scale ?? 1 / Math.Sqrt(headDim));
    readonly float _cap = (float)(softcap ?? 0);
    int Group => heads / kvHeads;
    int QWidth => heads * headDim;
    int KWidth => kvHeads * headDim;

    // The job in flight.
    bool _backward;
    int[] _starts = [], _lengths = [];
    long[] _probOffsets = [];
    float* _q, _k, _v, _out, _probs, _dOut, _dq, _dkHeads, _dvHeads;

    [ThreadStatic] static float[]? t_scores, t_capped;

    int First(int i) => slidingWindow is int w && i >= w ? i - w + 1 : 0;

    /// <summary>Floats of the probability buffer for sequences of these lengths (heads · Σ len²).</summary>
    public long ProbabilityLength(IReadOnlyList<int> lengths) => heads * lengths.Sum(l => (long)l * l);

    /// <summary>One sequence: fills <paramref name="output"/> [T, heads·d] and <paramref name="probs"/> [heads, T, T].</summary>
    public void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int t, Span<float> output, Span<float> probs) =>
        Forward(null, [t], q, k, v, output, probs);

    /// <summary>One sequence: dq, dk and dv from dO [T, heads·d] (all three overwritten).</summary>
    public void Backward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> probs, ReadOnlySpan<float> dOutput,
        int t, Span<float> dq, Span<float> dk, Span<float> dv) =>
        Backward(null, [t], q, k, v, probs, dOutput, dq, dk, dv);

    void Layout(IReadOnlyList<int> lengths)
    {
        _lengths = lengths.ToArray();
        _starts = new int[_lengths.Length];
        _probOffsets = new long[_lengths.Length];
        for (int s = 1; s < _lengths.Length; s++)
        {
            _starts[s] = _starts[s - 1] + _lengths[s - 1];
            _probOffsets[s] = _probOffsets[s - 1] + (long)heads * _lengths[s - 1] * _lengths[s - 1];
        }
    }

    /// <summary>Sequences of <paramref name="lengths"/> end to end: output [T, heads·d]; probs per sequence [heads, len, len].</summary>
    public void Forward(WorkerPool? pool, IReadOnlyList<int> lengths, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        Span<float> output, Span<float> probs)
    {
        Layout(lengths);
        fixed (float* qp = q, kp = k, vp = v, op = output, pp = probs)
        {
            _q = qp; _k = kp; _v = vp; _out = op; _probs = pp; _backward = false;
            Dispatch(pool);
        }
    }

    /// <summary>The backward of <see cref="Forward(WorkerPool?, IReadOnlyList{int}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float})"/>;
    /// dq, dk and dv are overwritten.</summary>
    public void Backward(WorkerPool? pool, IReadOnlyList<int> lengths, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<float> probs, ReadOnlySpan<float> dOutput, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        Layout(lengths);
        int total = _lengths.Sum();
        // Each query head writes its own dK and dV rows; the heads of a group are summed below in order.
        var dkHeads = new float[(long)total * QWidth];
        var dvHeads = new float[(long)total * QWidth];
        fixed (float* qp = q, kp = k, vp = v, pp = probs, dop = dOutput, dqp = dq, dkh = dkHeads, dvh = dvHeads)
        {
            _q = qp; _k = kp; _v = vp; _probs = pp; _dOut = dop; _dq = dqp; _dkHeads = dkh; _dvHeads = dvh; _backward = true;
            Dispatch(pool);
        }
        int kw = KWidth, qw = QWidth;
        for (int t = 0; t < total; t++)
            for (int g = 0; g < kvHeads; g++)
            {
                var dkRow = dk.Slice(t * kw + g * headDim, headDim);
                var dvRow = dv.Slice(t * kw + g * headDim, headDim);
                dkRow.Clear(); dvRow.Clear();
                for (int h = g * Group; h < (g + 1) * Group; h++)
                {
                    TensorPrimitives.Add(dkRow, dkHeads.AsSpan(t * qw + h * headDim, headDim), dkRow);
                    TensorPrimitives.Add(dvRow, dvHeads.AsSpan(t * qw + h * headDim, headDim), dvRow);
                }
            }
    }

    void Dispatch(WorkerPool? pool)
    {
        int units = _lengths.Length * heads;
        if (pool is null) Execute(0, units);
        else pool.Run(this, units);
    }

    public void Execute(int start, int end)
    {
        for (int u = start; u < end; u++)
        {
            int s = u / heads, h = u % heads;
            if (_lengths[s] == 0) continue;
            if (_backward) BackwardHead(s, h);
            else ForwardHead(s, h);
        }
    }

    void ForwardHead(int s, int h)
    {
        int len = _lengths[s], off = _starts[s], g = h / Group, qw = QWidth, kw = KWidth, d = headDim;
        float* p = _probs + _probOffsets[s] + (long)h * len * len;
        float* q = _q + (long)off * qw + h * d, k = _k + (long)off * kw + g * d, v = _v + (long)off * kw + g * d;
        Gemm.Multiply(null, len, len, d, StridedMatrix.RowMajor(q, qw), new StridedMatrix(k, 1, kw), p, len, false);
        for (int i = 0; i < len; i++)
        {
            var row = new Span<float>(p + (long)i * len, len);
            int first = First(i);
            row[..first].Clear();
            row[(i + 1)..].Clear();
            var live = row[first..(i + 1)];
            TensorPrimitives.Multiply(live, _scale, live);
            if (_cap > 0) Ops.SoftCap(live, _cap);
            Ops.Softmax(live);
        }
        Gemm.Multiply(null, len, d, len, StridedMatrix.RowMajor(p, len), new StridedMatrix(v, kw, 1), _out + (long)off * qw + h * d, qw, false);
    }

    void BackwardHead(int s, int h)
    {
        int len = _lengths[s], off = _starts[s], g = h / Group, qw = QWidth, kw = KWidth, d = headDim;
        float* p = _probs + _probOffsets[s] + (long)h * len * len;
        float* q = _q + (long)off * qw + h * d, k = _k + (long)off * kw + g * d, v = _v + (long)off * kw + g * d;
        float* dO = _dOut + (long)off * qw + h * d;
        var scores = t_scores is { } buf && buf.Length >= len * len ? buf : t_scores = GC.AllocateUninitializedArray<float>(len * len, pinned: true);
        var capped = _cap > 0 ? t_capped is { } cb && cb.Length >= len * len ? cb : t_capped = GC.AllocateUninitializedArray<float>(len * len, pinned: true) : null;
        fixed (float* ds = scores, cs = capped)
        {
            // Through the cap: the scores again, as tanh(c·q·k / cap), whose derivative is 1 − tanh².
            if (cs != null)
            {
                Gemm.Multiply(null, len, len, d, StridedMatrix.RowMajor(q, qw), new StridedMatrix(k, 1, kw), cs, len, false);
                var all = new Span<float>(cs, len * len);
                TensorPrimitives.Multiply(all, _scale / _cap, all);
                Ops.Tanh(all, all);
            }
            // dP = dO·Vᵀ, then dS = P ⊙ (dP − Σ_j P·dP) · c in place.
            Gemm.Multiply(null, len, len, d, StridedMatrix.RowMajor(dO, qw), new StridedMatrix(v, 1, kw), ds, len, false);
            for (int i = 0; i < len; i++)
            {
                var pr = new ReadOnlySpan<float>(p + (long)i * len, len);
                var dr = new Span<float>(ds + (long)i * len, len);
                int first = First(i);
                double weighted = 0;
                for (int j = first; j <= i; j++) weighted += (double)pr[j] * dr[j];
                for (int j = 0; j < len; j++)
                {
                    if (j < first || j > i) { dr[j] = 0; continue; }
                    float through = cs == null ? 1f : 1f - cs[(long)i * len + j] * cs[(long)i * len + j];
                    dr[j] = (float)(pr[j] * (dr[j] - weighted)) * through * _scale;
                }
            }
            Gemm.Multiply(null, len, d, len, StridedMatrix.RowMajor(ds, len), new StridedMatrix(k, kw, 1), _dq + (long)off * qw + h * d, qw, false);
            Gemm.Multiply(null, len, d, len, StridedMatrix.Transposed(ds, len), StridedMatrix.RowMajor(q, qw), _dkHeads + (long)off * qw + h * d, qw, false);
        }
        Gemm.Multiply(null, len, d, len, StridedMatrix.Transposed(p, len), StridedMatrix.RowMajor(dO, qw), _dvHeads + (long)off * qw + h * d, qw, false);
    }
}
