using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Attune.Tensors;

/// <summary>
/// A matrix in f32 read through two strides: element (i, j) sits at <c>Data[i·RowStride + j·ColStride]</c>,
/// so a row-major matrix and its transpose are the same memory with the strides swapped.
/// </summary>
public readonly unsafe struct StridedMatrix(float* data, int rowStride, int colStride)
{
    public readonly float* Data = data;
    public readonly int RowStride = rowStride;
    public readonly int ColStride = colStride;

    public static StridedMatrix RowMajor(float* data, int cols) => new(data, cols, 1);
    public static StridedMatrix Transposed(float* data, int cols) => new(data, 1, cols);
}

/// <summary>
/// C[m, n] = (C if accumulating, else 0) + Σ_k A(m, k)·B(k, n) in f32 — the product training runs on
/// (a linear layer's forward, both halves of its backward, and attention's products), whatever the
/// strides of A and B. Organised as GotoBLAS/BLIS describe: blocks of B (KC × NC) and of A (MC × KC)
/// are packed into contiguous strips so the micro-kernel reads both sequentially, a strip of B
/// (KC × NR) stays in L1 while the strips of A stream past it, and the micro-kernel keeps a 4 × NR
/// tile of C in registers (NR = 64 with Vector512, 32 with Vector256). Rows of C are split over the
/// pool; every element is the same chain of fused multiply-adds in k order on every SIMD level and
/// thread count, so results are bit-identical across them.
/// </summary>
public sealed unsafe class Gemm : IRangeJob
{
    const int MR = 4;
    const int KC = 96;
    const int MC = 128;
    const int NC = 1024;

    int _m, _n, _k;
    StridedMatrix _a, _b;
    float* _c;
    int _ldc;
    bool _accumulate;
    int _nr;
    bool _bIsWeights;

    [ThreadStatic] static float[]? t_packA;
    [ThreadStatic] static float[]? t_packB;
    [ThreadStatic] static Gemm? t_instance;

    static int NR => Simd.Level switch { SimdLevel.V512 => 64, SimdLevel.V256 => 32, _ => 16 };

    /// <summary>C [m, n] with rows <paramref name="ldc"/> apart; the rows of C are split over <paramref name="pool"/>
    /// (null: computed on the calling thread, for use inside another parallel job).</summary>
    public static void Multiply(WorkerPool? pool, int m, int n, int k, StridedMatrix a, StridedMatrix b, float* c, int ldc, bool accumulate)
    {
        if (m <= 0 || n <= 0) return;
        var g = t_instance ??= new Gemm();
        g._m = m; g._n = n; g._k = k; g._a = a; g._b = b; g._c = c; g._ldc = ldc; g._accumulate = accumulate; g._nr = NR;
        g._bIsWeights = false;
        g.Start(pool);
    }

    /// <summary>
    /// C [m, W.Rows] = A·Wᵀ for weight matrices W [rows, k] stored in any <see cref="WeightType"/> (inference's
    /// prefill of linear layers; up to three reading the same rows, as q, k and v do, in one job). W's rows are
    /// converted to f32 as its blocks are packed, so the product runs on the same micro-kernel as f32 without a
    /// converted copy of W. Work is split over the pool by strips of NR columns of C — rows of W — so each weight
    /// is read and converted once per call whatever the thread count (a split by rows of C would have every
    /// thread convert all of W: the whole cost of a short prompt); every thread packs the rows of A it needs,
    /// which are few beside W. Per element the same chain of fused multiply-adds as <see cref="Multiply"/>.
    /// </summary>
    public static void MultiplyByWeights(WorkerPool? pool, int m, ReadOnlySpan<WeightProduct> products)
    {
        if (m <= 0 || products.Length == 0) return;
        if (products.Length > MaxProducts) throw new ArgumentException($"at most {MaxProducts} products run together");
        var g = t_instance ??= new Gemm();
        g._m = m; g._nr = NR; g._bIsWeights = true; g._accumulate = false;
        g._productCount = products.Length;
        for (int i = 0; i < products.Length; i++)
        {
            g._products[i] = products[i];
            g._firstStrip[i + 1] = g._firstStrip[i] + (products[i].W.Rows + g._nr - 1) / g._nr;
        }
        int strips = g._firstStrip[products.Length];
        if (pool is null) g.Execute(0, strips);
        else pool.Run(g, strips);
    }

    const int MaxProducts = 3;
    readonly WeightProduct[] _products = new WeightProduct[MaxProducts];
    readonly int[] _firstStrip = new int[MaxProducts + 1];
    int _productCount;

    void Start(WorkerPool? pool)
    {
        int units = (_m + MR - 1) / MR;
        if (pool is null) Execute(0, units);
        else pool.Run(this, units);
    }

    public void Execute(int startUnit, int endUnit)
    {
        if (_bIsWeights)
        {
            ExecuteWeightStrips(startUnit, endUnit);
            return;
        }
        int m0 = startUnit * MR, m1 = Math.Min(endUnit * MR, _m);
        if (m0 >= m1) return;
        if (_k == 0)
        {
            if (!_accumulate)
                for (int i = m0; i < m1; i++) new Span<float>(_c + (long)i * _ldc, _n).Clear();
            return;
        }
        int nr = _nr;
        int ncMax = Math.Min(NC, (_n + nr - 1) / nr * nr);
        var packA = t_packA is { } pa && pa.Length >= MC * KC ? pa : t_packA = GC.AllocateUninitializedArray<float>(MC * KC, pinned: true);
        int needB = KC * Math.Max(ncMax, 64);
        var packB = t_packB is { } pb && pb.Length >= needB ? pb : t_packB = GC.AllocateUninitializedArray<float>(Math.Max(needB, KC * NC), pinned: true);
        fixed (float* ap = packA, bp = packB)
            for (int pc = 0; pc < _k; pc += KC)
            {
                int kc = Math.Min(KC, _k - pc);
                bool accumulate = _accumulate || pc > 0;
                for (int jc = 0; jc < _n; jc += NC)
                {
                    int nc = Math.Min(NC, _n - jc);
                    PackB(bp, pc, kc, jc, nc, nr);
                    for (int ic = m0; ic < m1; ic += MC)
                    {
                        int mc = Math.Min(MC, m1 - ic);
                        PackA(_a, ap, ic, mc, pc, kc);
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            float* bStrip = bp + (long)jr * kc;
                            int cols = Math.Min(nr, nc - jr);
                            for (int ir = 0; ir < mc; ir += MR)
                            {
                                float* c = _c + (long)(ic + ir) * _ldc + jc + jr;
                                int rows = Math.Min(MR, mc - ir);
                                float* aStrip = ap + (long)ir * kc;
                                switch (Simd.Level)
                                {
                                    case SimdLevel.V512: Kernel512(kc, aStrip, bStrip, c, _ldc, rows, cols, accumulate); break;
                                    case SimdLevel.V256: Kernel256(kc, aStrip, bStrip, c, _ldc, rows, cols, accumulate); break;
                                    default: KernelScalar(kc, aStrip, bStrip, c, _ldc, rows, cols, accumulate, nr); break;
                                }
                            }
                        }
                    }
                }
            }
    }

    /// <summary>
    /// Strips [s0, s1) of the products' columns (see <see cref="MultiplyByWeights"/>). Per block of KC inputs, A is
    /// packed once — all its rows — for every product that reads it (q, k and v read the same A), then each product's
    /// strips of W are packed and run against it.
    /// </summary>
    void ExecuteWeightStrips(int s0, int s1)
    {
        int nr = _nr, m = _m, mPad = (m + MR - 1) / MR * MR;
        var packA = t_packA is { } pa && pa.Length >= mPad * KC ? pa : t_packA = GC.AllocateUninitializedArray<float>(Math.Max(mPad, MC) * KC, pinned: true);
        var packB = t_packB is { } pb && pb.Length >= KC * NC ? pb : t_packB = GC.AllocateUninitializedArray<float>(KC * NC, pinned: true);
        int kMax = 0;
        for (int i = 0; i < _productCount; i++) kMax = Math.Max(kMax, _products[i].W.Cols);
        fixed (float* ap = packA, bp = packB)
            for (int pc = 0; pc < kMax; pc += KC)
            {
                var packedA = default(StridedMatrix); // the A (and block width) ap holds now
                int packedKc = 0;
                for (int i = 0; i < _productCount; i++)
                {
                    int s = Math.Max(s0, _firstStrip[i]), e = Math.Min(s1, _firstStrip[i + 1]);
                    var p = _products[i];
                    int k = p.W.Cols;
                    if (s >= e || pc >= k) continue;
                    int col0 = (s - _firstStrip[i]) * nr, col1 = Math.Min((e - _firstStrip[i]) * nr, p.W.Rows);
                    int kc = Math.Min(KC, k - pc);
                    bool accumulate = pc > 0;
                    if (packedA.Data != p.A.Data || packedA.RowStride != p.A.RowStride || packedA.ColStride != p.A.ColStride || packedKc != kc)
                    {
                        PackA(p.A, ap, 0, m, pc, kc);
                        (packedA, packedKc) = (p.A, kc);
                    }
                    for (int jc = col0; jc < col1; jc += NC)
                    {
                        int nc = Math.Min(NC, col1 - jc);
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            float* strip = bp + (long)jr * kc;
                            int cols = Math.Min(nr, nc - jr);
                            if (cols < nr) new Span<float>(strip, kc * nr).Clear();
                            PackWeights(p.W, strip, pc, kc, jc + jr, cols, nr);
                        }
                        // Blocks of MC rows of A, so a block and the strips of W it meets stay in cache together.
                        for (int ic = 0; ic < m; ic += MC)
                        {
                            int mc = Math.Min(MC, m - ic);
                            for (int jr = 0; jr < nc; jr += nr)
                            {
                                float* bStrip = bp + (long)jr * kc;
                                int cols = Math.Min(nr, nc - jr);
                                for (int ir = 0; ir < mc; ir += MR)
                                {
                                    float* c = p.C + (long)(ic + ir) * p.Ldc + jc + jr;
                                    int rows = Math.Min(MR, mc - ir);
                                    float* aStrip = ap + (long)(ic + ir) * kc;
                                    switch (Simd.Level)
                                    {
                                        case SimdLevel.V512: Kernel512(kc, aStrip, bStrip, c, p.Ldc, rows, cols, accumulate); break;
                                        case SimdLevel.V256: Kernel256(kc, aStrip, bStrip, c, p.Ldc, rows, cols, accumulate); break;
                                        default: KernelScalar(kc, aStrip, bStrip, c, p.Ldc, rows, cols, accumulate, nr); break;
                                    }
                                }
                            }
                        }
                    }
                }
            }
    }

    /// <summary>A block [ic, ic+mc) × [pc, pc+kc) as strips of MR rows, k-major (MR values per k), zero-padded.</summary>
    static void PackA(StridedMatrix a, float* dst, int ic, int mc, int pc, int kc)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            float* strip = dst + (long)ir * kc;
            int rows = Math.Min(MR, mc - ir);
            if (rows < MR) new Span<float>(strip, kc * MR).Clear();
            else if (a.ColStride == 1 && Simd.Level == SimdLevel.V512 && Avx512F.IsSupported)
            {
                float* s0 = a.Data + (long)(ic + ir) * a.RowStride + pc;
                int p = 0;
                for (; p + 16 <= kc; p += 16) Interleave4(s0 + p, a.RowStride, strip + p * MR);
                for (; p < kc; p++)
                    for (int r = 0; r < MR; r++) strip[p * MR + r] = s0[(long)r * a.RowStride + p];
                continue;
            }
            for (int r = 0; r < rows; r++)
            {
                float* src = a.Data + (long)(ic + ir + r) * a.RowStride + (long)pc * a.ColStride;
                long cs = a.ColStride;
                for (int p = 0; p < kc; p++) strip[p * MR + r] = src[p * cs];
            }
        }
    }

    /// <summary>dst[4p + r] = src[r·lds + p] for four rows of sixteen: pairs, then quads, then 128-bit lanes twice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Interleave4(float* src, long lds, float* dst)
    {
        var r0 = Vector512.Load(src); var r1 = Vector512.Load(src + lds); var r2 = Vector512.Load(src + 2 * lds); var r3 = Vector512.Load(src + 3 * lds);
        var a = Avx512F.UnpackLow(r0, r1).AsDouble(); var b = Avx512F.UnpackHigh(r0, r1).AsDouble();
        var c = Avx512F.UnpackLow(r2, r3).AsDouble(); var d = Avx512F.UnpackHigh(r2, r3).AsDouble();
        // Per 128-bit lane l: e holds p = 4l (rows 0..3), f 4l+1, g 4l+2, h 4l+3.
        var e = Avx512F.UnpackLow(a, c).AsSingle(); var f = Avx512F.UnpackHigh(a, c).AsSingle();
        var g = Avx512F.UnpackLow(b, d).AsSingle(); var h = Avx512F.UnpackHigh(b, d).AsSingle();
        var u0 = Avx512F.Shuffle4x128(e, f, 0x44); var u1 = Avx512F.Shuffle4x128(e, f, 0xEE);
        var u2 = Avx512F.Shuffle4x128(g, h, 0x44); var u3 = Avx512F.Shuffle4x128(g, h, 0xEE);
        Avx512F.Shuffle4x128(u0, u2, 0x88).Store(dst); Avx512F.Shuffle4x128(u0, u2, 0xDD).Store(dst + 16);
        Avx512F.Shuffle4x128(u1, u3, 0x88).Store(dst + 32); Avx512F.Shuffle4x128(u1, u3, 0xDD).Store(dst + 48);
    }

    /// <summary>B block [pc, pc+kc) × [jc, jc+nc) as strips of NR columns, k-major (NR values per k), zero-padded.</summary>
    void PackB(float* dst, int pc, int kc, int jc, int nc, int nr)
    {
        var b = _b;
        for (int jr = 0; jr < nc; jr += nr)
        {
            float* strip = dst + (long)jr * kc;
            int cols = Math.Min(nr, nc - jr);
            if (cols < nr) new Span<float>(strip, kc * nr).Clear();
            float* origin = b.Data + (long)pc * b.RowStride + (long)(jc + jr) * b.ColStride;
            if (b.ColStride == 1)
                for (int p = 0; p < kc; p++)
                    new ReadOnlySpan<float>(origin + (long)p * b.RowStride, cols).CopyTo(new Span<float>(strip + p * nr, cols));
            else
                for (int j = 0; j < cols; j++)
                {
                    float* src = origin + (long)j * b.ColStride;
                    long rs = b.RowStride;
                    for (int p = 0; p < kc; p++) strip[p * nr + j] = src[p * rs];
                }
        }
    }

    /// <summary>
    /// A strip of Wᵀ: columns [n0, n0+cols) of B are rows of W, each converted over [pc, pc+kc) and laid
    /// k-major. pc is a multiple of KC, itself a multiple of the Q8_0 block, so a range starts on a block.
    /// </summary>
    static void PackWeights(WeightMatrix w, float* strip, int pc, int kc, int n0, int cols, int nr)
    {
        var type = w.Type;
        long skip = type.RowBytes(pc);
        int j = 0;
        if (Simd.Level == SimdLevel.V512 && Avx512F.IsSupported && type == WeightType.BF16)
        {
            // BF16 widened in registers on the way into the transpose: no tile, no call per row.
            int whole = kc & ~15;
            for (; j + 16 <= cols; j += 16)
            {
                ushort* src = (ushort*)(w.Row(n0 + j) + skip);
                long lds = w.RowBytes / sizeof(ushort);
                for (int p = 0; p < whole; p += 16) TransposeBf16x16(src + p, lds, strip + p * nr + j, nr);
                for (int p = whole; p < kc; p++)
                    for (int r = 0; r < 16; r++) strip[p * nr + j + r] = BitConverter.Int32BitsToSingle(src[r * lds + p] << 16);
            }
        }
        else if (Simd.Level == SimdLevel.V512 && Avx512F.IsSupported)
        {
            // Sixteen rows converted into a tile, then transposed sixteen by sixteen in registers (a scalar
            // store per value made packing the whole cost of a short prompt).
            float* tile = stackalloc float[16 * KC];
            int whole = kc & ~15;
            for (; j + 16 <= cols; j += 16)
            {
                for (int r = 0; r < 16; r++) Dot.Dequantize(type, w.Row(n0 + j + r) + skip, new Span<float>(tile + r * KC, kc));
                for (int p = 0; p < whole; p += 16) Transpose16(tile + p, KC, strip + p * nr + j, nr);
                for (int p = whole; p < kc; p++)
                    for (int r = 0; r < 16; r++) strip[p * nr + j + r] = tile[r * KC + p];
            }
        }
        float* row = stackalloc float[KC];
        for (; j < cols; j++)
        {
            Dot.Dequantize(type, w.Row(n0 + j) + skip, new Span<float>(row, kc));
            for (int p = 0; p < kc; p++) strip[p * nr + j] = row[p];
        }
    }

    /// <summary>dst[i·ldd + r] = src[r·lds + i] for a 16 × 16 block: interleave pairs, then quads, then 128-bit lanes twice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose16(float* src, int lds, float* dst, int ldd)
    {
        Span<Vector512<float>> r = stackalloc Vector512<float>[16];
        Span<Vector512<float>> t = stackalloc Vector512<float>[16];
        for (int i = 0; i < 16; i++) r[i] = Vector512.Load(src + i * lds);
        for (int i = 0; i < 16; i += 2)
        {
            t[i] = Avx512F.UnpackLow(r[i], r[i + 1]);
            t[i + 1] = Avx512F.UnpackHigh(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4)
        {
            r[i] = Avx512F.Shuffle(t[i], t[i + 2], 0x44);
            r[i + 1] = Avx512F.Shuffle(t[i], t[i + 2], 0xEE);
            r[i + 2] = Avx512F.Shuffle(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = Avx512F.Shuffle(t[i + 1], t[i + 3], 0xEE);
        }
        for (int h = 0; h < 16; h += 8)
            for (int i = 0; i < 4; i++)
            {
                t[h + i] = Avx512F.Shuffle4x128(r[h + i], r[h + i + 4], 0x88);
                t[h + i + 4] = Avx512F.Shuffle4x128(r[h + i], r[h + i + 4], 0xDD);
            }
        for (int i = 0; i < 8; i++)
        {
            Avx512F.Shuffle4x128(t[i], t[i + 8], 0x88).Store(dst + i * ldd);
            Avx512F.Shuffle4x128(t[i], t[i + 8], 0xDD).Store(dst + (i + 8) * ldd);
        }
    }

    /// <summary>
    /// <see cref="Transpose16"/> of sixteen BF16 rows (<paramref name="lds"/> values apart), each widened to f32 as it is
    /// loaded; the sixteen rows and their shuffles stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TransposeBf16x16(ushort* src, long lds, float* dst, int ldd)
    {
        var r0 = Bf16(src + 0 * lds);
        var r1 = Bf16(src + 1 * lds);
        var r2 = Bf16(src + 2 * lds);
        var r3 = Bf16(src + 3 * lds);
        var r4 = Bf16(src + 4 * lds);
        var r5 = Bf16(src + 5 * lds);
        var r6 = Bf16(src + 6 * lds);
        var r7 = Bf16(src + 7 * lds);
        var r8 = Bf16(src + 8 * lds);
        var r9 = Bf16(src + 9 * lds);
        var r10 = Bf16(src + 10 * lds);
        var r11 = Bf16(src + 11 * lds);
        var r12 = Bf16(src + 12 * lds);
        var r13 = Bf16(src + 13 * lds);
        var r14 = Bf16(src + 14 * lds);
        var r15 = Bf16(src + 15 * lds);
        var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11); var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13); var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15); var t15 = Avx512F.UnpackHigh(r14, r15);
        r0 = Avx512F.Shuffle(t0, t2, 0x44); r1 = Avx512F.Shuffle(t0, t2, 0xEE);
        r2 = Avx512F.Shuffle(t1, t3, 0x44); r3 = Avx512F.Shuffle(t1, t3, 0xEE);
        r4 = Avx512F.Shuffle(t4, t6, 0x44); r5 = Avx512F.Shuffle(t4, t6, 0xEE);
        r6 = Avx512F.Shuffle(t5, t7, 0x44); r7 = Avx512F.Shuffle(t5, t7, 0xEE);
        r8 = Avx512F.Shuffle(t8, t10, 0x44); r9 = Avx512F.Shuffle(t8, t10, 0xEE);
        r10 = Avx512F.Shuffle(t9, t11, 0x44); r11 = Avx512F.Shuffle(t9, t11, 0xEE);
        r12 = Avx512F.Shuffle(t12, t14, 0x44); r13 = Avx512F.Shuffle(t12, t14, 0xEE);
        r14 = Avx512F.Shuffle(t13, t15, 0x44); r15 = Avx512F.Shuffle(t13, t15, 0xEE);
        t0 = Avx512F.Shuffle4x128(r0, r4, 0x88); t4 = Avx512F.Shuffle4x128(r0, r4, 0xDD);
        t1 = Avx512F.Shuffle4x128(r1, r5, 0x88); t5 = Avx512F.Shuffle4x128(r1, r5, 0xDD);
        t2 = Avx512F.Shuffle4x128(r2, r6, 0x88); t6 = Avx512F.Shuffle4x128(r2, r6, 0xDD);
        t3 = Avx512F.Shuffle4x128(r3, r7, 0x88); t7 = Avx512F.Shuffle4x128(r3, r7, 0xDD);
        t8 = Avx512F.Shuffle4x128(r8, r12, 0x88); t12 = Avx512F.Shuffle4x128(r8, r12, 0xDD);
        t9 = Avx512F.Shuffle4x128(r9, r13, 0x88); t13 = Avx512F.Shuffle4x128(r9, r13, 0xDD);
        t10 = Avx512F.Shuffle4x128(r10, r14, 0x88); t14 = Avx512F.Shuffle4x128(r10, r14, 0xDD);
        t11 = Avx512F.Shuffle4x128(r11, r15, 0x88); t15 = Avx512F.Shuffle4x128(r11, r15, 0xDD);
        Avx512F.Shuffle4x128(t0, t8, 0x88).Store(dst + 0 * ldd); Avx512F.Shuffle4x128(t0, t8, 0xDD).Store(dst + 8 * ldd);
        Avx512F.Shuffle4x128(t1, t9, 0x88).Store(dst + 1 * ldd); Avx512F.Shuffle4x128(t1, t9, 0xDD).Store(dst + 9 * ldd);
        Avx512F.Shuffle4x128(t2, t10, 0x88).Store(dst + 2 * ldd); Avx512F.Shuffle4x128(t2, t10, 0xDD).Store(dst + 10 * ldd);
        Avx512F.Shuffle4x128(t3, t11, 0x88).Store(dst + 3 * ldd); Avx512F.Shuffle4x128(t3, t11, 0xDD).Store(dst + 11 * ldd);
        Avx512F.Shuffle4x128(t4, t12, 0x88).Store(dst + 4 * ldd); Avx512F.Shuffle4x128(t4, t12, 0xDD).Store(dst + 12 * ldd);
        Avx512F.Shuffle4x128(t5, t13, 0x88).Store(dst + 5 * ldd); Avx512F.Shuffle4x128(t5, t13, 0xDD).Store(dst + 13 * ldd);
        Avx512F.Shuffle4x128(t6, t14, 0x88).Store(dst + 6 * ldd); Avx512F.Shuffle4x128(t6, t14, 0xDD).Store(dst + 14 * ldd);
        Avx512F.Shuffle4x128(t7, t15, 0x88).Store(dst + 7 * ldd); Avx512F.Shuffle4x128(t7, t15, 0xDD).Store(dst + 15 * ldd);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Bf16(ushort* p) => Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default,
            c10 = default, c11 = default, c12 = default, c13 = default,
            c20 = default, c21 = default, c22 = default, c23 = default,
            c30 = default, c31 = default, c32 = default, c33 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 64)
        {
            var b0 = Vector512.Load(b); var b1 = Vector512.Load(b + 16); var b2 = Vector512.Load(b + 32); var b3 = Vector512.Load(b + 48);
            var x = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(x, b2, c02); c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            x = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(x, b2, c12); c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            x = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(x, b2, c22); c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            x = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(x, b2, c32); c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
        }
        if (rows == MR && cols == 64)
        {
            Put512(c, c00, c01, c02, c03, accumulate); Put512(c + ldc, c10, c11, c12, c13, accumulate);
            Put512(c + 2L * ldc, c20, c21, c22, c23, accumulate); Put512(c + 3L * ldc, c30, c31, c32, c33, accumulate);
            return;
        }
        float* tile = stackalloc float[MR * 64];
        Put512(tile, c00, c01, c02, c03, false); Put512(tile + 64, c10, c11, c12, c13, false);
        Put512(tile + 128, c20, c21, c22, c23, false); Put512(tile + 192, c30, c31, c32, c33, false);
        Scatter(tile, 64, c, ldc, rows, cols, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Put512(float* row, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector512.Load(row); v1 += Vector512.Load(row + 16); v2 += Vector512.Load(row + 32); v3 += Vector512.Load(row + 48);
        }
        v0.Store(row); v1.Store(row + 16); v2.Store(row + 32); v3.Store(row + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default,
            c10 = default, c11 = default, c12 = default, c13 = default,
            c20 = default, c21 = default, c22 = default, c23 = default,
            c30 = default, c31 = default, c32 = default, c33 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 32)
        {
            var b0 = Vector256.Load(b); var b1 = Vector256.Load(b + 8); var b2 = Vector256.Load(b + 16); var b3 = Vector256.Load(b + 24);
            var x = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            c02 = Vector256.FusedMultiplyAdd(x, b2, c02); c03 = Vector256.FusedMultiplyAdd(x, b3, c03);
            x = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            c12 = Vector256.FusedMultiplyAdd(x, b2, c12); c13 = Vector256.FusedMultiplyAdd(x, b3, c13);
            x = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            c22 = Vector256.FusedMultiplyAdd(x, b2, c22); c23 = Vector256.FusedMultiplyAdd(x, b3, c23);
            x = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            c32 = Vector256.FusedMultiplyAdd(x, b2, c32); c33 = Vector256.FusedMultiplyAdd(x, b3, c33);
        }
        float* tile = stackalloc float[MR * 32];
        c00.Store(tile); c01.Store(tile + 8); c02.Store(tile + 16); c03.Store(tile + 24);
        c10.Store(tile + 32); c11.Store(tile + 40); c12.Store(tile + 48); c13.Store(tile + 56);
        c20.Store(tile + 64); c21.Store(tile + 72); c22.Store(tile + 80); c23.Store(tile + 88);
        c30.Store(tile + 96); c31.Store(tile + 104); c32.Store(tile + 112); c33.Store(tile + 120);
        Scatter(tile, 32, c, ldc, rows, cols, accumulate);
    }

    /// <summary>The reference path: the same fused multiply-add chain per element, one element at a time.</summary>
    static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, bool accumulate, int nr)
    {
        float* tile = stackalloc float[MR * nr];
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < nr; j++)
            {
                float s = 0;
                for (int p = 0; p < kc; p++) s = MathF.FusedMultiplyAdd(a[p * MR + r], b[p * nr + j], s);
                tile[r * nr + j] = s;
            }
        Scatter(tile, nr, c, ldc, rows, cols, accumulate);
    }

    static void Scatter(float* tile, int nr, float* c, int ldc, int rows, int cols, bool accumulate)
    {
        for (int r = 0; r < rows; r++)
        {
            float* row = c + (long)r * ldc;
            float* src = tile + r * nr;
            if (accumulate) for (int j = 0; j < cols; j++) row[j] += src[j];
            else for (int j = 0; j < cols; j++) row[j] = src[j];
        }
    }
}

/// <summary>One product of <see cref="Gemm.MultiplyByWeights"/>: C [m, W.Rows] (rows <paramref name="ldc"/> apart) = A·Wᵀ.</summary>
public readonly unsafe struct WeightProduct(StridedMatrix a, WeightMatrix w, float* c, int ldc)
{
    public readonly StridedMatrix A = a;
    public readonly WeightMatrix W = w;
    public readonly float* C = c;
    public readonly int Ldc = ldc;
}
