using System.Globalization;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Training;

/// <summary>
/// A training run's output folder, laid out as Hugging Face's Trainer does: <c>checkpoint-N/</c> folders
/// (weights, tokenizer, optimizer moments, trainer state) published atomically every N steps, the newest
/// few kept; <c>metrics.jsonl</c> with one line per step; and the final model's files at the top.
/// <c>--resume</c> starts from the newest complete checkpoint, so a killed run loses at most N steps.
/// </summary>
public sealed class TrainingRun
{
    public const string MetricsFileName = "metrics.jsonl";
    const string CheckpointPrefix = "checkpoint-";

    public required string OutDir { get; init; }
    public int SaveEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;
    public DType SaveDType { get; init; } = DType.F32;
    /// <summary>Train LoRA adapters on a frozen base instead of every weight; checkpoints then hold the adapters.</summary>
    public LoraConfig? Lora { get; init; }

    /// <summary>The newest <c>checkpoint-N</c> folder under <paramref name="outDir"/>, or null.</summary>
    public static string? LatestCheckpoint(string outDir) => Checkpoints(outDir).LastOrDefault().Dir;

    static List<(int Step, string Dir)> Checkpoints(string outDir) =>
        !Directory.Exists(outDir) ? [] :
        Directory.EnumerateDirectories(outDir, CheckpointPrefix + "*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)[CheckpointPrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int s), Step: s, Dir: d))
            .Where(c => c.Ok && File.Exists(Path.Combine(c.Dir, Trainer.StateFileName)))
            .OrderBy(c => c.Step).Select(c => (c.Step, c.Dir)).ToList();

    /// <summary>
    /// Trains until <see cref="TrainerOptions.Steps"/>: <paramref name="makeTrainer"/> builds the trainer from a
    /// model (the source's weights for a fresh run, the checkpoint's on resume). Refuses a non-empty output
    /// folder unless resuming.
    /// </summary>
    public Trainer Run(Checkpoint source, Func<TrainableModel, Trainer> makeTrainer, int steps, bool resume, Action<StepMetrics>? onStep = null)
    {
        Trainer trainer;
        string? latest = resume ? LatestCheckpoint(OutDir) : null;
        if (latest is null)
        {
            if (!resume && Directory.Exists(OutDir) && Directory.EnumerateFileSystemEntries(OutDir).Any())
                throw new AttuneException(OutDir, "already exists and is not empty (pass --resume to continue the run in it)");
            Directory.CreateDirectory(OutDir);
            trainer = makeTrainer(StartingModel(source));
        }
        else
        {
            bool adapterCheckpoint = File.Exists(Path.Combine(latest, LoraConfig.AdapterWeightsFile));
            if (adapterCheckpoint != (Lora is not null))
                throw new AttuneException(latest, adapterCheckpoint
                    ? "holds LoRA adapters; resume with the same --lora-* options"
                    : "holds full weights; resume without --lora-rank");
            TrainableModel model;
            if (Lora is null)
                using (var ckpt = Checkpoint.Open(latest)) model = TrainableModel.FromCheckpoint(ckpt);
            else
            {
                model = StartingModel(source);
                model.LoadAdapterFiles(latest);
            }
            trainer = makeTrainer(model);
            trainer.LoadState(latest);
        }
        TrimMetrics(trainer.Step);

        using (var metrics = new StreamWriter(Path.Combine(OutDir, MetricsFileName), append: true))
            while (trainer.Step < steps)
            {
                var m = trainer.TrainStep();
                var line = new JsonObject
                {
                    ["step"] = m.Step,
                    ["loss"] = m.Loss,
                    ["lr"] = m.LearningRate,
                    ["grad_norm"] = m.GradNorm,
                    ["tokens"] = m.Tokens,
                    ["tokens_per_s"] = m.Seconds > 0 ? m.Tokens / m.Seconds : 0,
                };
                foreach (var (key, value) in m.Extra) line[key] = value;
                metrics.WriteLine(line.ToJsonString());
                metrics.Flush();
                onStep?.Invoke(m);
                if (SaveEvery > 0 && (trainer.Step % SaveEvery == 0 || trainer.Step == steps)) SaveCheckpoint(trainer, source);
            }

        foreach (var f in Directory.EnumerateFiles(OutDir, "model*.safetensors*")) File.Delete(f);
        trainer.Model.WriteCheckpointFiles(OutDir, source, SaveDType);
        if (Lora is not null) trainer.Model.WriteAdapterFiles(OutDir, source.Directory);
        return trainer;
    }

    TrainableModel StartingModel(Checkpoint source)
    {
        var model = TrainableModel.FromCheckpoint(source);
        if (Lora is not null) model.AddLora(Lora);
        return model;
    }

    void SaveCheckpoint(Trainer trainer, Checkpoint source)
    {
        var dir = Path.Combine(OutDir, CheckpointPrefix + trainer.Step.ToString(CultureInfo.InvariantCulture));
        AtomicDirectory.Write(dir, temp =>
        {
            // Master weights (or the adapters, over a frozen base) are kept in f32 so a resumed run
            // continues from exactly the same numbers.
            if (Lora is null) trainer.Model.WriteCheckpointFiles(temp, source, DType.F32);
            else
            {
                trainer.Model.WriteAdapterFiles(temp, source.Directory);
                source.CopyTokenizerFilesTo(new CheckpointWriter(temp));
            }
            trainer.SaveState(temp);
        });
        var all = Checkpoints(OutDir);
        foreach (var (_, old) in all.Take(Math.Max(0, all.Count - Math.Max(1, KeepCheckpoints))))
            Directory.Delete(old, recursive: true);
    }

    /// <summary>Drops metric lines past the step a resumed run restarts from (they belong to lost work).</summary>
    void TrimMetrics(int step)
    {
        var path = Path.Combine(OutDir, MetricsFileName);
        if (!File.Exists(path)) return;
        var kept = File.ReadLines(path)
            .Where(line => !string.IsNullOrWhiteSpace(line))
            .TakeWhile(line => TryStep(line) is { } s && s <= step)
            .ToList();
        AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
    }

    static int? TryStep(string line)
    {
        try { return JsonNode.Parse(line)?["step"]?.GetValue<int>(); }
        catch (System.Text.Json.JsonException) { return null; }
    }
}
