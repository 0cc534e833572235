using System.CommandLine;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Formats;
using Attune.Models;

namespace Attune.Cli.Commands;

/// <summary><c>attune eval icl</c>: few-shot tasks on a model, through the cached request waist.</summary>
public static class EvalCommand
{
    public static Command Build()
    {
        var eval = new Command("eval", "Evaluate a model: few-shot in-context learning (icl), instruction following (if), an LLM judge (judge)");
        eval.Subcommands.Add(Icl());
        eval.Subcommands.Add(If());
        eval.Subcommands.Add(JudgeCommand());
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
        var tasks = new Option<string>("--tasks") { Description = "builtin:all, builtin:TYPE, builtin:TYPE_LANG, or task files (lm-evaluation-harness YAML), comma-separated", Required = true };
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
            var languages = ParseLanguages(parse.GetValue(langs)!).ToHashSet();
            var loaded = LoadTasks(parse.GetValue(tasks)!).Where(t => t.Config.Language is null || languages.Contains(t.Config.Language)).ToList();
            if (loaded.Count == 0) throw new AttuneException(null, "--tasks", "no task left after the --langs filter");
            using var backend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
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
            var languages = ParseLanguages(parse.GetValue(langs)!);
            var source = parse.GetValue(suite)!;
            var all = source == "builtin" ? languages.SelectMany(Attune.Evaluation.Instructions.IfSuite.BuiltIn).ToList() : Attune.Evaluation.Instructions.IfSuite.Load(source);
            var prompts = languages.SelectMany(l => all.Where(p => p.Language == l).Take(parse.GetValue(limit) ?? int.MaxValue)).ToList();
            if (prompts.Count == 0) throw new AttuneException(source, "no prompt in the languages asked for");
            using var backend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
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

    static Command JudgeCommand()
    {
        var model = new Option<string>("--model") { Description = "The judged model: a checkpoint folder, a .gguf file, BASE+INSTRUCT@λ, or http://host:port/v1#NAME", Required = true };
        var judge = new Option<string>("--judge") { Description = "The judge: http://host:port/v1#NAME (any OpenAI-compatible server), or a local model", Required = true };
        var set = new Option<string>("--set") { Description = "Instructions: builtin (30 per language, with references) or JSONL with instruction, optional reference (or output), lang, id", DefaultValueFactory = _ => "builtin" };
        var reference = new Option<string?>("--reference") { Description = "Reference answers, JSONL line for line with the set (output, reference or response)" };
        var kind = new Option<string?>("--kind") { Description = "pairwise (win rate against the references), aspects (1–5 scores) or safety (default: pairwise when references exist, else aspects)" };
        var langs = new Option<string>("--langs") { Description = "Languages of the set to run", DefaultValueFactory = _ => "en,fr,es" };
        var bothOrders = new Option<bool>("--both-orders") { Description = "Judge each pair in both orders (A/B and B/A) and average" };
        var mode = new Option<string>("--mode") { Description = "How the judged model is prompted: chat, urial or raw", DefaultValueFactory = _ => "chat" };
        var limit = new Option<int?>("--limit") { Description = "Only the first N instructions" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per answer of the judged model", DefaultValueFactory = _ => 384 };
        var output = new Option<string?>("--out") { Description = "Write results (summary and every judgment) as JSON" };
        var cachePath = new Option<string?>("--cache") { Description = "Response cache (SQLite; default ~/.cache/attune/responses.db)" };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the response cache" };
        var keyEnv = ModelCommands.ApiKeyEnvOption();
        var judgeKeyEnv = new Option<string?>("--judge-api-key-env") { Description = "The environment variable holding the judge server's API key" };
        var concurrency = new Option<int>("--concurrency") { Description = "Requests in flight to a served model or judge", DefaultValueFactory = _ => 4 };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the order of each pair", DefaultValueFactory = _ => 1234 };
        var cmd = new Command("judge", "An LLM judge: win rate against references (with standard error and a length-controlled rate) or 1–5 scores per aspect")
            { model, judge, set, reference, kind, langs, bothOrders, mode, limit, maxTokens, output, cachePath, noCache, keyEnv, judgeKeyEnv, concurrency, seed };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var promptMode = Attune.Prompting.ChatPrompt.ParseMode(parse.GetValue(mode)!);
            var items = Attune.Evaluation.Judging.Judge.Resolve(parse.GetValue(set)!);
            if (parse.GetValue(reference) is { } refPath) items = Attune.Evaluation.Judging.Judge.WithReferences(items, refPath);
            var languages = ParseLanguages(parse.GetValue(langs)!);
            items = items.Where(i => languages.Contains(i.Language)).ToList();
            if (items.Count == 0) throw new AttuneException(parse.GetValue(set), "--langs", "no instruction of the set is in these languages");
            if (parse.GetValue(limit) is int n) items = n >= 1 ? items.Take(n).ToList() : throw new AttuneException(null, "--limit", "must be ≥ 1");
            var what = parse.GetValue(kind) ?? (items.All(i => i.Reference is not null) ? "pairwise" : "aspects");
            if (what is not ("pairwise" or "aspects" or "safety")) throw new AttuneException(null, "--kind", $"\"{what}\" is not pairwise, aspects or safety");
            using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
            using var judged = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            using var judgeBackend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(judge)!, "--judge"), new RemoteOptions { ApiKeyEnv = parse.GetValue(judgeKeyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            var modelRunner = new RequestRunner(judged, cache);
            var judgeRunner = new RequestRunner(judgeBackend, cache);
            var j = new Attune.Evaluation.Judging.Judge(judgeRunner, parse.GetValue(seed));
            (GeneratedText[] Generated, List<string> Responses) answered = ([], []);
            CliProgress.Run(io, "answers", progress => answered = Attune.Evaluation.Judging.Judge.AnswerAsync(modelRunner, items, promptMode, parse.GetValue(maxTokens),
                progress: (done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
            var (generated, responses) = answered;
            var errors = items.Select((it, i) => CriticalErrors.Detect(it.Instruction, responses[i], it.Language, generated[i].Finish)).ToList();
            var errorCounts = CriticalErrors.Count(errors);
            var json = new System.Text.Json.Nodes.JsonObject
            {
                ["model"] = judged.Identity, ["judge"] = judgeBackend.Identity, ["kind"] = what, ["mode"] = parse.GetValue(mode),
                ["critical_errors"] = new System.Text.Json.Nodes.JsonObject(errorCounts.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
            };
            if (what == "pairwise")
            {
                List<Attune.Evaluation.Judging.PairwiseJudgment> judgments = [];
                CliProgress.Run(io, "judging", progress => judgments = j.PairwiseAsync(items, responses, parse.GetValue(bothOrders),
                    (done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
                var w = Attune.Evaluation.Judging.Judge.Summarize(judgments);
                json["summary"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["win_rate"] = Estimate.Json(w.Rate), ["standard_error"] = Estimate.Json(w.StandardError), ["length_controlled_win_rate"] = Estimate.Json(w.LengthControlled), ["length_slope"] = Estimate.Json(w.LengthSlope),
                    ["judged"] = w.Judged, ["ties"] = w.Ties, ["unreadable"] = w.Unreadable, ["retries"] = w.Retries,
                };
                json["items"] = new System.Text.Json.Nodes.JsonArray(judgments.Select((x, i) => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
                {
                    ["id"] = x.Item.Id, ["lang"] = x.Item.Language, ["instruction"] = x.Item.Instruction, ["response"] = x.Response, ["reference"] = x.Item.Reference,
                    ["preference"] = x.Preference, ["verdicts"] = new System.Text.Json.Nodes.JsonArray(x.Verdicts.Select(v => (System.Text.Json.Nodes.JsonNode)v).ToArray()),
                    ["length_difference"] = x.LengthDifference, ["retries"] = x.Retries, ["critical_errors"] = errors[i].ToString(),
                }).ToArray());
                WriteTable(io, ["judged", "win rate", "± s.e.", "length-controlled", "ties", "unreadable", "retries"],
                    [[w.Judged.ToString(), $"{w.Rate:F3}", $"{w.StandardError:F3}", $"{w.LengthControlled:F3}", w.Ties.ToString(), w.Unreadable.ToString(), w.Retries.ToString()]], rightFrom: 0);
            }
            else
            {
                var aspects = what == "safety" ? Attune.Evaluation.Judging.Judge.SafetyAspects : Attune.Evaluation.Judging.Judge.Aspects;
                List<Attune.Evaluation.Judging.AspectJudgment> judgments = [];
                CliProgress.Run(io, "judging", progress => judgments = j.AspectsAsync(items, responses, aspects,
                    (done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
                var means = Attune.Evaluation.Judging.Judge.SummarizeAspects(judgments, aspects);
                json["summary"] = new System.Text.Json.Nodes.JsonObject(means.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)new System.Text.Json.Nodes.JsonObject
                {
                    ["mean"] = Estimate.Json(kv.Value.Value), ["ci_low"] = Estimate.Json(kv.Value.Low), ["ci_high"] = Estimate.Json(kv.Value.High), ["n"] = kv.Value.Count,
                })));
                json["unreadable"] = judgments.Count(x => x.Scores is null);
                json["retries"] = judgments.Sum(x => x.Retries);
                json["items"] = new System.Text.Json.Nodes.JsonArray(judgments.Select((x, i) => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
                {
                    ["id"] = x.Item.Id, ["lang"] = x.Item.Language, ["instruction"] = x.Item.Instruction, ["response"] = x.Response,
                    ["scores"] = x.Scores is null ? null : new System.Text.Json.Nodes.JsonObject(x.Scores.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
                    ["rationales"] = x.Rationales is null ? null : new System.Text.Json.Nodes.JsonObject(x.Rationales.Select(kv => KeyValuePair.Create(kv.Key, (System.Text.Json.Nodes.JsonNode?)kv.Value))),
                    ["retries"] = x.Retries, ["critical_errors"] = errors[i].ToString(),
                }).ToArray());
                WriteTable(io, ["aspect", "mean", "95% CI", "n"], means.Select(kv => new[] { kv.Key, $"{kv.Value.Value:F2}", $"[{kv.Value.Low:F2}, {kv.Value.High:F2}]", kv.Value.Count.ToString() }).ToList(), rightFrom: 1);
                io.Out.WriteLine($"unreadable: {judgments.Count(x => x.Scores is null)}, retries: {judgments.Sum(x => x.Retries)}");
            }
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            io.Out.WriteLine("critical errors: " + string.Join(", ", errorCounts.Select(kv => $"{kv.Key} {kv.Value}")));
            return Program.Success;
        });
        return cmd;
    }

    /// <summary>--langs: a comma-separated list of en, fr, es, each once, in the order given.</summary>
    internal static List<string> ParseLanguages(string list)
    {
        var languages = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        foreach (var l in languages)
            if (l is not ("en" or "fr" or "es")) throw new AttuneException(null, "--langs", $"\"{l}\" is not one of en, fr, es");
        return languages;
    }

    static void WriteTable(CliIO io, string[] header, List<string[]> rows, int rightFrom)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        void Line(string[] cells) => io.Out.WriteLine(string.Join("  ", cells.Select((c, i) => i >= rightFrom && i < cells.Length - 1 ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd());
        Line(header);
        foreach (var r in rows) Line(r);
    }

    /// <summary>Task files and built-in tasks (builtin:all, builtin:TYPE, builtin:TYPE_LANG), comma-separated.</summary>
    static IEnumerable<IclTask> LoadTasks(string list)
    {
        foreach (var entry in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry.StartsWith("builtin:", StringComparison.Ordinal))
            {
                foreach (var t in BuiltinSuite.Resolve(entry)) yield return t;
                continue;
            }
            foreach (var t in TaskConfig.Load(entry)) yield return new IclTask(t);
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
