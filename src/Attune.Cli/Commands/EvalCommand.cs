using System.CommandLine;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Formats;

namespace Attune.Cli.Commands;

/// <summary><c>attune eval icl</c>: few-shot tasks on a model, through the cached request waist.</summary>
public static class EvalCommand
{
    public static Command Build()
    {
        var eval = new Command("eval", "Evaluate a model: few-shot in-context learning (icl), instruction following (if)");
        eval.Subcommands.Add(Icl());
        eval.Subcommands.Add(If());
        return eval;
    }

    /// <summary>The response cache: --cache PATH, or ~/.cache/attune/responses.db; --no-cache for none.</summary>
    static ResponseCache? OpenCache(string? path, bool none)
    {
        if (none) return null;
        path ??= Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "attune", "responses.db");
        return new ResponseCache(path);
    }

    static Command Icl()
    {
        var model = new Option<string>("--model") { Description = "A checkpoint folder, a .gguf file, BASE+INSTRUCT@λ, or http://host:port/v1#NAME", Required = true };
        var tasks = new Option<string>("--tasks") { Description = "Task files (lm-evaluation-harness YAML), comma-separated", Required = true };
        var langs = new Option<string>("--langs") { Description = "Languages to run (tasks that declare a lang)", DefaultValueFactory = _ => "en,fr,es" };
        var shots = new Option<int?>("--shots") { Description = "Few-shot examples per item (default: each task's num_fewshot)" };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N items of each task" };
        var output = new Option<string?>("--out") { Description = "Write results (summary and every item) as JSON" };
        var cachePath = new Option<string?>("--cache") { Description = "Response cache (SQLite; default ~/.cache/attune/responses.db)" };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the response cache" };
        var keyEnv = ModelCommands.ApiKeyEnvOption();
        var concurrency = new Option<int>("--concurrency") { Description = "For a served model: requests in flight", DefaultValueFactory = _ => 4 };
        var cmd = new Command("icl", "Few-shot tasks: log-likelihood of choices (acc, acc_norm) or generation (exact_match, f1, chrf), with bootstrap 95% intervals")
            { model, tasks, langs, shots, limit, output, cachePath, noCache, keyEnv, concurrency };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            if (parse.GetValue(shots) is < 0) throw new AttuneException(null, "--shots", "must be ≥ 0");
            if (parse.GetValue(limit) is < 1) throw new AttuneException(null, "--limit", "must be ≥ 1");
            var languages = parse.GetValue(langs)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
            foreach (var l in languages)
                if (l is not ("en" or "fr" or "es")) throw new AttuneException(null, "--langs", $"\"{l}\" is not one of en, fr, es");
            var configs = LoadTasks(parse.GetValue(tasks)!).Where(t => t.Language is null || languages.Contains(t.Language)).ToList();
            if (configs.Count == 0) throw new AttuneException(null, "--tasks", "no task left after the --langs filter");
            var loaded = configs.Select(c => new IclTask(c)).ToList();
            using var backend = ModelBackends.Open(parse.GetValue(model)!, new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
            var runner = new RequestRunner(backend, cache);
            List<TaskResult> results = [];
            CliProgress.Run(io, "eval icl", progress =>
                results = IclEvaluation.RunAsync(loaded, runner, parse.GetValue(shots), parse.GetValue(limit),
                    (_, done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, IclEvaluation.ToJson(backend.Identity, results, runner).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            PrintTable(io, results);
            io.Error.WriteLine($"requests: {runner.Computed} computed, {runner.CacheHits} from the cache, {runner.Duplicates} repeated");
            return Program.Success;
        });
        return cmd;
    }

    static Command If()
    {
        var model = new Option<string>("--model") { Description = "A checkpoint folder, a .gguf file, BASE+INSTRUCT@λ, or http://host:port/v1#NAME", Required = true };
        var suite = new Option<string>("--suite") { Description = "builtin (120 prompts per language) or an IFEval-format JSONL file", DefaultValueFactory = _ => "builtin" };
        var mode = new Option<string>("--mode") { Description = "chat (the model's chat template), urial (base models) or raw", DefaultValueFactory = _ => "chat" };
        var langs = new Option<string>("--langs") { Description = "Languages to run", DefaultValueFactory = _ => "en,fr,es" };
        var shots = new Option<int>("--shots") { Description = "URIAL examples", DefaultValueFactory = _ => Attune.Prompting.UrialPrompt.DefaultShots };
        var limit = new Option<int?>("--limit") { Description = "Only the first N prompts of each language" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per response", DefaultValueFactory = _ => 384 };
        var output = new Option<string?>("--out") { Description = "Write results (summary and every response) as JSON" };
        var cachePath = new Option<string?>("--cache") { Description = "Response cache (SQLite; default ~/.cache/attune/responses.db)" };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the response cache" };
        var keyEnv = ModelCommands.ApiKeyEnvOption();
        var concurrency = new Option<int>("--concurrency") { Description = "For a served model: requests in flight", DefaultValueFactory = _ => 4 };
        var cmd = new Command("if", "Verifiable instructions (IFEval-style, language aware): prompt- and instruction-level accuracy, strict and loose, and critical errors")
            { model, suite, mode, langs, shots, limit, maxTokens, output, cachePath, noCache, keyEnv, concurrency };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var promptMode = Attune.Prompting.ChatPrompt.ParseMode(parse.GetValue(mode)!);
            if (parse.GetValue(limit) is < 1) throw new AttuneException(null, "--limit", "must be ≥ 1");
            if (parse.GetValue(maxTokens) < 1) throw new AttuneException(null, "--max-tokens", "must be ≥ 1");
            var languages = parse.GetValue(langs)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
            foreach (var l in languages)
                if (l is not ("en" or "fr" or "es")) throw new AttuneException(null, "--langs", $"\"{l}\" is not one of en, fr, es");
            var source = parse.GetValue(suite)!;
            var all = source == "builtin" ? languages.SelectMany(Attune.Evaluation.Instructions.IfSuite.BuiltIn).ToList() : Attune.Evaluation.Instructions.IfSuite.Load(source);
            var prompts = languages.SelectMany(l => all.Where(p => p.Language == l).Take(parse.GetValue(limit) ?? int.MaxValue)).ToList();
            if (prompts.Count == 0) throw new AttuneException(source, "no prompt in the languages asked for");
            using var backend = ModelBackends.Open(parse.GetValue(model)!, new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
            var runner = new RequestRunner(backend, cache);
            List<Attune.Evaluation.Instructions.IfItem> items = [];
            CliProgress.Run(io, "eval if", progress =>
                items = Attune.Evaluation.Instructions.IfEvaluation.RunAsync(prompts, runner, promptMode, parse.GetValue(maxTokens), parse.GetValue(shots),
                    (done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
            var summaries = languages.Where(l => items.Any(i => i.Prompt.Language == l))
                .Select(l => Attune.Evaluation.Instructions.IfEvaluation.Summarize(l, items.Where(i => i.Prompt.Language == l).ToList())).ToList();
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, Attune.Evaluation.Instructions.IfEvaluation.ToJson(backend.Identity, parse.GetValue(mode)!, summaries, items)
                    .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            string F(Estimate e) => $"{e.Value:F3} [{e.Low:F3}, {e.High:F3}]";
            var rows = summaries.Select(s => new[]
            {
                s.Language, s.Prompts.ToString(), F(s.PromptStrict), F(s.PromptLoose), F(s.InstructionStrict), F(s.InstructionLoose),
                string.Join(" ", s.CriticalErrors.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")) is { Length: > 0 } errs ? errs : "-",
            }).ToList();
            WriteTable(io, ["lang", "prompts", "prompt strict", "prompt loose", "instruction strict", "instruction loose", "critical errors"], rows, rightFrom: 1);
            io.Error.WriteLine($"requests: {runner.Computed} computed, {runner.CacheHits} from the cache, {runner.Duplicates} repeated");
            return Program.Success;
        });
        return cmd;
    }

    static void WriteTable(CliIO io, string[] header, List<string[]> rows, int rightFrom)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        void Line(string[] cells) => io.Out.WriteLine(string.Join("  ", cells.Select((c, i) => i >= rightFrom && i < cells.Length - 1 ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd());
        Line(header);
        foreach (var r in rows) Line(r);
    }

    static IEnumerable<TaskConfig> LoadTasks(string list)
    {
        foreach (var entry in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry.StartsWith("builtin:", StringComparison.Ordinal))
                throw new AttuneException(null, "--tasks", $"\"{entry}\": the built-in suite is not in this build yet; give task YAML files");
            foreach (var t in TaskConfig.Load(entry)) yield return t;
        }
    }

    static void PrintTable(CliIO io, IReadOnlyList<TaskResult> results)
    {
        var rows = results.SelectMany(r => r.Metrics.Select(m => new[]
        {
            r.Task, r.Language ?? "-", r.Shots.ToString(), m.Key,
            Format(m.Key, m.Value.Value), $"[{Format(m.Key, m.Value.Low)}, {Format(m.Key, m.Value.High)}]", m.Value.Count.ToString(),
        })).ToList();
        WriteTable(io, ["task", "lang", "shots", "metric", "value", "95% CI", "n"], rows, rightFrom: 4);
    }

    static string Format(string metric, double v) => metric == "chrf" ? v.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) : v.ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
}
