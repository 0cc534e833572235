using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Training;

/// <summary>One training sequence: input tokens and, position by position, the token to predict (or <see cref="CrossEntropy.Ignore"/>).</summary>
public sealed record TrainingExample(int[] Tokens, int[] Targets)
{
    public int TargetCount => Targets.Count(t => t != CrossEntropy.Ignore);

    public void Validate(int vocab, string name)
    {
        if (Tokens.Length == 0 || Tokens.Length != Targets.Length)
            throw new AttuneException(null, name, "needs as many targets as tokens, and at least one");
        if (Tokens.Any(t => (uint)t >= (uint)vocab) || Targets.Any(t => t != CrossEntropy.Ignore && (uint)t >= (uint)vocab))
            throw new AttuneException(null, name, $"holds a token id outside the model's vocabulary of {vocab}");
    }
}

public sealed record TrainerOptions
{
    public int Steps { get; init; } = 100;
    /// <summary>Sequences per micro-batch.</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Micro-batches whose gradients add up before each optimizer step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    public LearningRateSchedule Schedule { get; init; } = new() { Peak = 1e-3 };
    /// <summary>Clipping by global norm; 0 turns it off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    public ulong Seed { get; init; } = 42;

    public int SequencesPerStep => BatchSize * GradientAccumulation;
}

public sealed record StepMetrics(int Step, double Loss, double LearningRate, double GradNorm, long Tokens, double Seconds)
{
    /// <summary>What the objective reports beside the loss (DPO's rewards, margins and accuracy).</summary>
    public IReadOnlyDictionary<string, double> Extra { get; init; } = new Dictionary<string, double>();
}

/// <summary>The loss of one step and what it saw.</summary>
public sealed record StepOutcome(double Loss, long Tokens, IReadOnlyDictionary<string, double> Extra);

/// <summary>What a trainer optimises: a set of examples it can count and shuffle, and a step over some of them.</summary>
public interface ITrainingObjective
{
    int Count { get; }
    /// <summary>Refuses examples the model cannot read (token ids outside its vocabulary, empty sequences).</summary>
    void Validate(int vocabSize);
    /// <summary>Forward and backward over <paramref name="examples"/> in micro-batches of <paramref name="batchSize"/>;
    /// the gradients (of the step's mean loss) accumulate in the model.</summary>
    StepOutcome Run(TrainableModel model, IReadOnlyList<int> examples, int batchSize);
}

/// <summary>Next-token cross-entropy over examples' target tokens (pretraining and SFT), averaged over every target token of the step as Hugging Face's trainers do.</summary>
public sealed class LanguageModelingObjective(IReadOnlyList<TrainingExample> data) : ITrainingObjective
{
    public int Count => data.Count;

    public void Validate(int vocab)
    {
        for (int i = 0; i < data.Count; i++) data[i].Validate(vocab, $"example {i + 1}");
    }

    public StepOutcome Run(TrainableModel model, IReadOnlyList<int> examples, int batchSize)
    {
        var batch = examples.Select(i => data[i]).ToList();
        long targets = batch.Sum(e => (long)e.TargetCount);
        double loss = 0;
        if (targets > 0)
            for (int start = 0; start < batch.Count; start += batchSize)
            {
                // Each target token weighs 1/targets, so the step's gradient is that of the token mean.
                var micro = batch.Skip(start).Take(batchSize).Where(e => e.TargetCount > 0).ToList();
                if (micro.Count == 0) continue;
                loss += model.Forward(micro).Sum() / targets;
                model.Backward(Enumerable.Repeat((float)(1.0 / targets), micro.Count).ToArray());
            }
        return new StepOutcome(loss, batch.Sum(e => (long)e.Tokens.Length), new Dictionary<string, double>());
    }
}

/// <summary>
/// The optimizer loop shared by the trainers: seeded data order, micro-batches with gradient accumulation
/// (the loss is the mean over every target token of the step, as in Hugging Face's trainers), clipping,
/// the learning-rate schedule and AdamW over the f32 master weights. The data order is a function of the
/// seed and the step alone, so a run restored from <see cref="SaveState"/> continues exactly where the
/// saved one was.
/// </summary>
public sealed class Trainer
{
    public const string StateFileName = "trainer_state.json";
    public const string OptimizerFileName = "optimizer.safetensors";

    readonly TrainableModel _model;
    readonly ITrainingObjective _objective;
    readonly TrainerOptions _options;
    readonly Dictionary<string, AdamW> _optimizers;
    int[] _order = [];
    int _orderEpoch = -1;

    public int Step { get; private set; }
    public TrainableModel Model => _model;

    public Trainer(TrainableModel model, IReadOnlyList<TrainingExample> data, TrainerOptions options)
        : this(model, new LanguageModelingObjective(data), options) { }

    public Trainer(TrainableModel model, ITrainingObjective objective, TrainerOptions options)
    {
        if (objective.Count == 0) throw new AttuneException(null, "the training data holds no usable example");
        if (options.BatchSize < 1 || options.GradientAccumulation < 1 || options.Steps < 0)
            throw new AttuneException(null, "batch size and gradient accumulation must be at least 1, steps at least 0");
        options.Schedule.Validate();
        objective.Validate(model.Config.VocabSize);
        _model = model;
        _objective = objective;
        _options = options;
        _optimizers = model.Gradients.ToDictionary(p => p.Key,
            p => new AdamW(p.Value.Length, options.Beta1, options.Beta2, options.Epsilon, WeightDecayFor(p.Key, options.WeightDecay)),
            StringComparer.Ordinal);
    }

    /// <summary>No decay on norms and biases (the usual grouping in Hugging Face and llm.c).</summary>
    static double WeightDecayFor(string name, double decay) =>
        name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith(".bias", StringComparison.Ordinal) ? 0 : decay;

    /// <summary>Which example the <paramref name="k"/>-th sequence of the run reads: a fresh seeded shuffle every epoch.</summary>
    public int ExampleAt(long k)
    {
        int count = _objective.Count;
        int epoch = (int)(k / count);
        if (epoch != _orderEpoch)
        {
            _order = Enumerable.Range(0, count).ToArray();
            var rng = new Rng(_options.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1)));
            for (int i = _order.Length - 1; i > 0; i--)
            {
                int j = (int)(rng.NextUInt64() % (ulong)(i + 1));
                (_order[i], _order[j]) = (_order[j], _order[i]);
            }
            _orderEpoch = epoch;
        }
        return _order[(int)(k % count)];
    }

    /// <summary>Runs one optimizer step over <see cref="TrainerOptions.SequencesPerStep"/> sequences.</summary>
    public StepMetrics TrainStep()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int n = _options.SequencesPerStep;
        var examples = Enumerable.Range(0, n).Select(i => ExampleAt((long)Step * n + i)).ToList();
        _model.ZeroGradients();
        var outcome = _objective.Run(_model, examples, _options.BatchSize);
        double norm = _options.MaxGradNorm > 0
            ? GradientClipping.ClipByGlobalNorm(_model.Gradients.Values.ToList(), _options.MaxGradNorm)
            : GradientClipping.GlobalNorm(_model.Gradients.Values.ToList());
        double lr = _options.Schedule.At(Step);
        foreach (var (name, g) in _model.Gradients) _optimizers[name].Update(_model.Parameters[name], g, lr, _model.Pool);
        Step++;
        return new StepMetrics(Step, outcome.Loss, lr, norm, outcome.Tokens, clock.Elapsed.TotalSeconds) { Extra = outcome.Extra };
    }

    /// <summary>Writes the optimizer moments and the step into <paramref name="dir"/> (which the caller publishes atomically).</summary>
    public void SaveState(string dir)
    {
        var names = _model.Gradients.Keys.Order(StringComparer.Ordinal).ToList();
        var tensors = new List<(TensorSpec, byte[])>();
        foreach (var name in names)
        {
            var opt = _optimizers[name];
            long[] shape = [opt.FirstMoment.Length];
            tensors.Add((new TensorSpec(name + ".exp_avg", DType.F32, shape), DTypes.FromSingle(DType.F32, opt.FirstMoment)));
            tensors.Add((new TensorSpec(name + ".exp_avg_sq", DType.F32, shape), DTypes.FromSingle(DType.F32, opt.SecondMoment)));
        }
        SafeTensorsWriter.Save(Path.Combine(dir, OptimizerFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var state = new JsonObject
        {
            ["global_step"] = Step,
            ["seed"] = _options.Seed.ToString(CultureInfo.InvariantCulture),
            ["sequences_per_step"] = _options.SequencesPerStep,
            ["examples"] = _objective.Count,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, StateFileName), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Restores the optimizer and step saved by <see cref="SaveState"/>; the weights come from the checkpoint beside it.</summary>
    public void LoadState(string dir)
    {
        var statePath = Path.Combine(dir, StateFileName);
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath))!.AsObject(); }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException)
        {
            throw new AttuneException(statePath, $"cannot read the trainer state: {e.Message}");
        }
        int Field(string name) => state[name]?.GetValue<int>() ?? throw new AttuneException(statePath, name, "missing");
        if (Field("sequences_per_step") != _options.SequencesPerStep)
            throw new AttuneException(statePath, "sequences_per_step", $"was {Field("sequences_per_step")}, this run uses {_options.SequencesPerStep}; resume with the same batch size and accumulation");
        if (Field("examples") != _objective.Count)
            throw new AttuneException(statePath, "examples", $"was {Field("examples")}, the data now gives {_objective.Count}; resume with the same data");
        if (state["seed"]?.GetValue<string>() != _options.Seed.ToString(CultureInfo.InvariantCulture))
            throw new AttuneException(statePath, "seed", "differs from this run's --seed; resume with the same seed");
        int step = Field("global_step");
        var optPath = Path.Combine(dir, OptimizerFileName);
        using var file = SafeTensorsFile.Open(optPath);
        foreach (var (name, opt) in _optimizers)
        {
            if (!file.Contains(name + ".exp_avg") || !file.Contains(name + ".exp_avg_sq"))
                throw new AttuneException(optPath, name, "has no optimizer moments");
            var m = file.GetView(name + ".exp_avg");
            var v = file.GetView(name + ".exp_avg_sq");
            if (m.ElementCount != opt.FirstMoment.Length || v.ElementCount != opt.SecondMoment.Length)
                throw new AttuneException(optPath, name, "moments have the wrong size");
            opt.Restore(m.As<float>(), v.As<float>(), step);
        }
        Step = step;
    }
}
