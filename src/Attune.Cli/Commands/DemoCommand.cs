using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Attune.Experiments;
using Attune.Formats;
using Attune.Modeling;

namespace Attune.Cli.Commands;

/// <summary>
/// <c>attune demo</c>: the whole study on the demo world's models in data/demo/ (a sweep over 11 λ
/// values, the base with URIAL, a DPO-tuned base, three languages, the ICL and IF suites) and its report.
/// <c>--rebuild</c> regenerates the world and retrains the models from scratch with the same commands a
/// user would run (<c>attune init</c>, <c>attune train pretrain|sft|dpo</c>), deterministically.
/// </summary>
public static class DemoCommand
{
    /// <summary>The demo world's files: data/demo/ of the source tree.</summary>
    public static string DefaultDataDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Attune.slnx"))) return Path.Combine(d.FullName, "data", "demo");
        return Path.Combine(Environment.CurrentDirectory, "data", "demo");
    }

    static readonly string[] ModelFiles = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

    public static Command Build()
    {
        var output = new Option<string>("--out") { Description = "Where the store and the report go", DefaultValueFactory = _ => "attune-demo" };
        var rebuild = new Option<bool>("--rebuild") { Description = "Regenerate the world and retrain the demo models from scratch (minutes), then run the study" };
        var data = new Option<string?>("--data") { Description = "The demo world's folder (default: data/demo in the source tree)" };
        var quick = new Option<bool>("--quick") { Description = "A smaller study (3 λ values, fewer items) for tests" };
        var cmd = new Command("demo", "The whole study on the built-in demo world (sweep, URIAL and DPO arms, three languages, ICL and IF) and its report") { output, rebuild, data, quick };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var dir = Path.GetFullPath(parse.GetValue(data) ?? DefaultDataDir());
            if (parse.GetValue(rebuild)) Rebuild(io, dir);
            foreach (var m in new[] { "base", "instruct", "dpo" })
                if (!File.Exists(Path.Combine(dir, m, "model.safetensors")))
                    throw new AttuneException(Path.Combine(dir, m), "the demo model is missing; run attune demo --rebuild");
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            Directory.CreateDirectory(outDir);
            bool small = parse.GetValue(quick);
            var clock = Stopwatch.StartNew();
            string[] args =
            [
                "sweep", "--base", Path.Combine(dir, "base"), "--instruct", Path.Combine(dir, "instruct"), "--dpo", Path.Combine(dir, "dpo"),
                "--lambdas", small ? "0,0.5,1" : "0:1:0.1", "--langs", "en,fr,es", "--icl", "builtin:all", "--if", "builtin",
                "--icl-limit", small ? "4" : "30", "--if-limit", small ? "4" : "30", "--max-tokens", "48", "--urial-shots", "1",
                "--store", Path.Combine(outDir, "runs.db"),
            ];
            io.Error.WriteLine("attune " + string.Join(' ', args));
            int code = Program.Run(args, io.In, io.Out, io.Error);
            if (code != Program.Success) return code;
            code = Program.Run(["report", Path.Combine(outDir, "runs.db"), "--out", Path.Combine(outDir, "report.html")], io.In, io.Out, io.Error);
            if (code != Program.Success) return code;
            io.Out.WriteLine($"demo: study and report in {clock.Elapsed.TotalSeconds:F0} s → {Path.Combine(outDir, "report.html")}");
            return Program.Success;
        });
        return cmd;
    }

    /// <summary>How much world and training a rebuild makes; <see cref="Full"/> is what data/demo ships.</summary>
    public sealed record RebuildSize(int Documents, int Instructions, int PretrainSteps, int SftSteps, int DpoSteps)
    {
        public static readonly RebuildSize Full = new(4000, 600, 480, 300, 150);
    }

    /// <summary>
    /// Regenerates the world (seed 7) and retrains base, instruct (SFT) and DPO models into
    /// <paramref name="dir"/>; BUILD.txt records the time taken and each model file's SHA-256, which a
    /// rebuild reproduces exactly.
    /// </summary>
    public static void Rebuild(CliIO io, string dir, RebuildSize? size = null)
    {
        size ??= RebuildSize.Full;
        var clock = Stopwatch.StartNew();
        var work = Path.Combine(Path.GetTempPath(), "attune-demo-build-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            io.Error.WriteLine("demo: generating the world");
            var world = DemoWorld.Generate(seed: 7, documentsPerLanguage: size.Documents, instructionsPerLanguage: size.Instructions);
            var worldDir = Path.Combine(dir, "world");
            Directory.CreateDirectory(worldDir);
            AtomicFile.WriteAllText(Path.Combine(worldDir, "documents.jsonl"), string.Join("\n", world.Documents.Select(d => new JsonObject { ["text"] = d }.ToJsonString())) + "\n");
            AtomicFile.WriteAllText(Path.Combine(worldDir, "sft.jsonl"), string.Join("\n", world.Sft.Select(d => d.ToJsonString())) + "\n");
            AtomicFile.WriteAllText(Path.Combine(worldDir, "dpo.jsonl"), string.Join("\n", world.Preferences.Select(d => d.ToJsonString())) + "\n");

            io.Error.WriteLine("demo: initialising the base model (tokenizer trained on the world)");
            var init = Path.Combine(work, "init");
            ModelInitializer.Write(init, Presets.Find("demo", null).Config, seed: 1, Tensors.DType.F32,
                tokenizerCorpus: world.Documents.Concat(world.Sft.Select(s => string.Concat(s["messages"]!.AsArray().Select(m => m!["content"]!.GetValue<string>() + "\n")))));
            Train(io, ["train", "pretrain", "--model", init, "--data", Path.Combine(worldDir, "documents.jsonl"), "--out", Path.Combine(work, "base"),
                "--steps", size.PretrainSteps.ToString(), "--batch-size", "16", "--block-size", "128", "--lr", "3e-3", "--warmup", "20", "--save-every", "0", "--seed", "1", "--dtype", "bf16"]);
            Train(io, ["train", "sft", "--model", Path.Combine(work, "base"), "--data", Path.Combine(worldDir, "sft.jsonl"), "--out", Path.Combine(work, "instruct"),
                "--steps", size.SftSteps.ToString(), "--batch-size", "16", "--lr", "1e-3", "--warmup", "10", "--save-every", "0", "--seed", "2", "--dtype", "bf16"]);
            Train(io, ["train", "dpo", "--model", Path.Combine(work, "base"), "--data", Path.Combine(worldDir, "dpo.jsonl"), "--out", Path.Combine(work, "dpo"),
                "--steps", size.DpoSteps.ToString(), "--batch-size", "8", "--lr", "5e-4", "--warmup", "10", "--save-every", "0", "--seed", "3", "--beta", "0.1", "--dtype", "bf16"]);
            foreach (var m in new[] { "base", "instruct", "dpo" })
            {
                // Only the model files ship (in BF16, a few MB each), not the training run's checkpoints and metrics.
                var target = Path.Combine(dir, m);
                if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
                Directory.CreateDirectory(target);
                foreach (var f in ModelFiles)
                    if (File.Exists(Path.Combine(work, m, f))) File.Copy(Path.Combine(work, m, f), Path.Combine(target, f));
            }
            var note = $"Rebuilt by `attune demo --rebuild` in {clock.Elapsed.TotalSeconds:F0} s on {Environment.ProcessorCount} cores ({DateTime.UtcNow:yyyy-MM-dd}).\n"
                + "A rebuild reproduces these files bit for bit (SHA-256):\n"
                + string.Concat(new[] { "base", "instruct", "dpo" }.SelectMany(m => ModelFiles.Where(f => File.Exists(Path.Combine(dir, m, f)))
                    .Select(f => $"{Sha256(Path.Combine(dir, m, f))}  {m}/{f}\n")));
            AtomicFile.WriteAllText(Path.Combine(dir, "BUILD.txt"), note);
            io.Error.WriteLine("demo: " + note.Split('\n')[0]);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(f));
    }

    static void Train(CliIO io, string[] args)
    {
        io.Error.WriteLine("demo: attune " + string.Join(' ', args.Take(2)));
        int code = Program.Run(args, io.In, TextWriter.Null, io.Error);
        if (code != Program.Success) throw new AttuneException(null, $"attune {args[0]} {args[1]} failed (exit {code})");
    }
}
