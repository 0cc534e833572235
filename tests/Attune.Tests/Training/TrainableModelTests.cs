using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Modeling;
using Attune.Training;

namespace Attune.Tests.Training;

public class TrainableModelTests
{
    static (TrainableModel Model, Checkpoint Ckpt, TempDir Tmp) Make(string config)
    {
        var tmp = new TempDir();
        TinyModels.Write(tmp.Path, config, DType.F32, seed: 5);
        var ckpt = Checkpoint.Open(tmp.Path);
        return (TrainableModel.FromCheckpoint(ckpt), ckpt, tmp);
    }

    [Theory]
    [InlineData(TransformerTests.Qwen3)]
    [InlineData(TransformerTests.Qwen2Untied)]
    public void The_training_forward_gives_the_engines_loss(string config)
    {
        var (model, ckpt, tmp) = Make(config);
        using var _ = tmp;
        using var __ = ckpt;
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        int[] targets = [1, 4, 1, 5, 9, 2, 6, 5];
        double loss = model.ForwardBackward(tokens, targets);
        using var weights = ModelWeights.FromCheckpoint(ckpt);
        var engine = new Transformer(weights);
        var logits = engine.Forward(engine.NewCache(8), tokens, allLogits: true);
        double expected = Enumerable.Range(0, 8).Average(i => -LanguageModel.LogProb(logits.Row(i), targets[i]));
        Assert.True(Math.Abs(loss - expected) < 1e-4 * Math.Max(1, expected), $"{loss} vs {expected}");
    }

    [Theory]
    [InlineData(TransformerTests.Qwen3)]
    [InlineData(TransformerTests.Qwen2Untied)]
    public void Model_gradients_match_finite_differences(string config)
    {
        var (model, ckpt, tmp) = Make(config);
        using var _ = tmp;
        using var __ = ckpt;
        int[] tokens = [2, 7, 1, 8, 2, 8];
        int[] targets = [7, 1, CrossEntropy.Ignore, 2, 8, 1];
        model.ZeroGradients();
        model.ForwardBackward(tokens, targets);
        // Snapshot: the finite-difference evaluations below run the backward too and keep accumulating.
        var analyticGradients = model.Gradients.ToDictionary(g => g.Key, g => (float[])g.Value.Clone());
        var rng = new Random(3);
        var names = model.Parameters.Keys.Where(n => n.Contains("norm") || n.Contains("proj") || n.Contains("embed") || n.Contains("lm_head")).ToList();
        int checkedCount = 0;
        foreach (var name in names.OrderBy(_ => rng.Next()).Take(14))
        {
            var p = model.Parameters[name];
            int i = rng.Next(p.Length);
            float analytic = analyticGradients[name][i];
            float saved = p[i];
            const float h = 1e-2f;
            p[i] = saved + h;
            double up = model.ForwardBackward(tokens, targets);
            p[i] = saved - h;
            double down = model.ForwardBackward(tokens, targets);
            p[i] = saved;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 + 0.05 * Math.Abs(numeric), $"{name}[{i}]: numeric {numeric:G5} vs analytic {analytic:G5}");
            checkedCount++;
        }
        Assert.Equal(14, checkedCount);
    }

    [Fact]
    public void A_few_adamw_steps_memorise_a_short_sequence()
    {
        var (model, ckpt, tmp) = Make(TransformerTests.Qwen3);
        using var _ = tmp;
        using var __ = ckpt;
        int[] tokens = [5, 9, 13, 2, 7, 30, 11, 4, 19, 8];
        int[] targets = [.. tokens[1..], 0];
        var optimizers = model.Parameters.ToDictionary(p => p.Key, p => new AdamW(p.Value.Length, weightDecay: 0));
        double first = 0, last = 0;
        for (int step = 0; step < 40; step++)
        {
            model.ZeroGradients();
            last = model.ForwardBackward(tokens, targets);
            if (step == 0) first = last;
            GradientClipping.ClipByGlobalNorm(model.Gradients.Values.ToList(), 1.0);
            foreach (var (name, p) in model.Parameters) optimizers[name].Update(p, model.Gradients[name], 3e-3);
        }
        Assert.True(last < first * 0.3, $"loss {first:F3} → {last:F3}");
    }
}
