using Attune.Formats;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Tensors;
using Attune.Text;

namespace Attune.Training;

/// <summary>What a finished (or resumed and finished) run reports.</summary>
public sealed record TrainingSummary(string OutDir, int Steps, int Examples, int Skipped, IReadOnlyList<string> FirstSkipped, double? FinalLoss);

/// <summary>
/// One training run, set up as <c>attune train</c> sets it up: the starting checkpoint and its tokenizer, the
/// data read into examples (bad lines an error or counted and skipped), the objective, the output folder
/// with its checkpoints, and the saved dtype. The three kinds differ only in how data becomes an objective.
/// </summary>
public abstract record TrainingJob
{
    /// <summary>The checkpoint folder training starts from.</summary>
    public string Model { get; init; } = "";
    public IReadOnlyList<string> Data { get; init; } = [];
    public string OutDir { get; init; } = "";
    public TrainerOptions Options { get; init; } = new();
    /// <summary>Write checkpoint-N/ every N steps (0: only the final model).</summary>
    public int SaveEvery { get; init; } = 100;
    /// <summary>The saved weights' dtype; null keeps the starting checkpoint's.</summary>
    public DType? SaveDType { get; init; }
    public LoraConfig? Lora { get; init; }
    /// <summary>Continue from the newest checkpoint-N/ in <see cref="OutDir"/>.</summary>
    public bool Resume { get; init; }
    /// <summary>Count and skip bad data lines instead of stopping at the first.</summary>
    public bool SkipBad { get; init; }
    /// <summary>Tokens per sequence (pretraining) or longest example (SFT, DPO); null: the kind's default, capped by the context window.</summary>
    public int? BlockSize { get; init; }

    /// <summary>The objective over the data and how many examples it holds.</summary>
    protected abstract (Func<TrainableModel, ITrainingObjective> Objective, int Examples) Prepare(Checkpoint source, Tokenizer tokenizer, BadRecords bad);

    /// <summary>The block size when none is given: min(context window, <paramref name="cap"/>).</summary>
    protected int Block(Checkpoint source, int cap) => BlockSize is > 0 and var b ? b : Math.Min(source.Config.MaxPositionEmbeddings, cap);

    /// <summary>
    /// Reads the data, then trains until <see cref="TrainerOptions.Steps"/>; <paramref name="prepared"/> hears of
    /// skipped lines before the first step, <paramref name="onStep"/> of every step.
    /// </summary>
    public TrainingSummary Run(Action<TrainingSummary>? prepared = null, Action<StepMetrics>? onStep = null)
    {
        if (Model.Length == 0) throw new AttuneException(null, "--model", "no starting checkpoint given");
        if (Data.Count == 0) throw new AttuneException(null, "--data", "no training data given");
        if (OutDir.Length == 0) throw new AttuneException(null, "--out", "no output folder given");
        if (Options.Steps < 1) throw new AttuneException(null, "--steps", "must be at least 1");
        if (Options.BatchSize < 1) throw new AttuneException(null, "--batch-size", "must be at least 1");
        if (Options.GradientAccumulation < 1) throw new AttuneException(null, "--grad-accum", "must be at least 1");
        Lora?.Validate();
        using var source = Checkpoint.Open(Model);
        var tokenizer = Tokenizer.Load(source.Directory);
        var bad = new BadRecords { Skip = SkipBad };
        var (objective, examples) = Prepare(source, tokenizer, bad);
        prepared?.Invoke(Summary(examples, bad, null));
        var run = new TrainingRun
        {
            OutDir = OutDir, SaveEvery = SaveEvery, Lora = Lora,
            SaveDType = SaveDType ?? source.Weights.Entry(TensorLayout.Embedding).DType,
        };
        StepMetrics? last = null;
        run.Run(source, m => new Trainer(m, objective(m), Options), Options.Steps, Resume, m =>
        {
            last = m;
            onStep?.Invoke(m);
        });
        return Summary(examples, bad, last?.Loss);
    }

    TrainingSummary Summary(int examples, BadRecords bad, double? loss) => new(OutDir, Options.Steps, examples, bad.Skipped, bad.FirstMessages.ToList(), loss);
}

/// <summary>Next-token training on text files or JSONL <c>{"text"}</c>, packed into blocks (default min(context, 256)), documents ended by the end token.</summary>
public sealed record PretrainJob : TrainingJob
{
    protected override (Func<TrainableModel, ITrainingObjective>, int) Prepare(Checkpoint source, Tokenizer tokenizer, BadRecords bad)
    {
        int block = Block(source, 256);
        if (block > source.Config.MaxPositionEmbeddings)
            throw new AttuneException(null, "--block-size", $"{block} exceeds the model's context window of {source.Config.MaxPositionEmbeddings}");
        var data = PretrainData.Pack(Data.SelectMany(f => PretrainData.ReadDocuments(f, bad)), tokenizer, block, SftData.EndToken(source, tokenizer));
        return (_ => new LanguageModelingObjective(data), data.Count);
    }
}

/// <summary>Supervised fine-tuning on <c>{"messages"}</c> or <c>{"prompt","completion"}</c>; loss on replies and the end token (examples up to min(context, 512)).</summary>
public sealed record SftJob : TrainingJob
{
    protected override (Func<TrainableModel, ITrainingObjective>, int) Prepare(Checkpoint source, Tokenizer tokenizer, BadRecords bad)
    {
        var eos = LanguageModel.EosIds(source, tokenizer);
        int end = SftData.EndToken(source, tokenizer) ?? throw new AttuneException(source.Directory, "the model names no eos_token_id; SFT trains the end-of-sequence token");
        var data = Data.SelectMany(f => SftData.Load(f, tokenizer, eos, end, Block(source, 512), bad)).ToList();
        return (_ => new LanguageModelingObjective(data), data.Count);
    }
}

/// <summary>
/// Direct preference optimisation against a frozen reference (the starting model unless given), whose
/// log-probabilities are computed once and cached in the output folder.
/// </summary>
public sealed record DpoJob : TrainingJob
{
    public DpoOptions Dpo { get; init; } = new();
    /// <summary>The frozen reference's checkpoint folder; null: the starting model.</summary>
    public string? ReferenceModel { get; init; }
    /// <summary>How prompts are written; null: chat when the model has a chat template, else URIAL.</summary>
    public PromptMode? Format { get; init; }
    /// <summary>The URIAL prompt for the URIAL format (null: the built-in one of <see cref="UrialLanguage"/>).</summary>
    public UrialPrompt? Urial { get; init; }
    public string UrialLanguage { get; init; } = "en";
    public int UrialShots { get; init; } = 3;

    protected override (Func<TrainableModel, ITrainingObjective>, int) Prepare(Checkpoint source, Tokenizer tokenizer, BadRecords bad)
    {
        Dpo.Validate();
        var loader = new DpoData
        {
            Tokenizer = tokenizer,
            EosIds = LanguageModel.EosIds(source, tokenizer),
            EndToken = SftData.EndToken(source, tokenizer) ?? throw new AttuneException(source.Directory, "the model names no eos_token_id; DPO trains the end-of-sequence token"),
            MaxLength = Block(source, 512),
            Format = Format ?? (tokenizer.Config.ChatTemplate is null ? PromptMode.Urial : PromptMode.Chat),
            Urial = Urial ?? UrialPrompt.BuiltIn(UrialLanguage),
            UrialShots = UrialShots,
            Bad = bad,
        };
        var pairs = Data.SelectMany(loader.Load).ToList();
        var referenceDir = ReferenceModel ?? source.Directory;
        int batch = Math.Max(1, Options.BatchSize);
        var vocab = source.Config.VocabSize;
        return (_ =>
        {
            var reference = PreferenceObjective.Cached(OutDir, referenceDir, pairs, () =>
            {
                using var refCkpt = Checkpoint.Open(referenceDir);
                if (refCkpt.Config.VocabSize != vocab)
                    throw new AttuneException(referenceDir, "vocab_size", $"is {refCkpt.Config.VocabSize}, the policy's is {vocab}");
                return PreferenceObjective.LogProbs(TrainableModel.FromCheckpoint(refCkpt), pairs, batch);
            });
            return new PreferenceObjective(pairs, reference, Dpo);
        }, pairs.Count);
    }
}
