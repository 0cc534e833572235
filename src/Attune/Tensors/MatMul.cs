using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Attune.Tensors;

/// <summary>
/// Y[t, r] = Σ_k W[r, k] · X[t, k] (+ bias[r]): a linear layer over T input rows. Work is split by
/// output rows r, so each thread streams its own share of the weights once. With one input row it
/// is a matrix-vector product (decode: memory-bound); with a few (batched decode), rows of W are converted
/// to f32 four at a time and multiplied against four input rows at once in registers; with many
/// (prefill: compute-bound), the product runs on <see cref="Gemm"/>.
/// Q8_0 layers, as in llama.cpp, see their input rounded to Q8_0 blocks: with one row the products
/// are exact integer dots; with many, the rounded rows go through the f32 kernel.
/// </summary>
public sealed unsafe class MatMul : IRangeJob
{
    /// <summary>Up to three layers reading the same input (q, k, v; gate, up), run as one job.</summary>
    [InlineArray(MaxParts)]
    struct Parts { Linear _first; }

    const int MaxParts = 3;
    Parts _parts;
    int _partCount;
    readonly int[] _firstBlock = new int[MaxParts + 1];
    float* _x;
    float* _xRounded;
    int _t;

    [ThreadStatic] static float[]? t_rows;

    /// <summary>
    /// Backward of Y = X·Wᵀ + b for f32 weights W [rows, cols], X [t, cols], dY [t, rows]:
    /// dX = dY·W (overwritten, or added when <paramref name="accumulateDx"/>), dW += dYᵀ·X and dBias += Σ_t dY
    /// (each skipped when its span is empty, as for a frozen layer). The products run on <see cref="Gemm"/>.
    /// </summary>
    public static void Backward(WorkerPool? pool, ReadOnlySpan<float> w, int rows, int cols, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, int t,
        Span<float> dx, Span<float> dw, Span<float> dBias = default, bool accumulateDx = false)
    {
        fixed (float* wp = w, xp = x, dyp = dy, dxp = dx, dwp = dw)
        {
            Gemm.Multiply(pool, t, cols, rows, StridedMatrix.RowMajor(dyp, rows), StridedMatrix.RowMajor(wp, cols), dxp, cols, accumulateDx);
            if (!dw.IsEmpty)
                Gemm.Multiply(pool, rows, cols, t, StridedMatrix.Transposed(dyp, rows), StridedMatrix.RowMajor(xp, cols), dwp, cols, true);
        }
        if (!dBias.IsEmpty)
            for (int i = 0; i < t; i++)
                System.Numerics.Tensors.TensorPrimitives.Add(dBias[..rows], dy.Slice(i * rows, rows), dBias[..rows]);
    }

    /// <summary>Y = X·Wᵀ (+ bias) for f32 weights W [rows, cols] and X [t, cols], on <see cref="Gemm"/> (training's forward).</summary>
    public static void Forward(WorkerPool? pool, ReadOnlySpan<float> w, int rows, int cols, ReadOnlySpan<float> x, int t, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        fixed (float* wp = w, xp = x, yp = y)
            Gemm.Multiply(pool, t, rows, cols, StridedMatrix.RowMajor(xp, cols), StridedMatrix.Transposed(wp, cols), yp, rows, false);
        if (!bias.IsEmpty)
            for (int i = 0; i < t; i++)
                System.Numerics.Tensors.TensorPrimitives.Add(y.Slice(i * rows, rows), bias[..rows], y.Slice(i * rows, rows));
    }

    sbyte[] _xq = [];
    float[] _xd = [];
    float[] _xRoundedBuffer = [];

    /// <summary>Computes Y = X·Wᵀ (+ bias). X is [t, W.Cols] and Y is [t, W.Rows], both dense row-major.</summary>
    public void Run(WorkerPool pool, WeightMatrix w, float* x, int t, float* y, float* bias = null) =>
        Run(pool, x, t, new Linear(w, y, bias));

    /// <summary>
    /// Several layers of the same input width applied to one input X [t, cols] (a layer's q, k and v
    /// projections; gate and up): one job over all their rows, so a decode step waits on the pool once
    /// for them instead of once each. A part with no weights (default) is skipped.
    /// </summary>
    public void Run(WorkerPool pool, float* x, int t, Linear a, Linear b = default, Linear c = default)
    {
        _x = x; _t = t; _xRounded = null;
        _partCount = 0;
        foreach (var part in (ReadOnlySpan<Linear>)[a, b, c])
            if (part.W.Data != null)
            {
                if (_partCount > 0 && part.W.Cols != _parts[0].W.Cols) throw new ArgumentException("layers run together must have the same input width");
                _parts[_partCount++] = part;
            }
        if (_partCount == 0) return;
        int cols = _parts[0].W.Cols;
        bool anyQ8 = false;
        for (int i = 0; i < _partCount; i++) anyQ8 |= _parts[i].W.Type == WeightType.Q8_0;
        if (anyQ8)
        {
            // Quantize the input once: one row takes integer dot products with its bytes; many rows
            // go through the f32 kernels as the values those bytes stand for.
            int n = t * cols, blocks = n / WeightTypes.Q8BlockSize;
            if (t == 1)
            {
                if (_xq.Length < n) { _xq = GC.AllocateUninitializedArray<sbyte>(n, pinned: true); _xd = GC.AllocateUninitializedArray<float>(blocks, pinned: true); }
                Dot.QuantizeInput(new ReadOnlySpan<float>(x, n), _xq, _xd);
            }
            else
            {
                if (_xRoundedBuffer.Length < n) _xRoundedBuffer = GC.AllocateUninitializedArray<float>(n, pinned: true);
                Dot.RoundToQ8_0(new ReadOnlySpan<float>(x, n), _xRoundedBuffer);
                _xRounded = (float*)Unsafe.AsPointer(ref _xRoundedBuffer[0]);
            }
        }
        if (t >= GemmMinRows)
        {
            // Prefill: the packed, cache-blocked product, W converted block by block as it is packed; the parts in one job.
            Span<WeightProduct> products = stackalloc WeightProduct[MaxParts];
            for (int i = 0; i < _partCount; i++)
                products[i] = new WeightProduct(StridedMatrix.RowMajor(Input(_parts[i]), cols), _parts[i].W, _parts[i].Y, _parts[i].W.Rows);
            Gemm.MultiplyByWeights(pool, t, products[.._partCount]);
            for (int i = 0; i < _partCount; i++)
            {
                var part = _parts[i];
                if (part.Bias != null)
                    for (int r = 0; r < t; r++)
                    {
                        var row = new Span<float>(part.Y + (long)r * part.W.Rows, part.W.Rows);
                        System.Numerics.Tensors.TensorPrimitives.Add(row, new ReadOnlySpan<float>(part.Bias, part.W.Rows), row);
                    }
            }
            return;
        }
        // Blocks of 4 rows keep the register kernel whole; one block per unit of work, the parts' blocks end to end.
        for (int i = 0; i < _partCount; i++) _firstBlock[i + 1] = _firstBlock[i] + (_parts[i].W.Rows + 3) / 4;
        pool.Run(this, _firstBlock[_partCount]);
    }

    /// <summary>
    /// From this many input rows on, the product runs on <see cref="Gemm"/> (W's rows split over threads,
    /// each weight converted once); below it, a few rows (batched decode) split W's rows over threads instead, so
    /// that no weight is read twice.
    /// </summary>
    public const int GemmMinRows = 32;

    /// <summary>The input a part reads: X, or X rounded to Q8_0 blocks for a Q8_0 layer.</summary>
    float* Input(in Linear part) => part.W.Type == WeightType.Q8_0 && _xRounded != null ? _xRounded : _x;

    public void Execute(int startBlock, int endBlock)
    {
        for (int i = 0; i < _partCount; i++)
        {
            int s = Math.Max(startBlock, _firstBlock[i]), e = Math.Min(endBlock, _firstBlock[i + 1]);
            if (s >= e) continue;
            var part = _parts[i];
            int r0 = (s - _firstBlock[i]) * 4, r1 = Math.Min((e - _firstBlock[i]) * 4, part.W.Rows);
            if (_t == 1) MatVecRows(part, r0, r1);
            else MatMulRows(part, r0, r1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void MatVecRows(in Linear part, int r0, int r1)
    {
        float* y = part.Y, bias = part.Bias;
        var w = part.W;
        Prefetch(w.Row(r0), PrefetchDistance);
        if (w.Type == WeightType.Q8_0)
        {
            fixed (sbyte* xq = _xq) fixed (float* xd = _xd)
                for (int r = r0; r < r1; r++)
                {
                    Prefetch(w.Row(r) + PrefetchDistance, w.RowBytes);
                    y[r] = Dot.Q8_0Q8(w.Row(r), xq, xd, w.Cols) + (bias == null ? 0 : bias[r]);
                }
            return;
        }
        for (int r = r0; r < r1; r++)
        {
            Prefetch(w.Row(r) + PrefetchDistance, w.RowBytes);
            y[r] = w.DotRow(r, _x) + (bias == null ? 0 : bias[r]);
        }
    }

    /// <summary>
    /// How far ahead of the row being read a matrix-vector product asks for weights (into L2). The
    /// hardware prefetcher alone kept a decode step's many short row ranges at 15–19 GB/s for BF16 and
    /// Q8_0; requests 8 KiB ahead brought them to 23–25 (bench: layersim).
    /// </summary>
    const int PrefetchDistance = 8192;

    /// <summary>A hint to bring [p, p + bytes) toward L2; addresses past the matrix are harmless (a prefetch never faults).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Prefetch(byte* p, long bytes)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        for (long i = 0; i < bytes; i += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch1(p + i);
    }

    /// <summary>Input rows per tile: 128 rows of a few thousand floats stay in L2 while every weight block passes over them.</summary>
    const int TokenTile = 128;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void MatMulRows(in Linear part, int r0, int r1)
    {
        var w = part.W;
        int k = w.Cols, ldy = w.Rows;
        float* xIn = Input(part), y = part.Y, bias = part.Bias;
        bool convert = w.Type != WeightType.F32;
        var rows = t_rows;
        if (convert && (rows is null || rows.Length < 4 * k)) t_rows = rows = new float[4 * k];
        fixed (float* buf = rows)
        {
            for (int t0 = 0; t0 < _t; t0 += TokenTile)
            {
                int t1 = Math.Min(_t, t0 + TokenTile);
                int r = r0;
                for (; r + 4 <= r1; r += 4)
                {
                    float* w0, w1, w2, w3;
                    if (convert)
                    {
                        for (int j = 0; j < 4; j++) w.RowToSingle(r + j, new Span<float>(buf + j * k, k));
                        w0 = buf; w1 = buf + k; w2 = buf + 2 * k; w3 = buf + 3 * k;
                    }
                    else
                    {
                        w0 = (float*)w.Row(r); w1 = (float*)w.Row(r + 1); w2 = (float*)w.Row(r + 2); w3 = (float*)w.Row(r + 3);
                    }
                    int t = t0;
                    for (; t + 4 <= t1; t += 4) Kernel4x4(w0, w1, w2, w3, xIn + (long)t * k, k, y + (long)t * ldy + r, ldy, bias == null ? null : bias + r);
                    for (; t < t1; t++)
                    {
                        float* x = xIn + (long)t * k, yt = y + (long)t * ldy;
                        yt[r] = Dot.F32(w0, x, k) + (bias == null ? 0 : bias[r]);
                        yt[r + 1] = Dot.F32(w1, x, k) + (bias == null ? 0 : bias[r + 1]);
                        yt[r + 2] = Dot.F32(w2, x, k) + (bias == null ? 0 : bias[r + 2]);
                        yt[r + 3] = Dot.F32(w3, x, k) + (bias == null ? 0 : bias[r + 3]);
                    }
                }
                for (; r < r1; r++)
                {
                    float* w0;
                    if (convert) { w.RowToSingle(r, new Span<float>(buf, k)); w0 = buf; }
                    else w0 = (float*)w.Row(r);
                    for (int t = t0; t < t1; t++) y[(long)t * ldy + r] = Dot.F32(w0, xIn + (long)t * k, k) + (bias == null ? 0 : bias[r]);
                }
            }
        }
    }

    /// <summary>Four weight rows against four input rows: 16 dot products sharing their loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel4x4(float* w0, float* w1, float* w2, float* w3, float* x0, int k, float* y, int ldy, float* bias)
    {
        float* x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        int i = 0;
        Span<float> s = stackalloc float[16];
        if (Simd.Level == SimdLevel.V512 && k >= 16)
        {
            Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default,
                c10 = default, c11 = default, c12 = default, c13 = default,
                c20 = default, c21 = default, c22 = default, c23 = default,
                c30 = default, c31 = default, c32 = default, c33 = default;
            for (; i + 16 <= k; i += 16)
            {
                var a0 = Vector512.Load(w0 + i); var a1 = Vector512.Load(w1 + i);
                var a2 = Vector512.Load(w2 + i); var a3 = Vector512.Load(w3 + i);
                var b = Vector512.Load(x0 + i);
                c00 = Vector512.FusedMultiplyAdd(a0, b, c00); c01 = Vector512.FusedMultiplyAdd(a1, b, c01);
                c02 = Vector512.FusedMultiplyAdd(a2, b, c02); c03 = Vector512.FusedMultiplyAdd(a3, b, c03);
                b = Vector512.Load(x1 + i);
                c10 = Vector512.FusedMultiplyAdd(a0, b, c10); c11 = Vector512.FusedMultiplyAdd(a1, b, c11);
                c12 = Vector512.FusedMultiplyAdd(a2, b, c12); c13 = Vector512.FusedMultiplyAdd(a3, b, c13);
                b = Vector512.Load(x2 + i);
                c20 = Vector512.FusedMultiplyAdd(a0, b, c20); c21 = Vector512.FusedMultiplyAdd(a1, b, c21);
                c22 = Vector512.FusedMultiplyAdd(a2, b, c22); c23 = Vector512.FusedMultiplyAdd(a3, b, c23);
                b = Vector512.Load(x3 + i);
                c30 = Vector512.FusedMultiplyAdd(a0, b, c30); c31 = Vector512.FusedMultiplyAdd(a1, b, c31);
                c32 = Vector512.FusedMultiplyAdd(a2, b, c32); c33 = Vector512.FusedMultiplyAdd(a3, b, c33);
            }
            s[0] = Vector512.Sum(c00); s[1] = Vector512.Sum(c01); s[2] = Vector512.Sum(c02); s[3] = Vector512.Sum(c03);
            s[4] = Vector512.Sum(c10); s[5] = Vector512.Sum(c11); s[6] = Vector512.Sum(c12); s[7] = Vector512.Sum(c13);
            s[8] = Vector512.Sum(c20); s[9] = Vector512.Sum(c21); s[10] = Vector512.Sum(c22); s[11] = Vector512.Sum(c23);
            s[12] = Vector512.Sum(c30); s[13] = Vector512.Sum(c31); s[14] = Vector512.Sum(c32); s[15] = Vector512.Sum(c33);
        }
        else if (Simd.Level == SimdLevel.V256 && k >= 8)
        {
            Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default,
                c10 = default, c11 = default, c12 = default, c13 = default,
                c20 = default, c21 = default, c22 = default, c23 = default,
                c30 = default, c31 = default, c32 = default, c33 = default;
            for (; i + 8 <= k; i += 8)
            {
                var a0 = Vector256.Load(w0 + i); var a1 = Vector256.Load(w1 + i);
                var a2 = Vector256.Load(w2 + i); var a3 = Vector256.Load(w3 + i);
                var b = Vector256.Load(x0 + i);
                c00 = Vector256.FusedMultiplyAdd(a0, b, c00); c01 = Vector256.FusedMultiplyAdd(a1, b, c01);
                c02 = Vector256.FusedMultiplyAdd(a2, b, c02); c03 = Vector256.FusedMultiplyAdd(a3, b, c03);
                b = Vector256.Load(x1 + i);
                c10 = Vector256.FusedMultiplyAdd(a0, b, c10); c11 = Vector256.FusedMultiplyAdd(a1, b, c11);
                c12 = Vector256.FusedMultiplyAdd(a2, b, c12); c13 = Vector256.FusedMultiplyAdd(a3, b, c13);
                b = Vector256.Load(x2 + i);
                c20 = Vector256.FusedMultiplyAdd(a0, b, c20); c21 = Vector256.FusedMultiplyAdd(a1, b, c21);
                c22 = Vector256.FusedMultiplyAdd(a2, b, c22); c23 = Vector256.FusedMultiplyAdd(a3, b, c23);
                b = Vector256.Load(x3 + i);
                c30 = Vector256.FusedMultiplyAdd(a0, b, c30); c31 = Vector256.FusedMultiplyAdd(a1, b, c31);
                c32 = Vector256.FusedMultiplyAdd(a2, b, c32); c33 = Vector256.FusedMultiplyAdd(a3, b, c33);
            }
            s[0] = Vector256.Sum(c00); s[1] = Vector256.Sum(c01); s[2] = Vector256.Sum(c02); s[3] = Vector256.Sum(c03);
            s[4] = Vector256.Sum(c10); s[5] = Vector256.Sum(c11); s[6] = Vector256.Sum(c12); s[7] = Vector256.Sum(c13);
            s[8] = Vector256.Sum(c20); s[9] = Vector256.Sum(c21); s[10] = Vector256.Sum(c22); s[11] = Vector256.Sum(c23);
            s[12] = Vector256.Sum(c30); s[13] = Vector256.Sum(c31); s[14] = Vector256.Sum(c32); s[15] = Vector256.Sum(c33);
        }
        for (; i < k; i++)
        {
            float a0 = w0[i], a1 = w1[i], a2 = w2[i], a3 = w3[i];
            float b0 = x0[i], b1 = x1[i], b2 = x2[i], b3 = x3[i];
            s[0] += a0 * b0; s[1] += a1 * b0; s[2] += a2 * b0; s[3] += a3 * b0;
            s[4] += a0 * b1; s[5] += a1 * b1; s[6] += a2 * b1; s[7] += a3 * b1;
            s[8] += a0 * b2; s[9] += a1 * b2; s[10] += a2 * b2; s[11] += a3 * b2;
            s[12] += a0 * b3; s[13] += a1 * b3; s[14] += a2 * b3; s[15] += a3 * b3;
        }
        for (int tt = 0; tt < 4; tt++)
            for (int rr = 0; rr < 4; rr++)
                y[(long)tt * ldy + rr] = s[tt * 4 + rr] + (bias == null ? 0 : bias[rr]);
    }
}

/// <summary>A linear layer's output for <see cref="MatMul"/>: Y [t, W.Rows] = X·Wᵀ (+ bias).</summary>
public readonly unsafe struct Linear(WeightMatrix w, float* y, float* bias = null)
{
    public readonly WeightMatrix W = w;
    public readonly float* Y = y;
    public readonly float* Bias = bias;
}
