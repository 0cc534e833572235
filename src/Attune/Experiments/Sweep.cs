using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Shift;
using Attune.Merging;
using Attune.Modeling;
using Attune.Evaluation.Tasks;
using Attune.Models;
using Attune.Prompting;
using Attune.Evaluation.Metrics;

namespace Attune.Experiments;

/// <summary>What a sweep measures: the models (arms), the suites and the languages.</summary>
public sealed record SweepPlan
{
    /// <summary>The base and instruct models whose interpolations are the λ arms (with the URIAL base and the instruct arm); null: arms only from <see cref="ExtraArms"/>.</summary>
    public ModelReference? Base { get; init; }
    public ModelReference? Instruct { get; init; }
    /// <summary>Arms named on the command line (<c>--arm NAME=MODEL</c>): served models, folders, GGUF files, interpolations.</summary>
    public IReadOnlyList<ArmSpec> ExtraArms { get; init; } = [];
    public IReadOnlyList<Lambda> Lambdas { get; init; } = [new(0), new(0.25), new(0.5), new(0.75), new(1)];
    public IReadOnlyList<string> Languages { get; init; } = ["en", "fr", "es"];
    /// <summary>ICL tasks (builtin:all, builtin:TYPE, files); null: no ICL suite.</summary>
    public string? Icl { get; init; } = "builtin:all";
    /// <summary>Folders of harness task files whose task, group and tag names <see cref="Icl"/> may use.</summary>
    public IReadOnlyList<string> IncludePaths { get; init; } = [];
    /// <summary>Where the ICL tasks' Hub data sets are (then the local Hugging Face cache).</summary>
    public IReadOnlyList<string> DataDirs { get; init; } = [DataSources.DefaultDataDir()];
    /// <summary>IF prompts (builtin or an IFEval-format file); null: no IF suite.</summary>
    public string? If { get; init; } = "builtin";
    /// <summary>Optional tuned models, run as their own arms in chat mode.</summary>
    public ModelReference? Dpo { get; init; }
    public ModelReference? Sft { get; init; }
    public int UrialShots { get; init; } = UrialPrompt.DefaultShots;
    public int? IclShots { get; init; }
    /// <summary>
    /// ICL shots fixed per task: K shot sets drawn by seed, every item scored under each and the sets averaged (null: each
    /// task's own sampler, per item by default). Items of a set share one prompt prefix, computed once.
    /// </summary>
    public int? ShotsPerTask { get; init; }
    /// <summary>Items per ICL task and prompts per IF language (null: all).</summary>
    public int? IclLimit { get; init; }
    /// <summary>
    /// Which arms' ICL prompts go through the chat template: none (every arm raw, as the harness's default), chat (the
    /// arms prompted through chat for instructions — the interpolations, instruct, DPO and SFT; the URIAL base stays raw),
    /// or all.
    /// </summary>
    public string IclChat { get; init; } = "none";
    /// <summary>With a chat template: the shots as turns (null: the harness's default, yes).</summary>
    public bool? IclFewshotAsMultiturn { get; init; }
    public string? IclSystemInstruction { get; init; }
    public int? IfLimit { get; init; }
    public int IfMaxTokens { get; init; } = 256;
    /// <summary>
    /// Benchmarks only (no command-line flag): IF replies run to <see cref="IfMaxTokens"/>, the end token and the loop
    /// guard ignored — a random model never stops, so this stands in for the lengths of real answers.
    /// </summary>
    public bool IfRunToLimit { get; init; }
    /// <summary>The LLM judge (a served model or a local one); null: no judge suite.</summary>
    public ModelReference? Judge { get; init; }
    /// <summary>The judged instructions with reference answers: builtin or a JSONL file.</summary>
    public string JudgeSet { get; init; } = "builtin";
    public int? JudgeLimit { get; init; }
    public bool JudgeBothOrders { get; init; }
    /// <summary>Measure each arm's token distribution shift against the base (its answers to the judge set's instructions).</summary>
    public bool Shift { get; init; }
    /// <summary>Instructions per language for the shift (null: all of the set's).</summary>
    public int? ShiftLimit { get; init; }
    /// <summary>Most tokens of each answer whose shift is measured.</summary>
    public int ShiftMaxTokens { get; init; } = 128;

    public JsonObject ToJson() => new()
    {
        ["base"] = Base?.Spec, ["instruct"] = Instruct?.Spec,
        ["arms"] = ExtraArms.Count == 0 ? null : new JsonObject(ExtraArms.Select(a => KeyValuePair.Create(a.Name, (JsonNode?)a.Model.Spec))),
        ["lambdas"] = new JsonArray(Lambdas.Select(l => (JsonNode)l.Value).ToArray()),
        ["langs"] = new JsonArray(Languages.Select(l => (JsonNode)l).ToArray()),
        ["icl"] = Icl, ["include_path"] = IncludePaths.Count == 0 ? null : new JsonArray(IncludePaths.Select(p => (JsonNode)p).ToArray()), ["if"] = If, ["dpo"] = Dpo?.Spec, ["sft"] = Sft?.Spec, ["urial_shots"] = UrialShots,
        ["icl_shots"] = IclShots, ["shots_per_task"] = ShotsPerTask, ["icl_limit"] = IclLimit, ["icl_chat"] = IclChat, ["icl_fewshot_as_multiturn"] = IclFewshotAsMultiturn, ["icl_system_instruction"] = IclSystemInstruction,
        ["if_limit"] = IfLimit, ["if_max_tokens"] = IfMaxTokens,
        ["judge"] = Judge?.Spec, ["judge_set"] = JudgeSet, ["judge_limit"] = JudgeLimit, ["judge_both_orders"] = JudgeBothOrders,
        ["shift"] = Shift, ["shift_limit"] = ShiftLimit, ["shift_max_tokens"] = ShiftMaxTokens,
    };
}

/// <summary>One model configuration of the study: how it is loaded and how it is prompted for instructions.</summary>
public sealed record Arm(string Name, Lambda? Lambda, ModelReference Model, PromptMode IfMode);

/// <summary>
/// An arm named on the command line, <c>NAME=MODEL</c>. The name says what the arm is, as the sweep names its own:
/// <c>lambda-X</c> is the interpolation at λ = X (so served λ models draw the λ curve), a name ending in <c>urial</c>
/// is prompted with URIAL (a base model), any other is prompted through its chat template.
/// </summary>
public sealed record ArmSpec(string Name, ModelReference Model)
{
    public static ArmSpec Parse(string text, string field = "--arm")
    {
        int eq = text.IndexOf('=');
        if (eq <= 0 || eq == text.Length - 1) throw new AttuneException(null, field, $"\"{text}\" is not NAME=MODEL");
        var name = text[..eq];
        if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[A-Za-z0-9][A-Za-z0-9._-]*$"))
            throw new AttuneException(null, field, $"arm name \"{name}\": use letters, digits, '.', '_' and '-'");
        if (name.StartsWith("lambda-", StringComparison.Ordinal))
            // Written as the sweep writes its own (lambda-0.50), so served and in-memory arms of one λ read alike in reports.
            name = Lambda.TryParse(name["lambda-".Length..], out var lambda) ? lambda.Name
                : throw new AttuneException(null, field, $"arm name \"{name}\": lambda-X names the interpolation at λ = X, and \"{name["lambda-".Length..]}\" is not a number");
        return new ArmSpec(name, ModelReference.Parse(text[(eq + 1)..], field));
    }

    public Arm ToArm() => new(Name,
        Name.StartsWith("lambda-", StringComparison.Ordinal) ? Lambda.Parse(Name["lambda-".Length..]) : null,
        Model, Name.EndsWith("urial", StringComparison.Ordinal) ? PromptMode.Urial : PromptMode.Chat);
}

/// <summary>A cell: an arm on one suite in one language; its key names exactly what it computes.</summary>
public sealed record Cell(Arm Arm, string Suite, string Language, string Key, JsonObject Settings);

/// <summary>
/// The study: every λ of the partial adaptation (interpolated in memory), the base model with URIAL
/// prompting, the instruct model (the λ = 1 arm when the sweep includes it), optional DPO/SFT models —
/// each on the ICL and IF suites (and the LLM judge, when given) per language. Cells already in the store are skipped, each finished
/// cell is committed at once, and <c>--shard i/n</c> takes every n-th cell of the deterministic order.
/// </summary>
public sealed class Sweep(SweepPlan plan)
{
    public SweepPlan Plan => plan;

    /// <summary>The arms in the order they run.</summary>
    public List<Arm> Arms()
    {
        // λ = 0 is the base's own weights (W_B + 0·Δ is W_B bit for bit): the arm names the base, so that requests it shares
        // with the URIAL arm (raw few-shot ICL) are answered once. λ = 1 is not W_I bit for bit, so it stays an interpolation.
        var arms = new List<Arm>();
        if (plan.Base is { } b && plan.Instruct is { } i)
        {
            arms.AddRange(plan.Lambdas.Select(l => new Arm(l.Name, l, l.Value == 0 ? b : new ModelReference.Interpolation(b, i, l), PromptMode.Chat)));
            arms.Add(new Arm("base-urial", null, b, PromptMode.Urial));
            if (!plan.Lambdas.Contains(new Lambda(1))) arms.Add(new Arm("instruct", null, i, PromptMode.Chat));
        }
        if (plan.Dpo is { } dpo) arms.Add(new Arm("dpo", null, dpo, PromptMode.Chat));
        if (plan.Sft is { } sft) arms.Add(new Arm("sft", null, sft, PromptMode.Chat));
        arms.AddRange(plan.ExtraArms.Select(a => a.ToArm()));
        return arms;
    }

    /// <summary>Every cell of the plan, in a fixed order (arm, suite, language).</summary>
    public List<Cell> Cells()
    {
        var cells = new List<Cell>();
        var identities = new Dictionary<ModelReference, string>();
        foreach (var arm in Arms())
        {
            // A served model's key names its address and name (every worker reaches the same server); the cell records the
            // identity the server reports (attune serve adds its files' fingerprint) when it runs.
            var identity = identities.TryGetValue(arm.Model, out var id) ? id
                : identities[arm.Model] = arm.Model.IsLocal ? arm.Model.LocalIdentity() : "remote:" + arm.Model.Spec;
            foreach (var suite in Suites)
                foreach (var lang in plan.Languages)
                {
                    if (suite == "shift" && arm.Lambda is null && arm.Model.Equals(plan.Base)) continue; // the URIAL base against itself is unshifted by definition
                    var mode = arm.IfMode.ToString().ToLowerInvariant();
                    var settings = suite switch
                    {
                        "icl" => new JsonObject { ["tasks"] = plan.Icl, ["shots"] = plan.IclShots, ["limit"] = plan.IclLimit },
                        "if" => new JsonObject { ["suite"] = plan.If, ["mode"] = mode, ["urial_shots"] = plan.UrialShots, ["limit"] = plan.IfLimit, ["max_tokens"] = plan.IfMaxTokens },
                        "shift" => new JsonObject { ["base"] = plan.Base?.Spec, ["set"] = plan.JudgeSet, ["mode"] = mode, ["limit"] = plan.ShiftLimit, ["max_tokens"] = plan.ShiftMaxTokens },
                        _ => new JsonObject
                        {
                            ["judge"] = plan.Judge?.Spec, ["set"] = plan.JudgeSet, ["both_orders"] = plan.JudgeBothOrders, ["mode"] = mode,
                            ["urial_shots"] = plan.UrialShots, ["limit"] = plan.JudgeLimit, ["max_tokens"] = plan.IfMaxTokens, ["seed"] = JudgeSeed,
                        },
                    };
                    // Task names mean what the include folders say (only written when given, so older keys stay as they were).
                    if (suite == "icl" && plan.IncludePaths.Count > 0) settings["include_path"] = new JsonArray(plan.IncludePaths.Select(p => (JsonNode)p).ToArray());
                    if (suite == "icl" && IclChat(arm)) settings["chat_template"] = new JsonObject { ["fewshot_as_multiturn"] = plan.IclFewshotAsMultiturn ?? true };
                    if (suite == "icl" && plan.IclSystemInstruction is { } system) settings["system_instruction"] = system;
                    if (suite == "icl" && plan.ShotsPerTask is { } sets) settings["shots_per_task"] = sets; // only when set, so older keys stay
                    if (suite == "if" && plan.IfRunToLimit) settings["run_to_limit"] = true; // a benchmark's stand-in, never a study's cell
                    var keyText = string.Join("\n", arm.Name, suite, lang, identity, settings.ToJsonString());
                    var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyText)))[..24];
                    settings["model_spec"] = arm.Model.Spec;
                    cells.Add(new Cell(arm, suite, lang, key, settings));
                }
        }
        return cells;
    }

    /// <summary>The suites the plan measures, in the order their cells run.</summary>
    public List<string> Suites => new[] { ("icl", plan.Icl is not null), ("if", plan.If is not null), ("judge", plan.Judge is not null), ("shift", plan.Shift) }.Where(s => s.Item2).Select(s => s.Item1).ToList();

    const ulong JudgeSeed = 1234;

    /// <summary>Cells of shard <paramref name="index"/> (1-based) of <paramref name="count"/>: every count-th cell, starting at index.</summary>
    public static List<Cell> Shard(List<Cell> cells, int index, int count)
    {
        if (count < 1 || index < 1 || index > count) throw new AttuneException(null, "--shard", $"{index}/{count}: write i/n with 1 ≤ i ≤ n");
        return cells.Where((_, i) => i % count == index - 1).ToList();
    }

    /// <summary>The cells of shard <c>i/n</c> as <c>--shard</c> writes it.</summary>
    public static List<Cell> Shard(List<Cell> cells, string shard)
    {
        var parts = shard.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out var i) || !int.TryParse(parts[1], out var n)) throw new AttuneException(null, "--shard", $"\"{shard}\" is not i/n");
        return Shard(cells, i, n);
    }

    /// <summary>Progress: a cell started, or finished after so many seconds with its headline score.</summary>
    public sealed record Progress(Cell Cell, bool Finished, double Seconds, int Done, int Total, double? Score = null);

    /// <summary>
    /// Runs the cells not yet in the store, arm by arm (each model loaded once), committing each cell as it
    /// finishes. Judge cells ask <paramref name="judge"/> (required when the cells include any). Returns how
    /// many cells it ran.
    /// </summary>
    public async Task<int> RunAsync(ResultsStore store, string runId, IReadOnlyList<Cell> cells, Action<Progress>? progress = null,
        ResponseCache? cache = null, IModelBackend? judge = null, CancellationToken cancel = default)
    {
        var finished = store.FinishedKeys();
        var todo = cells.Where(c => !finished.Contains(c.Key)).ToList();
        if (judge is null && todo.Any(c => c.Suite == "judge")) throw new AttuneException(null, "--judge", "the sweep has judge cells but no judge to ask");
        // Without a cache of the user's, one for this run: an arm whose requests another arm already sent is answered, not recomputed.
        using var runCache = cache is null ? ResponseCache.Temporary() : null;
        AnswersReused = 0;
        ElsewhereCount = 0;
        cache ??= runCache;
        var judgeRunner = judge is null ? null : new RequestRunner(judge, cache);
        await CheckServedArms(todo, cancel);
        int done = cells.Count - todo.Count, ran = 0;
        LanguageModel? shiftBase = null; // loaded for the first shift cell, once
        try
        {
            // Cells another worker holds are passed over and asked again once this worker has nothing else: finished by
            // then, or their lease expired (that worker died) and this one runs them.
            for (var pending = todo; pending.Count > 0;)
            {
                var held = new List<Cell>();
                foreach (var group in ArmsInTurn(store, pending))
                {
                    IModelBackend? backend = null; // opened for the first cell this worker claims, so an arm others are running costs nothing
                    RequestRunner? runner = null;
                    try
                    {
                        foreach (var cell in group)
                        {
                            cancel.ThrowIfCancellationRequested();
                            using var lease = store.TryClaim(cell.Key, Worker, Lease);
                            if (lease is null)
                            {
                                held.Add(cell);
                                continue;
                            }
                            backend ??= ModelBackends.Open(group.Key.Model);
                            runner ??= new RequestRunner(backend, cache);
                            progress?.Invoke(new Progress(cell, false, 0, done, cells.Count));
                            var clock = Stopwatch.StartNew();
                            var result = cell.Suite switch
                            {
                                "icl" => await IclCell(cell, runner, backend.Identity, cancel),
                                "if" => await IfCell(cell, runner, backend.Identity, cancel),
                                "shift" => ShiftCell(cell, backend, shiftBase ??= ModelLoader.Load(plan.Base!)),
                                _ => await JudgeCell(cell, runner, backend.Identity, judgeRunner!, cancel),
                            };
                            result = result with { Seconds = clock.Elapsed.TotalSeconds };
                            done++;
                            if (store.Commit(runId, result)) ran++; // false: this worker's lease ran out and another finished the cell first
                            progress?.Invoke(new Progress(cell, true, result.Seconds, done, cells.Count, result.Aggregates.FirstOrDefault(a => a.Name == cell.Suite)?.Value));
                        }
                    }
                    finally
                    {
                        AnswersReused += runner?.CacheHits ?? 0;
                        backend?.Dispose();
                    }
                }
                if (held.Count == 0) break;
                var finishedElsewhere = store.FinishedKeys();
                foreach (var cell in held.Where(c => finishedElsewhere.Contains(c.Key)))
                    progress?.Invoke(new Progress(cell, true, 0, ++done, cells.Count));
                pending = held.Where(c => !finishedElsewhere.Contains(c.Key)).ToList();
                if (pending.Count > 0) await Task.Delay(PollInterval, cancel);
            }
            AnswersReused += judgeRunner?.CacheHits ?? 0;
        }
        finally { shiftBase?.Dispose(); }
        ElsewhereCount = todo.Count - ran;
        return ran;
    }

    /// <summary>
    /// The pending cells arm by arm, the next arm chosen when the last is done: first the arms no other worker is running
    /// (fewest cells claimed by others), so that workers sharing a store spread over the arms and each loads few models;
    /// among those, the plan's order for a worker alone and an order rotated by the worker's id when others are at work.
    /// </summary>
    IEnumerable<IGrouping<Arm, Cell>> ArmsInTurn(ResultsStore store, List<Cell> pending)
    {
        var groups = pending.GroupBy(c => c.Arm).ToList();
        int offset = (int)(BitConverter.ToUInt32(SHA256.HashData(Encoding.UTF8.GetBytes(Worker))) % (uint)groups.Count);
        var left = Enumerable.Range(0, groups.Count).ToList();
        while (left.Count > 0)
        {
            var others = store.Claims().Where(c => c.Live && c.Worker != Worker).Select(c => c.Key).ToHashSet();
            int Turn(int i) => others.Count == 0 ? i : (i - offset + groups.Count) % groups.Count;
            int next = left.OrderBy(i => groups[i].Count(c => others.Contains(c.Key))).ThenBy(Turn).First();
            left.Remove(next);
            yield return groups[next];
        }
    }

    /// <summary>
    /// Asks each served arm that has ICL cells to run for one log-likelihood before the first cell, so a server that
    /// cannot give a prompt's log-probabilities (no echo with logprobs on /v1/completions) stops the sweep with one line
    /// naming the arm, not after hours of other cells.
    /// </summary>
    static async Task CheckServedArms(IEnumerable<Cell> todo, CancellationToken cancel)
    {
        foreach (var arm in todo.Where(c => c.Suite == "icl" && !c.Arm.Model.IsLocal).Select(c => c.Arm).Distinct())
        {
            using var backend = ModelBackends.Open(arm.Model);
            try { await backend.LoglikelihoodAsync("The sky is", " blue", cancel); }
            catch (AttuneException e) { throw new AttuneException(null, $"--arm {arm.Name}", $"{arm.Model.Spec} cannot score the ICL tasks: {e.Message}"); }
        }
    }

    /// <summary>
    /// How long a worker waits before asking again for cells other workers hold: a tenth of the lease, at most a second
    /// (one cheap query), so a worker left waiting exits as soon as the last cell is in.
    /// </summary>
    TimeSpan PollInterval => TimeSpan.FromTicks(Math.Min(Lease.Ticks / 10, TimeSpan.FromSeconds(1).Ticks));

    /// <summary>
    /// The arm's token distribution shift against the base: it answers the judge set's instructions greedily (prompted as
    /// for the IF suite) and the base ranks each answer token; the headline is the shifted share (rank &gt; 3).
    /// </summary>
    CellResult ShiftCell(Cell cell, IModelBackend backend, LanguageModel baseModel)
    {
        var aligned = (backend as LocalBackend)?.Model ?? throw new AttuneException(null, "--shift", $"{cell.Arm.Name}: the token shift reads a model's logits, so it runs on models in this process, not served ones");
        _shiftItems ??= Judge.Resolve(plan.JudgeSet);
        var items = _shiftItems.Where(i => i.Language == cell.Language).Take(plan.ShiftLimit ?? int.MaxValue).ToList();
        var answers = TokenShift.Measure(baseModel, aligned, items, cell.Arm.IfMode, plan.ShiftMaxTokens, plan.UrialShots);
        var s = TokenShift.Summarize(cell.Language, answers, baseModel.Tokenizer);
        var aggregates = new List<Aggregate>
        {
            new("shift", s.Shifted.Value, s.Shifted.Low, s.Shifted.High, s.Tokens),
            new("shift/unshifted", s.Unshifted.Value, s.Unshifted.Low, s.Unshifted.High, s.Tokens),
            new("shift/marginal", s.Marginal.Value, s.Marginal.Low, s.Marginal.High, s.Tokens),
            new("shift/shifted", s.Shifted.Value, s.Shifted.Low, s.Shifted.High, s.Tokens),
        };
        foreach (var (positions, shifted, tokens) in s.Profile.Where(p => p.Tokens > 0))
            aggregates.Add(new Aggregate($"shift/positions/{positions}", shifted, null, null, tokens));
        var records = answers.Select(a => new JsonObject
        {
            ["key"] = a.Item.Id, ["prompt"] = a.Item.Instruction, ["response"] = a.Answer,
            ["shifted_tokens"] = new JsonArray(a.Tokens.Where((_, k) => a.Ranks[k] > 3).Select(t => (JsonNode)baseModel.Tokenizer.Decode([t])).ToArray()),
            ["ranks"] = new JsonArray(a.Ranks.Select(r => (JsonNode)r).ToArray()),
        }).ToList();
        return new CellResult(cell.Key, cell.Arm.Name, cell.Arm.Lambda?.Value, cell.Suite, cell.Language, backend.Identity, cell.Settings, aggregates, records, 0);
    }

    List<JudgeItem>? _shiftItems;

    /// <summary>This process among the workers sharing a store (machine, process, and a random part).</summary>
    public string Worker { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>
    /// How long a claim on a cell holds without renewal: it is renewed every third of it while the cell runs (a heartbeat),
    /// and a killed worker's cell goes to another worker this long after its last heartbeat.
    /// </summary>
    public TimeSpan Lease { get; init; } = DefaultLease;

    public static readonly TimeSpan DefaultLease = TimeSpan.FromMinutes(2);

    /// <summary>Cells of the last run that another process sharing the store finished or was running.</summary>
    public int ElsewhereCount { get; private set; }

    /// <summary>Requests of the last run answered from the cache (another arm's, or an earlier run's) rather than computed.</summary>
    public int AnswersReused { get; private set; }

    /// <summary>Whether an arm's ICL prompts go through its chat template (<see cref="SweepPlan.IclChat"/>).</summary>
    bool IclChat(Arm arm) => plan.IclChat switch
    {
        "all" => true,
        "chat" => arm.IfMode == PromptMode.Chat,
        _ => false,
    };

    List<IclTask>? _iclTasks;

    /// <summary>The plan's ICL tasks, loaded (and the built-in ones generated) once per sweep, not once per cell.</summary>
    List<IclTask> IclTasks() => _iclTasks ??= TaskList.Resolve(plan.Icl!, plan.IncludePaths, data: new DataSources { DataDirs = plan.DataDirs });

    async Task<CellResult> IclCell(Cell cell, RequestRunner runner, string identity, CancellationToken cancel)
    {
        var tasks = IclTasks().Where(t => t.Config.Language is null || t.Config.Language == cell.Language).ToList();
        var chat = IclChat(cell.Arm);
        var prompting = TaskPrompting.For(runner.Backend, chat ? "" : null, chat ? plan.IclFewshotAsMultiturn : null, plan.IclSystemInstruction);
        var results = await IclEvaluation.RunAsync(tasks, runner, plan.IclShots, plan.IclLimit, cancel: cancel, prompting: prompting, shotSets: plan.ShotsPerTask);
        var aggregates = new List<Aggregate>();
        var primary = new List<List<double>>();
        foreach (var r in results)
        {
            foreach (var (metric, e) in r.Metrics) aggregates.Add(new Aggregate($"icl/{r.Task}/{metric}", e.Value, e.Low, e.High, e.Count));
            var main = r.Metrics.ContainsKey("acc") ? "acc" : "exact_match";
            if (r.Metrics.ContainsKey(main)) primary.Add(r.Items.Select(i => i.Scores[main]).ToList());
        }
        // The ICL score: the mean over tasks of each task's main metric (acc, or exact match), with an
        // interval from resampling items within every task.
        var score = Bootstrap.MeanOfMeans(primary);
        aggregates.Add(new Aggregate("icl", score.Value, score.Low, score.High, score.Count));
        var items = results.SelectMany(r => r.Items.Select(i => new JsonObject
        {
            ["task"] = r.Task, ["doc"] = i.Item.Doc, ["prediction"] = i.Prediction, ["gold"] = i.Item.GoldText,
            ["scores"] = new JsonObject(i.Scores.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Value))),
        })).ToList();
        return new CellResult(cell.Key, cell.Arm.Name, cell.Arm.Lambda?.Value, cell.Suite, cell.Language, identity, cell.Settings, aggregates, items, 0);
    }

    readonly Dictionary<string, List<IfPrompt>> _ifPrompts = [];

    /// <summary>The plan's IF prompts of a language, built (or read) once per sweep.</summary>
    List<IfPrompt> IfPrompts(string language)
    {
        if (_ifPrompts.TryGetValue(language, out var cached)) return cached;
        return _ifPrompts[language] = IfSuite.Select(plan.If!, [language], plan.IfLimit);
    }

    async Task<CellResult> IfCell(Cell cell, RequestRunner runner, string identity, CancellationToken cancel)
    {
        var prompts = IfPrompts(cell.Language);
        var items = await IfEvaluation.RunAsync(prompts, runner, cell.Arm.IfMode, plan.IfMaxTokens, plan.UrialShots, cancel: cancel, runToLimit: plan.IfRunToLimit);
        var s = IfEvaluation.Summarize(cell.Language, items);
        var aggregates = new List<Aggregate>
        {
            new("if", s.PromptLoose.Value, s.PromptLoose.Low, s.PromptLoose.High, s.PromptLoose.Count),
            new("if/prompt_strict", s.PromptStrict.Value, s.PromptStrict.Low, s.PromptStrict.High, s.PromptStrict.Count),
            new("if/prompt_loose", s.PromptLoose.Value, s.PromptLoose.Low, s.PromptLoose.High, s.PromptLoose.Count),
            new("if/instruction_strict", s.InstructionStrict.Value, s.InstructionStrict.Low, s.InstructionStrict.High, s.InstructionStrict.Count),
            new("if/instruction_loose", s.InstructionLoose.Value, s.InstructionLoose.Low, s.InstructionLoose.High, s.InstructionLoose.Count),
        };
        foreach (var (id, (followed, total)) in s.PerInstruction)
            aggregates.Add(new Aggregate($"if/checker/{id}", total == 0 ? double.NaN : (double)followed / total, null, null, total));
        foreach (var (error, count) in s.CriticalErrors) aggregates.Add(new Aggregate($"errors/{error}", count, null, null, items.Count));
        var records = items.Select(i => new JsonObject
        {
            ["key"] = i.Prompt.Key, ["prompt"] = i.Prompt.Prompt, ["response"] = i.Response,
            ["instructions"] = new JsonArray(i.Prompt.Instructions.Select(x => (JsonNode)x.Id).ToArray()),
            ["strict"] = new JsonArray(i.Strict.Select(x => (JsonNode)x).ToArray()), ["loose"] = new JsonArray(i.Loose.Select(x => (JsonNode)x).ToArray()),
            ["errors"] = i.Errors.ToString(),
        }).ToList();
        return new CellResult(cell.Key, cell.Arm.Name, cell.Arm.Lambda?.Value, cell.Suite, cell.Language, identity, cell.Settings, aggregates, records, 0);
    }

    /// <summary>Checks the plan (limits, at least one suite) and reads the judge's instruction set for every language now, so a bad input stops the sweep before its first cell.</summary>
    public void CheckInputs()
    {
        foreach (var (name, value) in new[] { ("--icl-limit", plan.IclLimit), ("--if-limit", plan.IfLimit), ("--judge-limit", plan.JudgeLimit), ("--shift-limit", plan.ShiftLimit), ("--shots-per-task", plan.ShotsPerTask) })
            if (value is < 1) throw new AttuneException(null, name, "must be ≥ 1");
        if (plan.ShiftMaxTokens < 1) throw new AttuneException(null, "--shift-max-tokens", "must be ≥ 1");
        if (Suites.Count == 0) throw new AttuneException(null, "--icl", "nothing to measure: --icl and --if are none and there is no --judge or --shift");
        if ((plan.Base is null) != (plan.Instruct is null)) throw new AttuneException(null, plan.Base is null ? "--instruct" : "--base", "--base and --instruct go together (their interpolations are the λ arms)");
        var arms = Arms();
        if (arms.Count == 0) throw new AttuneException(null, "--arm", "no arms: give --base and --instruct, or --arm NAME=MODEL");
        if (arms.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new AttuneException(null, "--arm", $"two arms are named {twice.Key} (the sweep names its own arms lambda-X, base-urial, instruct, dpo and sft)");
        if (plan.Shift && plan.Base is null) throw new AttuneException(null, "--shift", "needs --base: the base model ranks each arm's answers");
        if (plan.Shift && arms.FirstOrDefault(a => !a.Model.IsLocal || a.Model is ModelReference.LlamaCpp) is { } served)
            throw new AttuneException(null, "--shift", $"arm {served.Name} is {(served.Model is ModelReference.LlamaCpp ? "run by llama.cpp" : "served")}: the token shift reads a model's logits in Attune's engine (drop --shift, or give the arm as a folder)");
        if (plan.Shift)
            foreach (var lang in plan.Languages)
                if (!(_shiftItems ??= Judge.Resolve(plan.JudgeSet)).Any(i => i.Language == lang)) throw new AttuneException(plan.JudgeSet, $"has no instruction in {lang} for the token shift");
        if (plan.IclChat is not ("none" or "chat" or "all")) throw new AttuneException(null, "--icl-chat", $"\"{plan.IclChat}\" is not none, chat or all");
        if (plan.IclFewshotAsMultiturn == true && plan.IclChat == "none")
            throw new AttuneException(null, "--icl-fewshot-as-multiturn", "needs --icl-chat chat or all (the shots become chat turns)");
        if (plan.Judge is null) return;
        foreach (var lang in plan.Languages) JudgeItems(lang);
    }

    List<JudgeItem>? _judgeItems;

    /// <summary>The judged instructions of a language (read once per sweep); every one needs a reference answer.</summary>
    List<JudgeItem> JudgeItems(string language)
    {
        _judgeItems ??= Judge.Resolve(plan.JudgeSet);
        if (_judgeItems.FirstOrDefault(i => i.Reference is null) is { } missing)
            throw new AttuneException(plan.JudgeSet, $"instruction {missing.Id}", "has no reference answer, which the judge compares with");
        var items = _judgeItems.Where(i => i.Language == language).Take(plan.JudgeLimit ?? int.MaxValue).ToList();
        return items.Count > 0 ? items : throw new AttuneException(plan.JudgeSet, $"has no instruction in {language}");
    }

    /// <summary>
    /// The arm answers the judged instructions (prompted as for the IF suite); the judge compares each answer
    /// with the reference (win rate with ±1.96 s.e., the length-controlled rate) and scores it on five aspects.
    /// </summary>
    async Task<CellResult> JudgeCell(Cell cell, RequestRunner runner, string identity, RequestRunner judgeRunner, CancellationToken cancel)
    {
        var items = JudgeItems(cell.Language);
        var options = new JudgeRunOptions
        {
            Pairwise = true, Aspects = Judge.Aspects, Mode = cell.Arm.IfMode, MaxTokens = plan.IfMaxTokens, UrialShots = plan.UrialShots,
            BothOrders = plan.JudgeBothOrders, Seed = JudgeSeed,
        };
        var run = await JudgeRun.RunAsync(runner, judgeRunner, items, options, cancel: cancel);
        var (pairs, aspects, responses, errors) = (run.Pairs!, run.AspectJudgments!, run.Responses, run.Errors);
        var w = run.WinRate!;
        double half = 1.96 * w.StandardError;
        var aggregates = new List<Aggregate>
        {
            new("judge", w.Rate, double.IsFinite(half) ? Math.Max(0, w.Rate - half) : null, double.IsFinite(half) ? Math.Min(1, w.Rate + half) : null, w.Judged),
            new("judge/win_rate", w.Rate, null, null, w.Judged),
            new("judge/standard_error", w.StandardError, null, null, w.Judged),
            new("judge/length_controlled", w.LengthControlled, null, null, w.Judged),
            new("judge/ties", w.Ties, null, null, w.Judged),
            new("judge/unreadable", w.Unreadable + aspects.Count(a => a.Scores is null), null, null, items.Count * 2),
        };
        foreach (var (aspect, e) in run.AspectMeans!)
            aggregates.Add(new Aggregate($"judge/aspect/{aspect}", e.Value, e.Low, e.High, e.Count));
        foreach (var (error, count) in run.ErrorCounts)
            aggregates.Add(new Aggregate($"errors/{error}", count, null, null, items.Count));
        var records = items.Select((it, i) => new JsonObject
        {
            ["key"] = it.Id, ["prompt"] = it.Instruction, ["response"] = responses[i], ["reference"] = it.Reference,
            ["preference"] = pairs[i].Preference, ["verdicts"] = new JsonArray(pairs[i].Verdicts.Select(v => (JsonNode)v).ToArray()),
            ["scores"] = aspects[i].Scores is { } sc ? new JsonObject(sc.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))) : null,
            ["errors"] = errors[i].ToString(),
        }).ToList();
        var settings = (JsonObject)cell.Settings.DeepClone();
        settings["judge_identity"] = judgeRunner.Backend.Identity;
        return new CellResult(cell.Key, cell.Arm.Name, cell.Arm.Lambda?.Value, cell.Suite, cell.Language, identity, settings, aggregates, records, 0);
    }
}
