using System.Diagnostics;
using Attune.Tensors;

namespace Attune.Bench;

/// <summary>Kernel-level figures: pool dispatch cost, matrix-vector GB/s, matrix-matrix GFLOP/s.</summary>
public static unsafe class KernelBench
{
    sealed class Nothing : IRangeJob { public void Execute(int s, int e) { } }

    public static void Run(int threads)
    {
        using var pool = new WorkerPool(threads);
        var job = new Nothing();
        for (int i = 0; i < 1000; i++) pool.Run(job, 100);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 100_000; i++) pool.Run(job, 100);
        Console.WriteLine($"pool dispatch: {sw.Elapsed.TotalMicroseconds / 100_000:F2} µs per job");

        foreach (var type in new[] { WeightType.F32, WeightType.BF16, WeightType.F16, WeightType.Q8_0 })
        {
            int rows = 49152, cols = 576;
            long bytes = type.RowBytes(cols) * rows;
            var w = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
            var rng = new Random(1);
            for (long i = 0; i < bytes; i++) w[i] = (byte)rng.Next(256);
            if (type == WeightType.F16) for (long i = 0; i < bytes / 2; i++) ((ushort*)w)[i] &= 0x3BFF; // finite halves
            if (type == WeightType.F32) for (long i = 0; i < bytes / 4; i++) ((float*)w)[i] = (float)rng.NextDouble();
            if (type == WeightType.Q8_0) for (int b = 0; b < rows * cols / 32; b++) *(ushort*)(w + b * 34L) = 0x3C00;
            var m = new WeightMatrix(w, type, rows, cols);
            var x = new float[cols * 512];
            var y = new float[rows * 4];
            var mm = new MatMul();
            fixed (float* xp = x, yp = y)
            {
                for (int i = 0; i < 3; i++) mm.Run(pool, m, xp, 1, yp);
                sw.Restart();
                int reps = 20;
                for (int i = 0; i < reps; i++) mm.Run(pool, m, xp, 1, yp);
                double gbs = bytes * reps / sw.Elapsed.TotalSeconds / 1e9;
                // matrix-matrix on a 1536 x 576 slice with 512 input rows
                var slice = new WeightMatrix(w, type, 1536, cols);
                var y2 = new float[1536 * 512];
                fixed (float* y2p = y2)
                {
                    mm.Run(pool, slice, xp, 512, y2p);
                    sw.Restart();
                    mm.Run(pool, slice, xp, 512, y2p);
                    mm.Run(pool, slice, xp, 512, y2p);
                    double gflops = 2.0 * 1536 * cols * 512 * 2 / sw.Elapsed.TotalSeconds / 1e9;
                    Console.WriteLine($"{type}: matvec {gbs:F1} GB/s ({bytes / 1e6:F0} MB matrix), matmul {gflops:F0} GFLOP/s (1536x576 x 512 rows)");
                }
            }
            System.Runtime.InteropServices.NativeMemory.AlignedFree(w);
        }
        GemmFigures(pool);
    }

    /// <summary>The training product in the three layouts a linear layer uses (forward, dX, dW), T = 1024 tokens.</summary>
    static void GemmFigures(WorkerPool pool)
    {
        int t = 1024, rows = 1536, cols = 576;
        var w = GC.AllocateArray<float>(rows * cols, pinned: true); var x = GC.AllocateArray<float>(t * cols, pinned: true); var y = GC.AllocateArray<float>(t * rows, pinned: true);
        var rng = new Random(2);
        foreach (var arr in new[] { w, x, y }) for (int i = 0; i < arr.Length; i++) arr[i] = (float)rng.NextDouble() - 0.5f;
        float* wp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref w[0]), xp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref x[0]), yp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref y[0]);
        {
            var cases = new (string Name, Action Run)[]
            {
                ("forward Y = X·Wᵀ", () => Gemm.Multiply(pool, t, rows, cols, StridedMatrix.RowMajor(xp, cols), StridedMatrix.Transposed(wp, cols), yp, rows, false)),
                ("dX = dY·W", () => Gemm.Multiply(pool, t, cols, rows, StridedMatrix.RowMajor(yp, rows), StridedMatrix.RowMajor(wp, cols), xp, cols, false)),
                ("dW += dYᵀ·X", () => Gemm.Multiply(pool, rows, cols, t, StridedMatrix.Transposed(yp, rows), StridedMatrix.RowMajor(xp, cols), wp, cols, true)),
            };
            foreach (var (name, run) in cases)
            {
                run(); run();
                var sw = Stopwatch.StartNew();
                int reps = 10;
                for (int i = 0; i < reps; i++) run();
                Console.WriteLine($"gemm {name}: {2.0 * t * rows * cols * reps / sw.Elapsed.TotalSeconds / 1e9:F0} GFLOP/s ({t}x{cols} · {cols}x{rows}, {pool.Threads} threads)");
            }
        }
    }
}
