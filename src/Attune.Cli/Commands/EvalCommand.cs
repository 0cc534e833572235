using System.CommandLine;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Formats;
using Attune.Models;
using Attune.Evaluation.Metrics;

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

    /// <summary>--data-dir folders, or Attune's default one; the local Hugging Face cache is searched after them.</summary>
    internal static DataSources DataSourcesOf(string[]? dirs) => dirs is { Length: > 0 } ? new DataSources { DataDirs = dirs.Select(Path.GetFullPath).ToList() } : DataSources.Default;

    /// <summary>The response cache: --cache PATH, or the default one; --no-cache for none.</summary>
    static ResponseCache? OpenCache(string? path, bool none) => none ? null : new ResponseCache(path ?? ResponseCache.DefaultPath());

    static Command Icl()
    {
        var model = ModelCommands.ModelOption();
        var tasks = new Option<string>("--tasks") { Description = "builtin:all, builtin:TYPE, builtin:TYPE_LANG, task or group files (lm-evaluation-harness YAML), or task, group and tag names from --include-path, comma-separated", Required = true };
        var includePath = new Option<string[]>("--include-path") { Description = "A folder of lm-evaluation-harness task files (searched recursively) whose task, group and tag names --tasks may use (repeatable)", AllowMultipleArgumentsPerToken = false };
        var dataDir = new Option<string[]>("--data-dir") { Description = $"Where Hub data sets (dataset_path, dataset_name) are, laid out as huggingface-cli download --repo-type dataset ID --local-dir DIR/ID (repeatable; default {Attune.Evaluation.Tasks.DataSources.DefaultDataDir()}, then the local Hugging Face cache)", AllowMultipleArgumentsPerToken = false };
        var langs = new Option<string>("--langs") { Description = "Languages to run (tasks that declare a lang)", DefaultValueFactory = _ => "en,fr,es" };
        var shots = new Option<int?>("--shots") { Description = "Few-shot examples per item (default: each task's num_fewshot)" };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N items of each task" };
        var shotsPerTask = new Option<int?>("--shots-per-task") { Description = "K: fixed shot sets per task drawn by seed, every item scored under each and the sets averaged (one prompt prefix per set); default: each task's sampler" };
        var output = new Option<string?>("--out") { Description = "Write results (summary and every item) as JSON" };
        var outputPath = new Option<string?>("--output-path") { Description = "Write lm-evaluation-harness's results file: DIR/<model>/results_<date>.json, or FILE_<date>.json for a path ending in .json" };
        var chatTemplate = new Option<string?>("--apply-chat-template") { Description = "Put task prompts through the model's chat template (NAME: one of its named templates), as lm-evaluation-harness's --apply_chat_template", Arity = ArgumentArity.ZeroOrOne };
        var multiturn = new Option<bool?>("--fewshot-as-multiturn") { Description = "With a chat template: each shot its own user and assistant turn (the default there; false puts the shots in one user message)", Arity = ArgumentArity.ZeroOrOne };
        var systemInstruction = new Option<string?>("--system-instruction") { Description = "Text put before each task prompt (as a system message under a chat template)" };
        var logSamples = new Option<bool>("--log-samples") { Description = "With --output-path: also write the harness's per-document records, samples_<task>_<date>.jsonl" };
        var cachePath = new Option<string?>("--cache") { Description = "Response cache (SQLite; default ~/.cache/attune/responses.db)" };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the response cache" };
        var keyEnv = ModelCommands.ApiKeyEnvOption();
        var concurrency = new Option<int>("--concurrency") { Description = "For a served model: requests in flight", DefaultValueFactory = _ => 4 };
        var cmd = new Command("icl", "Few-shot tasks: log-likelihood of choices (acc, acc_norm), of a target (perplexity), of a whole text (word_perplexity, bits_per_byte) or generation (exact_match, f1, chrf), with bootstrap 95% intervals")
            { model, tasks, includePath, dataDir, langs, shots, limit, shotsPerTask, chatTemplate, multiturn, systemInstruction, output, outputPath, logSamples, cachePath, noCache, keyEnv, concurrency };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            if (parse.GetValue(shots) is < 0) throw new AttuneException(null, "--shots", "must be ≥ 0");
            if (parse.GetValue(limit) is < 1) throw new AttuneException(null, "--limit", "must be ≥ 1");
            if (parse.GetValue(logSamples) && parse.GetValue(outputPath) is null) throw new AttuneException(null, "--log-samples", "needs --output-path (the samples are written beside the results file)");
            var languages = ParseLanguages(parse.GetValue(langs)!).ToHashSet();
            var groups = new List<TaskGroup>();
            var loaded = TaskList.Resolve(parse.GetValue(tasks)!, parse.GetValue(includePath) ?? [], groups, DataSourcesOf(parse.GetValue(dataDir))).Where(t => t.Config.Language is null || languages.Contains(t.Config.Language)).ToList();
            if (loaded.Count == 0) throw new AttuneException(null, "--tasks", "no task left after the --langs filter");
            using var backend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
            var runner = new RequestRunner(backend, cache);
            var prompting = TaskPrompting.For(backend, parse.GetResult(chatTemplate) is null ? null : parse.GetValue(chatTemplate) ?? "",
                parse.GetResult(multiturn) is { } given ? given.Tokens.Count == 0 || parse.GetValue(multiturn) == true : null, parse.GetValue(systemInstruction));
            List<TaskResult> results = [];
            CliProgress.Run(io, "eval icl", progress =>
                results = IclEvaluation.RunAsync(loaded, runner, parse.GetValue(shots), parse.GetValue(limit),
                    (_, done, total) => progress.Report(total == 0 ? 1 : (double)done / total), prompting: prompting, shotSets: parse.GetValue(shotsPerTask)).GetAwaiter().GetResult());
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, IclEvaluation.ToJson(backend.Identity, results, runner).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            if (parse.GetValue(outputPath) is { } harnessPath)
                io.Error.WriteLine($"results: {HarnessResults.Write(harnessPath, parse.GetValue(logSamples), loaded, results, groups, ModelReference.Parse(parse.GetValue(model)!).Spec, parse.GetValue(limit), prompting)}");
            PrintTable(io, results);
            io.Error.WriteLine($"requests: {runner.Computed} computed, {runner.CacheHits} from the cache, {runner.Duplicates} repeated");
            return Program.Success;
        });
        return cmd;
    }

    static Command If()
    {
        var model = ModelCommands.ModelOption();
        model.Required = false;
        model.Description = ModelCommands.ModelReferenceHelp + " (not with --responses)";
        var suite = new Option<string>("--suite", "--input") { Description = "builtin (120 prompts per language) or an IFEval-format JSONL file (IFEval's or M-IFEval's input data)", DefaultValueFactory = _ => "builtin" };
        var responses = new Option<string?>("--responses") { Description = "Score existing responses instead of generating: JSONL with prompt and response per line (IFEval's input_response_data; its eval_results files qualify)" };
        var outDir = new Option<string?>("--out-dir") { Description = "Write eval_results_strict.jsonl and eval_results_loose.jsonl here, as IFEval does" };
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
            { model, suite, responses, outDir, mode, langs, shots, limit, maxTokens, output, cachePath, noCache, keyEnv, concurrency };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var promptMode = Attune.Prompting.ChatPrompt.ParseMode(parse.GetValue(mode)!);
            if (parse.GetValue(maxTokens) < 1) throw new AttuneException(null, "--max-tokens", "must be ≥ 1");
            var responsesPath = parse.GetValue(responses);
            if (responsesPath is null && parse.GetValue(model) is null) throw new AttuneException(null, "--model", "is required (or score existing responses with --responses)");
            if (responsesPath is not null && parse.GetValue(model) is not null) throw new AttuneException(null, "--responses", "scores existing responses: no model is loaded, so leave out --model");
            var languages = ParseLanguages(parse.GetValue(langs)!);
            var source = parse.GetValue(suite)!;
            if (responsesPath is not null && source == "builtin") throw new AttuneException(null, "--responses", "needs --input, the prompts the responses answer");
            var prompts = Attune.Evaluation.Instructions.IfSuite.Select(source, languages, parse.GetValue(limit));
            if (prompts.Count == 0) throw new AttuneException(source, "no prompt in the languages asked for");
            List<Attune.Evaluation.Instructions.IfItem> items = [];
            string identity;
            if (responsesPath is not null)
            {
                items = Attune.Evaluation.Instructions.IfVerdicts.Score(prompts, Attune.Evaluation.Instructions.IfVerdicts.LoadResponses(responsesPath), responsesPath);
                identity = responsesPath;
            }
            else
            {
                using var backend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
                using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
                var runner = new RequestRunner(backend, cache);
                CliProgress.Run(io, "eval if", progress =>
                    items = Attune.Evaluation.Instructions.IfEvaluation.RunAsync(prompts, runner, promptMode, parse.GetValue(maxTokens), parse.GetValue(shots),
                        (done, total) => progress.Report(total == 0 ? 1 : (double)done / total)).GetAwaiter().GetResult());
                identity = backend.Identity;
                io.Error.WriteLine($"requests: {runner.Computed} computed, {runner.CacheHits} from the cache, {runner.Duplicates} repeated");
            }
            var summaries = Attune.Evaluation.Instructions.IfEvaluation.SummarizeByLanguage(languages, items);
            if (parse.GetValue(outDir) is { } verdictDir)
                Attune.Evaluation.Instructions.IfVerdicts.Write(verdictDir, items);
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, Attune.Evaluation.Instructions.IfEvaluation.ToJson(identity, responsesPath is null ? parse.GetValue(mode)! : "responses", summaries, items)
                    .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            string F(Estimate e) => $"{e.Value:F3} [{e.Low:F3}, {e.High:F3}]";
            var rows = summaries.Select(s => new[]
            {
                s.Language, s.Prompts.ToString(), F(s.PromptStrict), F(s.PromptLoose), F(s.InstructionStrict), F(s.InstructionLoose),
                string.Join(" ", s.CriticalErrors.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")) is { Length: > 0 } errs ? errs : "-",
            }).ToList();
            WriteTable(io, ["lang", "prompts", "prompt strict", "prompt loose", "instruction strict", "instruction loose", "critical errors"], rows, rightFrom: 1);
            return Program.Success;
        });
        return cmd;
    }

    static Command JudgeCommand()
    {
        var model = ModelCommands.ModelOption();
        model.Required = false;
        model.Description = "The judged model: " + ModelCommands.ModelReferenceHelp;
        var judge = new Option<string?>("--judge") { Description = "The judge: http://host:port/v1#NAME (any OpenAI-compatible server), or a local model" };
        var annotations = new Option<string?>("--annotations") { Description = "Compute AlpacaEval's win rates from an existing annotations.json (no model, no judge)" };
        var difficulty = new Option<string?>("--instruction-difficulty") { Description = "With --annotations: AlpacaEval's instruction_difficulty.csv, for the length-controlled model with the difficulty term" };
        var modelOutputs = new Option<string?>("--model-outputs") { Description = "Write the judged model's answers as AlpacaEval's model_outputs.json" };
        var evaluator = new Option<string?>("--evaluator") { Description = "Judge pairs with an AlpacaEval annotator's configs.yaml (its prompt template and its logprob_parser or regex_parser)" };
        var aspectTemplate = new Option<string?>("--aspect-template") { Description = "Your own aspect-scoring prompt (a text file with {instruction} and {response}, or just-eval's ${instruction} and ${candidate}); replies are read in just-eval's shape" };
        var annotationsOut = new Option<string?>("--annotations-out") { Description = "Write the pairwise judgments as AlpacaEval's annotations.json (output_1 the reference, output_2 the model)" };
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
            { model, judge, annotations, difficulty, evaluator, aspectTemplate, modelOutputs, annotationsOut, set, reference, kind, langs, bothOrders, mode, limit, maxTokens, output, cachePath, noCache, keyEnv, judgeKeyEnv, concurrency, seed };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            if (parse.GetValue(annotations) is { } annotationsPath)
            {
                if (parse.GetValue(model) is not null || parse.GetValue(judge) is not null)
                    throw new AttuneException(null, "--annotations", "computes the win rates from existing annotations: leave out --model and --judge");
                var read = Attune.Evaluation.Judging.AlpacaEvalFiles.ReadAnnotations(annotationsPath);
                var m = Attune.Evaluation.Judging.AlpacaEvalFiles.Metrics(read,
                    parse.GetValue(difficulty) is { } difficultyPath ? Attune.Evaluation.Judging.AlpacaEvalFiles.ReadDifficulty(difficultyPath, read) : null);
                WriteTable(io, ["annotations", "win rate", "± s.e.", "wins", "base wins", "draws", "discrete", "length-controlled"],
                    [[m.Total.ToString(), $"{m.WinRate:F2}", $"{m.StandardError:F2}", m.Wins.ToString(), m.WinsBase.ToString(), m.Draws.ToString(), $"{m.DiscreteWinRate:F2}", $"{m.LengthControlled:F2}"]], rightFrom: 0);
                if (m.ExtremeChange)
                    io.Error.WriteLine($"warning: the length-controlled win rate ({m.LengthControlled:F1}%) is very different from the raw one ({m.WinRate:F1}%): the fit may have failed");
                if (parse.GetValue(output) is { } annotationsOut)
                    AtomicFile.WriteAllText(annotationsOut, Attune.Evaluation.Judging.AlpacaEvalFiles.ToJson(m, read.Select(a => a.Generator2).Distinct().Count() == 1 ? read[0].Generator2 : null)
                        .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return Program.Success;
            }
            if (parse.GetValue(model) is null) throw new AttuneException(null, "--model", "is required (or give --annotations)");
            if (parse.GetValue(judge) is null) throw new AttuneException(null, "--judge", "is required (or give --annotations)");
            var promptMode = Attune.Prompting.ChatPrompt.ParseMode(parse.GetValue(mode)!);
            var items = Attune.Evaluation.Judging.Judge.Select(parse.GetValue(set)!, parse.GetValue(reference), ParseLanguages(parse.GetValue(langs)!), parse.GetValue(limit));
            var options = Attune.Evaluation.Judging.JudgeRunOptions.ForKind(parse.GetValue(kind), items) with
            {
                Mode = promptMode, MaxTokens = parse.GetValue(maxTokens), BothOrders = parse.GetValue(bothOrders), Seed = parse.GetValue(seed),
                Evaluator = parse.GetValue(evaluator) is { } config ? Attune.Evaluation.Judging.AlpacaEvaluator.Load(config) : null,
                AspectTemplate = parse.GetValue(aspectTemplate) is { } templatePath ? ReadTemplate(templatePath) : null,
            };
            using var cache = OpenCache(parse.GetValue(cachePath), parse.GetValue(noCache));
            using var judged = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            using var judgeBackend = ModelBackends.Open(ModelReference.Parse(parse.GetValue(judge)!, "--judge"), new RemoteOptions { ApiKeyEnv = parse.GetValue(judgeKeyEnv), MaxConcurrency = parse.GetValue(concurrency) });
            Attune.Evaluation.Judging.JudgeRunResult? result = null;
            CliProgress.Run(io, "answers, then judging", progress => result = Attune.Evaluation.Judging.JudgeRun.RunAsync(
                new RequestRunner(judged, cache), new RequestRunner(judgeBackend, cache), items, options,
                answering: (done, total) => progress.Report(total == 0 ? 0.5 : 0.5 * done / total),
                judging: (done, total) => progress.Report(total == 0 ? 1 : 0.5 + 0.5 * done / total)).GetAwaiter().GetResult());
            if (result!.WinRate is { } w)
                WriteTable(io, ["judged", "win rate", "± s.e.", "length-controlled", "ties", "unreadable", "retries"],
                    [[w.Judged.ToString(), $"{w.Rate:F3}", $"{w.StandardError:F3}", $"{w.LengthControlled:F3}", w.Ties.ToString(), w.Unreadable.ToString(), w.Retries.ToString()]], rightFrom: 0);
            if (result.AspectMeans is { } means)
            {
                WriteTable(io, ["aspect", "mean", "95% CI", "n"], means.Select(kv => new[] { kv.Key, $"{kv.Value.Value:F2}", $"[{kv.Value.Low:F2}, {kv.Value.High:F2}]", kv.Value.Count.ToString() }).ToList(), rightFrom: 1);
                io.Out.WriteLine($"unreadable: {result.AspectJudgments!.Count(x => x.Scores is null)}, retries: {result.AspectJudgments!.Sum(x => x.Retries)}");
            }
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, result.ToJson(judged.Identity, judgeBackend.Identity).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            if (parse.GetValue(modelOutputs) is { } outputsPath)
                Attune.Evaluation.Judging.AlpacaEvalFiles.WriteModelOutputs(outputsPath, items, result.Responses, judged.Identity);
            if (parse.GetValue(annotationsOut) is { } annotationsPath2)
            {
                if (result.Pairs is null) throw new AttuneException(null, "--annotations-out", "needs pairwise judging (--kind pairwise, with references)");
                Attune.Evaluation.Judging.AlpacaEvalFiles.WriteAnnotations(annotationsPath2, result.Pairs, judged.Identity,
                    parse.GetValue(reference) is { } r ? Path.GetFileNameWithoutExtension(r) : "reference", options.Evaluator?.Name ?? judgeBackend.Identity);
            }
            var errorCounts = result.ErrorCounts;
            io.Out.WriteLine("critical errors: " + string.Join(", ", errorCounts.Select(kv => $"{kv.Key} {kv.Value}")));
            return Program.Success;
        });
        return cmd;
    }

    static string ReadTemplate(string path)
    {
        try
        {
            var text = File.ReadAllText(path);
            return System.Text.RegularExpressions.Regex.IsMatch(text, @"\$?\{(response|candidate)\}") ? text
                : throw new AttuneException(path, "--aspect-template", "has no {response} (or ${candidate}) for the answer to go in");
        }
        catch (IOException e) { throw new AttuneException(path, e.Message); }
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
