using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Modeling;
using Attune.Training;

namespace Attune.Tests.Training;

/// <summary>Bit-exact comparisons between runs: kept out of the way of tests that switch the process-wide SIMD level.</summary>
[Collection("Simd")]
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
    [InlineData(TransformerTests.Gemma2)]
    [InlineData(TransformerTests.Gemma3)]
    [InlineData(TransformerTests.Olmo2)]
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
    [InlineData(TransformerTests.Gemma2)]
    [InlineData(TransformerTests.Gemma3)]
    [InlineData(TransformerTests.Olmo2)]
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

    [Fact]
    public void A_batch_laid_end_to_end_equals_its_sequences_one_by_one_and_any_thread_count()
    {
        var (model, ckpt, tmp) = Make(TransformerTests.Qwen2Untied);
        using var _ = tmp;
        using var __ = ckpt;
        var batch = new List<TrainingExample>
        {
            new([3, 1, 4, 1, 5], [1, 4, 1, 5, 9]),
            new([2, 7, 1], [7, CrossEntropy.Ignore, 8]),
            new([6, 6, 6, 6, 6, 6, 6], [6, 6, 6, 6, 6, 6, 6]),
        };
        float[] scales = [0.5f, 2f, 1f];
        Dictionary<string, float[]> Run(WorkerPool? pool, bool together, out double[] sums)
        {
            model.Pool = pool;
            model.ZeroGradients();
            if (together)
            {
                sums = model.Forward(batch);
                model.Backward(scales);
            }
            else
            {
                sums = new double[batch.Count];
                for (int s = 0; s < batch.Count; s++)
                {
                    sums[s] = model.Forward([batch[s]])[0];
                    model.Backward([scales[s]]);
                }
            }
            return model.Gradients.ToDictionary(g => g.Key, g => (float[])g.Value.Clone());
        }
        using var pool = new WorkerPool(2);
        var oneByOne = Run(null, together: false, out var sumsApart);
        var together = Run(null, together: true, out var sumsTogether);
        var threaded = Run(pool, together: true, out var sumsThreaded);
        for (int s = 0; s < batch.Count; s++)
        {
            Assert.True(Math.Abs(sumsApart[s] - sumsTogether[s]) < 1e-5 * Math.Max(1, sumsApart[s]), $"sequence {s}");
            Assert.Equal(sumsTogether[s], sumsThreaded[s]);
        }
        foreach (var (name, g) in oneByOne)
        {
            for (int i = 0; i < g.Length; i++)
                Assert.True(Math.Abs(g[i] - together[name][i]) <= 1e-5 + 1e-4 * Math.Abs(g[i]), $"{name}[{i}]: {g[i]} vs {together[name][i]}");
            Assert.True(together[name].AsSpan().SequenceEqual(threaded[name]), $"{name}: 2 threads differ from 1 in some bit");
        }
    }

    [Fact]
    public void Lora_starts_at_the_base_trains_only_adapters_and_saves_a_merged_checkpoint_that_computes_the_same()
    {
        var (model, ckpt, tmp) = Make(TransformerTests.Qwen2Untied);
        using var _ = tmp;
        using var __ = ckpt;
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        int[] targets = [1, 4, 1, 5, 9, 2, 6, 5];
        double before = model.ForwardBackward(tokens, targets);
        var baseWeights = model.Parameters.ToDictionary(p => p.Key, p => (float[])p.Value.Clone());
        model.AddLora(new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "mlp\\..*"] });
        Assert.All(model.Gradients.Keys, n => Assert.True(LoraConfig.IsAdapterName(n), n));
        Assert.Contains("model.layers.0.self_attn.q_proj.lora_A.weight", model.Gradients.Keys);
        Assert.Contains("model.layers.1.mlp.down_proj.lora_B.weight", model.Gradients.Keys);
        Assert.DoesNotContain("model.layers.0.self_attn.v_proj.lora_A.weight", model.Gradients.Keys);
        model.ZeroGradients();
        Assert.Equal(before, model.ForwardBackward(tokens, targets), 6); // B = 0: exactly the base

        var opt = model.Gradients.ToDictionary(g => g.Key, g => new AdamW(g.Value.Length, weightDecay: 0));
        double loss = 0;
        for (int step = 0; step < 30; step++)
        {
            model.ZeroGradients();
            loss = model.ForwardBackward(tokens, targets);
            foreach (var (name, g) in model.Gradients) opt[name].Update(model.Parameters[name], g, 1e-2);
        }
        Assert.True(loss < 0.5 * before, $"LoRA training: {before} -> {loss}");
        foreach (var (name, w) in baseWeights) Assert.True(w.AsSpan().SequenceEqual(model.Parameters[name]), $"{name} moved");

        using var outDir = new TempDir();
        model.WriteCheckpointFiles(outDir.Path, ckpt, DType.F32);
        using var merged = Checkpoint.Open(outDir.Path);
        Assert.DoesNotContain(merged.Weights.Names, LoraConfig.IsAdapterName);
        var plain = TrainableModel.FromCheckpoint(merged);
        double adapted = model.ForwardBackward(tokens, targets), fromMerged = plain.ForwardBackward(tokens, targets);
        Assert.True(Math.Abs(fromMerged - adapted) < 1e-4, $"the merged checkpoint computes what the adapted model does: {fromMerged} vs {adapted}");

        // The adapters alone round-trip through PEFT's files.
        model.WriteAdapterFiles(outDir.Path, ckpt.Directory);
        var reloaded = TrainableModel.FromCheckpoint(ckpt);
        reloaded.AddLora(new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "mlp\\..*"], Seed = 99 });
        reloaded.LoadAdapterFiles(outDir.Path);
        Assert.Equal(model.ForwardBackward(tokens, targets), reloaded.ForwardBackward(tokens, targets), 6);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(outDir.Path, LoraConfig.AdapterConfigFile)))!;
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
    }

    [Fact]
    public void Lora_gradients_match_finite_differences()
    {
        var (model, ckpt, tmp) = Make(TransformerTests.Qwen3);
        using var _ = tmp;
        using var __ = ckpt;
        model.AddLora(new LoraConfig { Rank = 2, Alpha = 4, TargetModules = [LoraConfig.AllLinear] });
        var rng = new Random(8);
        foreach (var (name, p) in model.Parameters.Where(p => LoraConfig.IsAdapterName(p.Key)))
            for (int i = 0; i < p.Length; i++) p[i] = (float)(rng.NextDouble() - 0.5) * 0.2f; // B ≠ 0, so A's gradient is alive
        int[] tokens = [2, 7, 1, 8, 2, 8];
        int[] targets = [7, 1, 8, 2, 8, 1];
        model.ZeroGradients();
        model.ForwardBackward(tokens, targets);
        var analytic = model.Gradients.ToDictionary(g => g.Key, g => (float[])g.Value.Clone());
        foreach (var name in analytic.Keys.OrderBy(_ => rng.Next()).Take(10))
        {
            var p = model.Parameters[name];
            int i = rng.Next(p.Length);
            float saved = p[i];
            const float h = 1e-2f;
            p[i] = saved + h; double up = model.ForwardBackward(tokens, targets);
            p[i] = saved - h; double down = model.ForwardBackward(tokens, targets);
            p[i] = saved;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic[name][i]) <= 2e-3 + 0.05 * Math.Abs(numeric), $"{name}[{i}]: numeric {numeric:G5} vs analytic {analytic[name][i]:G5}");
        }
    }
}
