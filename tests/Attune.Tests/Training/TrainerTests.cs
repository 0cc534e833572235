using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Modeling;
using Attune.Training;

namespace Attune.Tests.Training;

/// <summary>Bit-exact comparisons between runs: kept out of the way of tests that switch the process-wide SIMD level.</summary>
[Collection("Simd")]
public class TrainerTests
{
    static List<TrainingExample> Data()
    {
        var rng = new Random(11);
        return Enumerable.Range(0, 7).Select(i =>
        {
            var tokens = Enumerable.Range(0, 5 + i % 3).Select(_ => rng.Next(1, 40)).ToArray();
            int[] targets = [.. tokens[1..], 0];
            if (i % 2 == 0) targets[0] = CrossEntropy.Ignore; // uneven target counts per sequence
            return new TrainingExample(tokens, targets);
        }).ToList();
    }

    static TrainerOptions Options(int steps) => new()
    {
        Steps = steps,
        BatchSize = 2,
        GradientAccumulation = 2,
        Schedule = new LearningRateSchedule { Peak = 2e-3, WarmupSteps = 2, Decay = LearningRateSchedule.Shape.Cosine, TotalSteps = steps },
        WeightDecay = 0.1,
        Seed = 9,
    };

    [Fact]
    public void Every_epoch_reads_each_example_once_in_a_seeded_order()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TransformerTests.Qwen3, DType.F32, seed: 5);
        using var ckpt = Checkpoint.Open(tmp.Path);
        var data = Data();
        var a = new Trainer(TrainableModel.FromCheckpoint(ckpt), data, Options(4));
        var b = new Trainer(TrainableModel.FromCheckpoint(ckpt), data, Options(4));
        var epoch0 = Enumerable.Range(0, 7).Select(k => a.ExampleAt(k)).ToList();
        var epoch1 = Enumerable.Range(7, 7).Select(k => a.ExampleAt(k)).ToList();
        Assert.Equal(Enumerable.Range(0, 7), epoch0.Order());
        Assert.Equal(Enumerable.Range(0, 7), epoch1.Order());
        Assert.NotEqual(epoch0, epoch1);
        Assert.Equal(epoch1, Enumerable.Range(7, 7).Select(k => b.ExampleAt(k)));
    }

    [Fact]
    public void A_step_averages_the_loss_over_every_target_token_of_its_batch()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TransformerTests.Qwen3, DType.F32, seed: 5);
        using var ckpt = Checkpoint.Open(tmp.Path);
        var data = Data();
        var trainer = new Trainer(TrainableModel.FromCheckpoint(ckpt), data, Options(1));
        var probe = TrainableModel.FromCheckpoint(ckpt);
        var batch = Enumerable.Range(0, 4).Select(k => data[trainer.ExampleAt(k)]).ToList();
        double sum = batch.Sum(e => probe.ForwardBackward(e.Tokens, e.Targets) * e.TargetCount);
        double expected = sum / batch.Sum(e => e.TargetCount);
        var m = trainer.TrainStep();
        Assert.Equal(expected, m.Loss, 1e-9);
        Assert.Equal(1, m.Step);
    }

    [Fact]
    public void A_saved_model_reopens_with_the_same_weights()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["src"], TransformerTests.Qwen2Untied, DType.BF16, seed: 5);
        using var ckpt = Checkpoint.Open(tmp["src"]);
        var model = TrainableModel.FromCheckpoint(ckpt);
        model.Parameters[TensorLayout.Embedding][3] = 0.123456789f;
        File.WriteAllText(tmp["src/tokenizer_config.json"], "{}");
        AtomicDirectory.Write(tmp["out"], dir => model.WriteCheckpointFiles(dir, ckpt, DType.F32));
        using var reopened = Checkpoint.Open(tmp["out"]);
        Assert.Equal("float32", System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(tmp["out/config.json"]))!["torch_dtype"]!.GetValue<string>());
        Assert.True(File.Exists(tmp["out/tokenizer_config.json"]));
        var again = TrainableModel.FromCheckpoint(reopened);
        Assert.Equal(model.Parameters.Keys.Order(), again.Parameters.Keys.Order());
        foreach (var (name, p) in model.Parameters) Assert.Equal(p, again.Parameters[name]);
    }

    [Fact]
    public void Resuming_after_a_kill_gives_the_weights_of_an_uninterrupted_run()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["src"], TransformerTests.Qwen3, DType.BF16, seed: 5);
        using var src = Checkpoint.Open(tmp["src"]);
        var data = Data();
        const int steps = 7;
        Trainer Make(TrainableModel m) => new(m, data, Options(steps));

        var whole = new TrainingRun { OutDir = tmp["whole"], SaveEvery = 2 };
        whole.Run(src, Make, steps, resume: false);

        var killed = new TrainingRun { OutDir = tmp["killed"], SaveEvery = 2 };
        Assert.Throws<OperationCanceledException>(() => killed.Run(src, Make, steps, resume: false,
            onStep: m => { if (m.Step == 5) throw new OperationCanceledException("killed"); }));
        Assert.EndsWith("checkpoint-4", TrainingRun.LatestCheckpoint(tmp["killed"]));
        Assert.Throws<AttuneException>(() => killed.Run(src, Make, steps, resume: false));
        var resumed = killed.Run(src, Make, steps, resume: true);
        Assert.Equal(steps, resumed.Step);

        using var a = Checkpoint.Open(tmp["whole"]);
        using var b = Checkpoint.Open(tmp["killed"]);
        foreach (var name in a.Weights.Names) Assert.True(a.Weights.GetView(name).Bytes.SequenceEqual(b.Weights.GetView(name).Bytes), name);
        var lines = File.ReadAllLines(Path.Combine(tmp["killed"], TrainingRun.MetricsFileName));
        Assert.Equal(Enumerable.Range(1, steps), lines.Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["step"]!.GetValue<int>()));
        Assert.Equal(File.ReadAllLines(Path.Combine(tmp["whole"], TrainingRun.MetricsFileName)).Select(Loss), lines.Select(Loss));
        // Only the newest checkpoints are kept.
        Assert.Equal(["checkpoint-6", "checkpoint-7"], Directory.GetDirectories(tmp["killed"]).Select(Path.GetFileName).Order());

        static double Loss(string line) => System.Text.Json.Nodes.JsonNode.Parse(line)!["loss"]!.GetValue<double>();
    }

    [Fact]
    public void Resuming_with_a_different_batch_is_refused()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["src"], TransformerTests.Qwen3, DType.F32, seed: 5);
        using var src = Checkpoint.Open(tmp["src"]);
        var data = Data();
        new TrainingRun { OutDir = tmp["run"], SaveEvery = 1 }.Run(src, m => new Trainer(m, data, Options(2)), 2, resume: false);
        var e = Assert.Throws<AttuneException>(() => new TrainingRun { OutDir = tmp["run"], SaveEvery = 1 }
            .Run(src, m => new Trainer(m, data, Options(3) with { BatchSize = 1 }), 3, resume: true));
        Assert.Contains("sequences_per_step", e.Message);
    }

    [Fact]
    public void Examples_outside_the_vocabulary_are_refused_with_their_number()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TransformerTests.Qwen3, DType.F32, seed: 5);
        using var ckpt = Checkpoint.Open(tmp.Path);
        List<TrainingExample> data = [new([1, 2], [2, 3]), new([1, 480], [480, 2])];
        var e = Assert.Throws<AttuneException>(() => new Trainer(TrainableModel.FromCheckpoint(ckpt), data, Options(1)));
        Assert.Contains("example 2", e.Message);
    }
}
