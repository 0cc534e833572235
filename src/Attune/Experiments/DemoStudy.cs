using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Models;
using Attune.Training;

namespace Attune.Experiments;

/// <summary>
/// The demo study: the demo world's three models in data/demo/ (base, SFT instruct, DPO-tuned base), the
/// sweep that runs on them (11 λ values, the base with URIAL, the DPO arm, ICL and IF in three languages),
/// and the rebuild that regenerates the world and retrains the models deterministically with the same
/// set-ups <c>attune init</c> and <c>attune train pretrain|sft|dpo</c> use.
/// </summary>
public static class DemoStudy
{
    public static readonly string[] ModelNames = ["base", "instruct", "dpo"];

    /// <summary>The files of each model that ship (not a training run's checkpoints and metrics).</summary>
    public static readonly string[] ModelFiles = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

    public const string BuildRecord = "BUILD.txt";

    /// <summary>The demo world's files: data/demo/ of the source tree this build came from, else of the working folder.</summary>
    public static string DefaultDataDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Attune.slnx"))) return Path.Combine(d.FullName, "data", "demo");
        return Path.Combine(Environment.CurrentDirectory, "data", "demo");
    }

    /// <summary>Stops with one line when a demo model is missing.</summary>
    public static void CheckModels(string dir)
    {
        foreach (var m in ModelNames)
            if (!File.Exists(Path.Combine(dir, m, "model.safetensors")))
                throw new AttuneException(Path.Combine(dir, m), "the demo model is missing; run attune demo --rebuild");
    }

    /// <summary>The study's plan on the models in <paramref name="dir"/>; <paramref name="quick"/> is a smaller one (3 λ, 4 items) for tests.</summary>
    public static SweepPlan Plan(string dir, bool quick) => new()
    {
        Base = ModelReference.Parse(Path.Combine(dir, "base"), "--data"),
        Instruct = ModelReference.Parse(Path.Combine(dir, "instruct"), "--data"),
        Dpo = ModelReference.Parse(Path.Combine(dir, "dpo"), "--data"),
        Lambdas = Lambda.ParseList(quick ? "0,0.5,1" : "0:1:0.1"),
        Languages = ["en", "fr", "es"],
        Icl = "builtin:all",
        If = "builtin",
        IclLimit = quick ? 4 : 30,
        IfLimit = quick ? 4 : 30,
        IfMaxTokens = 256,
        UrialShots = 1,
        Shift = true,
        ShiftLimit = quick ? 2 : 6,
        ShiftMaxTokens = 48,
    };

    /// <summary>
    /// How much world and training a rebuild makes; <see cref="Full"/> is what data/demo ships. Pretraining packs the
    /// documents into blocks of <paramref name="BlockSize"/> tokens (longer than any few-shot prompt the suites build; SFT
    /// and DPO take examples of up to 1024);
    /// <paramref name="SaveEvery"/> &gt; 0 writes checkpoints so that a killed rebuild resumes.
    /// </summary>
    public sealed record RebuildSize(int Documents, int Instructions, int PretrainSteps, int SftSteps, int DpoSteps, int BlockSize = 128, int SaveEvery = 0)
    {
        public static readonly RebuildSize Full = new(40000, 6000, 1600, 1400, 300, BlockSize: 512, SaveEvery: 100);
    }

    /// <summary>
    /// Regenerates the world (seed 7) and retrains base, instruct (SFT) and DPO models into <paramref name="dir"/>;
    /// BUILD.txt records the time taken and each model file's SHA-256, which a rebuild reproduces exactly. The work
    /// happens in <paramref name="workDir"/> (a temporary folder when null): a rebuild killed part way and started again
    /// on the same folder resumes each training from its newest checkpoint (bit for bit) and skips finished stages.
    /// The folder is deleted once the models are in place.
    /// </summary>
    public static void Rebuild(string dir, RebuildSize? size = null, TextWriter? log = null, string? workDir = null)
    {
        size ??= RebuildSize.Full;
        log ??= TextWriter.Null;
        var clock = Stopwatch.StartNew();
        var work = workDir ?? Path.Combine(Path.GetTempPath(), "attune-demo-build-" + Guid.NewGuid().ToString("N")[..8]);
        Build(work, size, log);
        foreach (var m in ModelNames)
        {
            var target = Path.Combine(dir, m);
            if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
            Directory.CreateDirectory(target);
            foreach (var f in ModelFiles)
                if (File.Exists(Path.Combine(work, m, f))) File.Copy(Path.Combine(work, m, f), Path.Combine(target, f));
        }
        var note = $"Rebuilt by `attune demo --rebuild` in {clock.Elapsed.TotalSeconds:F0} s on {Environment.ProcessorCount} cores ({DateTime.UtcNow:yyyy-MM-dd})"
            + (Resumed(work) ? ", resuming an earlier run's finished stages and checkpoints" : "") + ".\n"
            + "A rebuild reproduces these files bit for bit (SHA-256):\n"
            + string.Concat(ModelNames.SelectMany(m => ModelFiles.Where(f => File.Exists(Path.Combine(dir, m, f)))
                .Select(f => $"{Sha256(Path.Combine(dir, m, f))}  {m}/{f}\n")));
        AtomicFile.WriteAllText(Path.Combine(dir, BuildRecord), note);
        log.WriteLine("demo: " + note.Split('\n')[0]);
        try { Directory.Delete(work, recursive: true); } catch (IOException) { }
    }

    /// <summary>The world and the three trained models in <paramref name="work"/>/base, instruct and dpo; finished stages are kept, cut ones resumed.</summary>
    internal static void Build(string work, RebuildSize size, TextWriter log)
    {
        Directory.CreateDirectory(work);
        log.WriteLine("demo: generating the world");
        var world = DemoWorld.Generate(seed: 7, documentsPerLanguage: size.Documents, instructionsPerLanguage: size.Instructions);
        log.WriteLine($"demo: {world.Documents.Count} documents, {world.Sft.Count} conversations, {world.Preferences.Count} preference pairs ({world.DroppedResponses} composed responses the IF checkers rejected were left out)");
        var worldDir = Path.Combine(work, "world");
        Directory.CreateDirectory(worldDir);
        string Lines(IEnumerable<JsonNode> records) => string.Join("\n", records.Select(r => r.ToJsonString())) + "\n";
        AtomicFile.WriteAllText(Path.Combine(worldDir, "documents.jsonl"), Lines(world.Documents.Select(d => new JsonObject { ["text"] = d })));
        AtomicFile.WriteAllText(Path.Combine(worldDir, "sft.jsonl"), Lines(world.Sft));
        AtomicFile.WriteAllText(Path.Combine(worldDir, "dpo.jsonl"), Lines(world.Preferences));

        var init = Path.Combine(work, "init");
        if (!File.Exists(Path.Combine(init, "model.safetensors")))
        {
            log.WriteLine("demo: initialising the base model (tokenizer trained on the world)");
            var partial = init + ".partial";
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            ModelInitializer.Write(partial, Presets.Find("demo", null).Config, seed: 1, Tensors.DType.F32,
                tokenizerCorpus: world.Documents.Concat(world.Sft.Select(s => string.Concat(s["messages"]!.AsArray().Select(m => m!["content"]!.GetValue<string>() + "\n")))));
            Directory.Move(partial, init);
        }
        Train(log, "pretrain", new PretrainJob
        {
            Model = init, Data = [Path.Combine(worldDir, "documents.jsonl")], OutDir = Path.Combine(work, "base"), BlockSize = size.BlockSize,
            Options = Options(size.PretrainSteps, batch: 16, lr: 3e-3, warmup: 50, seed: 1), SaveEvery = size.SaveEvery,
        });
        Train(log, "sft", new SftJob
        {
            Model = Path.Combine(work, "base"), Data = [Path.Combine(worldDir, "sft.jsonl")], OutDir = Path.Combine(work, "instruct"), BlockSize = 1024,
            Options = Options(size.SftSteps, batch: 16, lr: 1e-3, warmup: 20, seed: 2), SaveEvery = size.SaveEvery,
        });
        Train(log, "dpo", new DpoJob
        {
            Model = Path.Combine(work, "base"), Data = [Path.Combine(worldDir, "dpo.jsonl")], OutDir = Path.Combine(work, "dpo"), BlockSize = 1024,
            Options = Options(size.DpoSteps, batch: 8, lr: 5e-4, warmup: 10, seed: 3), Dpo = new DpoOptions { Beta = 0.1 }, SaveEvery = size.SaveEvery,
        });
    }

    /// <summary>Whether this rebuild's work folder held an earlier run's work (each stage notes it when it starts).</summary>
    static bool Resumed(string work) => File.Exists(Path.Combine(work, ResumedMark));

    const string ResumedMark = "resumed";

    /// <summary>The trainer settings of one demo training: <c>attune train</c>'s defaults (cosine decay, clipping at 1) with these changes; weights saved in BF16, no intermediate checkpoints.</summary>
    static TrainerOptions Options(int steps, int batch, double lr, int warmup, ulong seed) => new()
    {
        Steps = steps,
        BatchSize = batch,
        Schedule = new LearningRateSchedule { Peak = lr, Decay = LearningRateSchedule.Shape.Cosine, WarmupSteps = warmup, TotalSteps = steps },
        MaxGradNorm = 1.0,
        Seed = seed,
    };

    /// <summary>One training stage: skipped when its final model is there, resumed from its newest checkpoint when a run was cut short.</summary>
    static void Train(TextWriter log, string kind, TrainingJob job)
    {
        if (File.Exists(Path.Combine(job.OutDir, "model.safetensors")))
        {
            log.WriteLine($"demo: attune train {kind}: done in an earlier run");
            File.WriteAllText(Path.Combine(Path.GetDirectoryName(job.OutDir)!, ResumedMark), "");
            return;
        }
        bool resume = Directory.Exists(job.OutDir) && Directory.EnumerateFileSystemEntries(job.OutDir).Any();
        if (resume) File.WriteAllText(Path.Combine(Path.GetDirectoryName(job.OutDir)!, ResumedMark), "");
        log.WriteLine($"demo: attune train {kind}" + (resume ? " (resuming)" : ""));
        var clock = Stopwatch.StartNew();
        // A composed reply can outgrow the block (a long answer asked twice, or repeated); such lines are counted and left out.
        (job with { SaveDType = Tensors.DType.BF16, Resume = resume, SkipBad = true }).Run(
            prepared: p =>
            {
                if (p.Skipped > 0) log.WriteLine($"demo: {kind}: {p.Examples} examples, {p.Skipped} lines left out (first: {p.FirstSkipped.FirstOrDefault()})");
            },
            onStep: m =>
            {
                if (m.Step % 50 == 0) log.WriteLine($"demo: {kind} step {m.Step}/{job.Options.Steps}  loss {m.Loss:F4}  {clock.Elapsed.TotalSeconds:F0} s");
            });
    }

    static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }
}
