using System.Diagnostics;
using Attune.Tensors;

namespace Attune.Bench;

/// <summary>
/// A decode step's matrix-vector products alone, in a SmolLM2-135M layout (30 layers of q/k/v, o,
/// gate/up and down, run as the engine groups them, then the 49152-row output), on zero weights in
/// anonymous memory: the GB/s the kernels and the pool reach without attention or the mapped file.
/// <c>hot</c> reruns one layer's matrices 30 times (they stay in cache), to show the kernels' own speed.
/// </summary>
public static unsafe class LayerSim
{
    public static void Run(int threads, bool hot = false)
    {
        using var pool = new WorkerPool(threads);
        int layers = 30, d = 576, kv = 192, ff = 1536, vocab = 49152;
        foreach (var type in new[] { WeightType.F32, WeightType.BF16, WeightType.Q8_0 })
        {
            var shapes = new List<(int R, int C)>();
            for (int l = 0; l < (hot ? 1 : layers); l++) shapes.AddRange([(d, d), (kv, d), (kv, d), (d, d), (ff, d), (ff, d), (d, ff)]);
            shapes.Add((vocab, d));
            long total = shapes.Sum(s => type.RowBytes(s.C) * s.R);
            var mem = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)total, 4096);
            var rng = new Random(1);
            for (long i = 0; i < total; i += 8) *(long*)(mem + i) = 0;
            if (type == WeightType.Q8_0) for (long b = 0; b < total / 34; b++) *(ushort*)(mem + b * 34) = 0x3C00;
            var ms = new List<WeightMatrix>();
            long off = 0;
            foreach (var (r, c) in shapes) { ms.Add(new WeightMatrix(mem + off, type, r, c)); off += type.RowBytes(c) * r; }
            var x = GC.AllocateArray<float>(ff, pinned: true); var y = GC.AllocateArray<float>(vocab, pinned: true);
            var y2 = GC.AllocateArray<float>(ff, pinned: true); var y3 = GC.AllocateArray<float>(ff, pinned: true);
            var mm = new MatMul();
            {
                float* xp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref x[0]), yp = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref y[0]);
                float* y2p = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref y2[0]), y3p = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref y3[0]);
                void Step()
                {
                    for (int l = 0; l < layers; l++)
                    {
                        int i = hot ? 0 : l * 7;
                        mm.Run(pool, xp, 1, new Linear(ms[i], yp), new Linear(ms[i + 1], y2p), new Linear(ms[i + 2], y3p));
                        mm.Run(pool, xp, 1, new Linear(ms[i + 3], yp));
                        mm.Run(pool, xp, 1, new Linear(ms[i + 4], yp), new Linear(ms[i + 5], y2p));
                        mm.Run(pool, xp, 1, new Linear(ms[i + 6], yp));
                    }
                    if (!hot) mm.Run(pool, xp, 1, new Linear(ms[^1], yp));
                }
                for (int i = 0; i < 5; i++) Step();
                var sw = Stopwatch.StartNew();
                int reps = 50;
                for (int i = 0; i < reps; i++) Step();
                double ms1 = sw.Elapsed.TotalMilliseconds / reps;
                if (hot) total = (total - type.RowBytes(d) * vocab) * layers;
                Console.WriteLine($"{type}: {total / 1e6:F0} MB per step, {ms1:F2} ms, {total / ms1 / 1e6:F1} GB/s");
            }
            System.Runtime.InteropServices.NativeMemory.AlignedFree(mem);
        }
    }
}
