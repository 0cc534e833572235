using Attune.Training;

namespace Attune.Tests.Training;

[Collection("Simd")]
public class OptimizerTests
{
    [Fact]
    public void AdamW_follows_the_formula_with_bias_correction_and_decoupled_decay()
    {
        var w = new float[] { 1.0f, -2.0f };
        var opt = new AdamW(2, beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.1);
        double[] wd = [1.0, -2.0], m = [0, 0], v = [0, 0];
        float[][] grads = [[0.5f, -1f], [0.25f, 2f], [-1f, 0.5f]];
        for (int step = 1; step <= 3; step++)
        {
            var g = grads[step - 1];
            opt.Update(w, g, lr: 0.01);
            for (int i = 0; i < 2; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
                double mh = m[i] / (1 - Math.Pow(0.9, step)), vh = v[i] / (1 - Math.Pow(0.99, step));
                wd[i] = wd[i] - 0.01 * 0.1 * wd[i] - 0.01 * mh / (Math.Sqrt(vh) + 1e-8);
                Assert.True(Math.Abs(wd[i] - w[i]) < 1e-6, $"step {step}, weight {i}: {w[i]} vs {wd[i]}");
            }
        }
        Assert.Equal(3, opt.Step);
        // The first step moves every weight by about lr whatever the gradient's size (Adam's normalisation).
        var w1 = new float[] { 0f };
        new AdamW(1, weightDecay: 0).Update(w1, [123f], lr: 0.01);
        Assert.True(Math.Abs(w1[0] + 0.01f) < 1e-6);
    }

    [Fact]
    public void Clipping_scales_all_gradients_to_the_global_norm_and_leaves_small_ones_alone()
    {
        var a = new float[] { 3, 0 };
        var b = new float[] { 0, 4 };
        double norm = GradientClipping.ClipByGlobalNorm([a, b], 1.0);
        Assert.Equal(5, norm, 6);
        Assert.True(Math.Abs(a[0] - 0.6f) < 1e-5 && Math.Abs(b[1] - 0.8f) < 1e-5);
        var c = new float[] { 0.1f };
        GradientClipping.ClipByGlobalNorm([c], 1.0);
        Assert.Equal(0.1f, c[0]);
    }

    [Fact]
    public void Schedules_warm_up_linearly_then_hold_or_decay()
    {
        var constant = new LearningRateSchedule { Peak = 1e-3, WarmupSteps = 4 }.Validate();
        Assert.Equal([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3], Enumerable.Range(0, 5).Select(constant.At));
        var cosine = new LearningRateSchedule { Peak = 1.0, Decay = LearningRateSchedule.Shape.Cosine, WarmupSteps = 0, TotalSteps = 100, MinRatio = 0.1 };
        Assert.Equal(1.0, cosine.At(0), 9);
        Assert.Equal(0.55, cosine.At(50), 9);
        Assert.Equal(0.1, cosine.At(100), 9);
        var linear = new LearningRateSchedule { Peak = 2.0, Decay = LearningRateSchedule.Shape.Linear, WarmupSteps = 10, TotalSteps = 110 };
        Assert.Equal(1.0, linear.At(60), 9);
        Assert.Contains("--lr", Assert.Throws<AttuneException>(() => new LearningRateSchedule { Peak = 0 }.Validate()).Message);
    }

    [Fact]
    public void AdamW_gives_the_same_bits_on_every_simd_level_and_thread_count()
    {
        var saved = Attune.Tensors.Simd.Level;
        try
        {
            var rng = new Random(4);
            int n = (1 << 15) + 37;
            var w0 = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            var g = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            float[]? first = null;
            using var pool = new Attune.Tensors.WorkerPool(2);
            foreach (var level in new[] { Attune.Tensors.SimdLevel.Scalar, Attune.Tensors.SimdLevel.V256, Attune.Tensors.SimdLevel.V512 })
                foreach (var p in new[] { null, pool })
                {
                    Attune.Tensors.Simd.Level = level;
                    var w = (float[])w0.Clone();
                    var opt = new AdamW(n, weightDecay: 0.1);
                    for (int step = 0; step < 3; step++) opt.Update(w, g, 1e-3, p);
                    if (first is null) first = w;
                    else Assert.True(first.AsSpan().SequenceEqual(w), $"{level}, {(p is null ? 1 : 2)} threads");
                }
        }
        finally { Attune.Tensors.Simd.Level = saved; }
    }
}
