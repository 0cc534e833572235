using System.CommandLine;
using System.Reflection;
using Attune.Evaluation;
using Attune.Experiments;
using Attune.Models;

namespace Attune.Cli.Commands;

/// <summary><c>attune sweep</c> (the study, resumable and shardable) and <c>attune store merge</c>.</summary>
public static class SweepCommand
{
    public static Command Build()
    {
        var baseModel = new Option<string?>("--base") { Description = "The base: a checkpoint folder or a Hub id ORG/NAME[@revision] in the local Hugging Face cache" };
        var instruct = new Option<string?>("--instruct") { Description = "Its instruct sibling (a folder or a Hub id); with --base, the λ arms are their interpolations" };
        var arm = new Option<string[]>("--arm") { Description = "An arm NAME=MODEL (repeatable): a folder, GGUF, BASE+INSTRUCT@λ or http://host:port/v1#NAME; lambda-X is λ = X, a name ending in urial is prompted with URIAL", AllowMultipleArgumentsPerToken = false };
        var lambdas = new Option<string>("--lambdas") { Description = "λ values: a list (0,0.5,1) or a range (0:1:0.1)", DefaultValueFactory = _ => "0:1:0.25" };
        var langs = new Option<string>("--langs") { Description = "Languages", DefaultValueFactory = _ => "en,fr,es" };
        var icl = new Option<string?>("--icl") { Description = "ICL tasks: builtin:all (default), builtin:TYPE, or task files; 'none' to skip", DefaultValueFactory = _ => "builtin:all" };
        var includePath = new Option<string[]>("--include-path") { Description = "A folder of lm-evaluation-harness task files whose names --icl may use (repeatable)", AllowMultipleArgumentsPerToken = false };
        var dataDir = new Option<string[]>("--data-dir") { Description = "Where Hub data sets of --icl tasks are (as eval icl --data-dir; repeatable)", AllowMultipleArgumentsPerToken = false };
        var ifSuite = new Option<string?>("--if") { Description = "IF prompts: builtin (default) or an IFEval-format file; 'none' to skip", DefaultValueFactory = _ => "builtin" };
        var dpo = new Option<string?>("--dpo") { Description = "A DPO-tuned model to add as an arm" };
        var sft = new Option<string?>("--sft") { Description = "An SFT-tuned model to add as an arm" };
        var urialShots = new Option<int>("--urial-shots") { Description = "URIAL examples for the base arm", DefaultValueFactory = _ => Attune.Prompting.UrialPrompt.DefaultShots };
        var shots = new Option<int?>("--shots") { Description = "Few-shot examples per ICL item (default: each task's)" };
        var shotsPerTask = new Option<int?>("--shots-per-task") { Description = "K: fixed shot sets per ICL task, drawn by seed; every item scored under each set and the sets averaged (one prompt prefix per set, computed once). Default: each task's sampler (per item)" };
        var iclLimit = new Option<int?>("--icl-limit") { Description = "Items per ICL task" };
        var iclChat = new Option<string>("--icl-chat") { Description = "Which arms' ICL prompts go through the chat template: none (all raw), chat (the arms prompted through chat for instructions; the URIAL base stays raw) or all", DefaultValueFactory = _ => "none" };
        iclChat.AcceptOnlyFromAmong("none", "chat", "all");
        var iclMultiturn = new Option<bool?>("--icl-fewshot-as-multiturn") { Description = "Under the chat template: the shots as turns (default true; false puts them in one user message)" };
        var iclSystem = new Option<string?>("--icl-system-instruction") { Description = "Text put before each ICL prompt (a system message under the chat template)" };
        var ifLimit = new Option<int?>("--if-limit") { Description = "IF prompts per language" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per IF response", DefaultValueFactory = _ => 256 };
        var store = new Option<string>("--store") { Description = "The results store: a SQLite file, or postgresql://user@host:port/db shared by workers on many machines", Required = true };
        var lease = new Option<double>("--lease") { Description = "Seconds a worker's claim on a cell holds without a heartbeat (renewed every third of it); a killed worker's cell is rerun after this", DefaultValueFactory = _ => Sweep.DefaultLease.TotalSeconds };
        var shard = new Option<string?>("--shard") { Description = "i/n: run every n-th cell starting at the i-th (1-based), for n machines sharing the sweep" };
        var cachePath = new Option<string?>("--cache") { Description = "A response cache (SQLite) shared by reruns" };
        var judge = new Option<string?>("--judge") { Description = "An LLM judge, http://host:port/v1#NAME (or a local model): adds the judge suite (win rate against references, aspect scores)" };
        var judgeSet = new Option<string>("--judge-set") { Description = "The judged instructions: builtin (30 per language) or JSONL with instruction, reference, lang, id", DefaultValueFactory = _ => "builtin" };
        var judgeLimit = new Option<int?>("--judge-limit") { Description = "Judged instructions per language" };
        var judgeBothOrders = new Option<bool>("--judge-both-orders") { Description = "Show each pair to the judge in both orders" };
        var judgeKeyEnv = new Option<string?>("--judge-api-key-env") { Description = "The environment variable holding the judge server's API key" };
        var concurrency = new Option<int>("--concurrency") { Description = "Requests in flight to the judge", DefaultValueFactory = _ => 4 };
        var shift = new Option<bool>("--shift") { Description = "Add the token-shift suite: each arm's answers to the judge set's instructions, ranked by the base model (URIAL's measure)" };
        var shiftLimit = new Option<int?>("--shift-limit") { Description = "Instructions per language for the token shift" };
        var shiftMaxTokens = new Option<int>("--shift-max-tokens") { Description = "Most tokens of each answer the shift reads", DefaultValueFactory = _ => 128 };
        var cmd = new Command("sweep", "The study: every λ of base→instruct, the base with URIAL, the instruct (and DPO/SFT) models, on the ICL and IF suites per language; resumable")
            { baseModel, instruct, arm, lambdas, langs, icl, includePath, dataDir, ifSuite, dpo, sft, urialShots, shots, shotsPerTask, iclLimit, iclChat, iclMultiturn, iclSystem, ifLimit, maxTokens, store, shard, cachePath,
              judge, judgeSet, judgeLimit, judgeBothOrders, judgeKeyEnv, concurrency, shift, shiftLimit, shiftMaxTokens, lease };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            string? None(string? v) => v is null || v == "none" ? null : v;
            var languages = EvalCommand.ParseLanguages(parse.GetValue(langs)!);
            var plan = new SweepPlan
            {
                Base = parse.GetValue(baseModel) is { } b ? CheckpointFolder(b, "--base") : null,
                Instruct = parse.GetValue(instruct) is { } i ? CheckpointFolder(i, "--instruct") : null,
                ExtraArms = (parse.GetValue(arm) ?? []).Select(a => ArmSpec.Parse(a)).ToList(),
                Lambdas = Lambda.ParseList(parse.GetValue(lambdas)!), Languages = languages,
                Icl = None(parse.GetValue(icl)), IncludePaths = (parse.GetValue(includePath) ?? []).Select(Path.GetFullPath).ToList(),
                DataDirs = EvalCommand.DataSourcesOf(parse.GetValue(dataDir)).DataDirs, If = None(parse.GetValue(ifSuite)),
                Dpo = parse.GetValue(dpo) is { } d ? ModelReference.Parse(d, "--dpo") : null, Sft = parse.GetValue(sft) is { } s ? ModelReference.Parse(s, "--sft") : null,
                UrialShots = parse.GetValue(urialShots), IclShots = parse.GetValue(shots), ShotsPerTask = parse.GetValue(shotsPerTask), IclLimit = parse.GetValue(iclLimit), IfLimit = parse.GetValue(ifLimit),
                IclChat = parse.GetValue(iclChat)!, IclFewshotAsMultiturn = parse.GetValue(iclMultiturn), IclSystemInstruction = parse.GetValue(iclSystem),
                IfMaxTokens = parse.GetValue(maxTokens),
                Judge = parse.GetValue(judge) is { } jm ? ModelReference.Parse(jm, "--judge") : null, JudgeSet = parse.GetValue(judgeSet) is "builtin" or null ? "builtin" : Path.GetFullPath(parse.GetValue(judgeSet)!),
                JudgeLimit = parse.GetValue(judgeLimit), JudgeBothOrders = parse.GetValue(judgeBothOrders),
                Shift = parse.GetValue(shift), ShiftLimit = parse.GetValue(shiftLimit), ShiftMaxTokens = parse.GetValue(shiftMaxTokens),
            };
            var leaseSeconds = parse.GetValue(lease);
            if (!(leaseSeconds >= 1)) throw new AttuneException(null, "--lease", "must be at least 1 second");
            return RunPlan(io, plan, parse.GetValue(store)!, parse.GetValue(shard), parse.GetValue(cachePath),
                new RemoteOptions { ApiKeyEnv = parse.GetValue(judgeKeyEnv), MaxConcurrency = parse.GetValue(concurrency) }, TimeSpan.FromSeconds(leaseSeconds));
        });
        return cmd;
    }

    /// <summary>Runs a plan's cells (of one shard) not yet in the store, showing them as they finish; shared by <c>sweep</c> and <c>demo</c>.</summary>
    internal static int RunPlan(CliIO io, SweepPlan plan, string storePath, string? shard, string? cachePath, RemoteOptions judgeOptions, TimeSpan? lease = null)
    {
        var sweep = new Sweep(plan) { Lease = lease ?? Sweep.DefaultLease };
        sweep.CheckInputs();
        var cells = shard is null ? sweep.Cells() : Sweep.Shard(sweep.Cells(), shard);
        using var results = new ResultsStore(storePath);
        using var cache = cachePath is { } cp ? new ResponseCache(cp) : null;
        var already = results.FinishedKeys();
        int skipped = cells.Count(c => already.Contains(c.Key));
        using var judgeBackend = plan.Judge is { } j && cells.Any(c => c.Suite == "judge" && !already.Contains(c.Key)) ? ModelBackends.Open(j, judgeOptions) : null;
        io.Error.WriteLine($"sweep: {cells.Count} cells ({sweep.Arms().Count} arms × {sweep.Suites.Count} suites × {plan.Languages.Count} languages{(shard is { } x ? $", shard {x}" : "")}); {skipped} already in {results.Path}");
        var version = typeof(Sweep).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "dev";
        var run = results.BeginRun(string.Join(' ', Environment.GetCommandLineArgs().Skip(1)), version, plan.ToJson());
        int ran = SweepDisplay.Run(io, cells, already, report => sweep.RunAsync(results, run, cells, report, cache, judgeBackend).GetAwaiter().GetResult());
        io.Error.WriteLine($"sweep: {ran} cells run, {skipped} resumed from the store{(sweep.ElsewhereCount > 0 ? $", {sweep.ElsewhereCount} run by other workers sharing it" : "")}, {cells.Count} in all; {sweep.AnswersReused} answers reused");
        return Program.Success;
    }

    /// <summary>The sweep interpolates its base and instruct models, so both must be checkpoint folders (or Hub snapshots).</summary>
    static ModelReference CheckpointFolder(string text, string field)
    {
        var model = ModelReference.Parse(text, field);
        model.CheckpointFolder(field);
        return model;
    }

    public static Command Store()
    {
        var target = new Argument<string>("target") { Description = "The store to merge into (a SQLite file, created if missing, or a postgresql:// URL)" };
        var sources = new Argument<string[]>("sources") { Description = "Stores to merge from (shards of one sweep)", Arity = ArgumentArity.OneOrMore };
        var merge = new Command("merge", "Merge results stores (shards of one sweep) into one; a cell present in several is kept once") { target, sources };
        merge.SetAction(parse =>
        {
            var io = CliIO.Get();
            using var into = new ResultsStore(parse.GetValue(target)!);
            foreach (var source in parse.GetValue(sources)!)
            {
                using var from = OpenExisting(source);
                io.Out.WriteLine($"{from.Path}: {into.Merge(from)} cells added");
            }
            return Program.Success;
        });
        var copyFrom = new Argument<string>("from") { Description = "The study's store (a SQLite file or a postgresql:// URL)" };
        var copyTo = new Argument<string>("to") { Description = "A new or empty store to copy it into" };
        var copy = new Command("copy", "Copy a study between stores (SQLite ↔ PostgreSQL): every run, cell, aggregate and item, as they were") { copyFrom, copyTo };
        copy.SetAction(parse =>
        {
            var io = CliIO.Get();
            using var from = OpenExisting(parse.GetValue(copyFrom)!);
            using var to = new ResultsStore(parse.GetValue(copyTo)!);
            if (to.FinishedKeys().Count is var n and > 0)
                throw new AttuneException(to.Path, $"already holds {n} cells; copy writes into an empty store (attune store merge adds to one)");
            io.Out.WriteLine($"{from.Path} → {to.Path}: {to.Merge(from)} cells copied");
            return Program.Success;
        });
        return new Command("store", "Results stores") { merge, copy };
    }

    /// <summary>A store that must already exist: a SQLite file that is missing is an error, not a new empty store.</summary>
    internal static ResultsStore OpenExisting(string text)
    {
        var location = StoreLocation.Parse(text, "store");
        if (location is StoreLocation.SqliteFile f && !File.Exists(f.Path)) throw new AttuneException(f.Path, "not found");
        return new ResultsStore(location, create: false);
    }
}
