using System.Text.Json.Nodes;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Metrics;
using Attune.Prompting;

namespace Attune.Evaluation.Judging;

/// <summary>What a judge run asks: pairwise preference against the references, 1–5 aspect scores, or both.</summary>
public sealed record JudgeRunOptions
{
    /// <summary>Compare each answer with its item's reference (needs references).</summary>
    public bool Pairwise { get; init; }
    /// <summary>Score each answer on these aspects (null or empty: none).</summary>
    public IReadOnlyList<string>? Aspects { get; init; }
    /// <summary>How the judged model is prompted (as for the IF suite).</summary>
    public PromptMode Mode { get; init; } = PromptMode.Chat;
    public int MaxTokens { get; init; } = 384;
    public int UrialShots { get; init; } = UrialPrompt.DefaultShots;
    public bool BothOrders { get; init; }
    /// <summary>Seeds the order of each pair and the aspect means' bootstrap.</summary>
    public ulong Seed { get; init; } = 1234;
    /// <summary>Judge pairs with an AlpacaEval annotator configuration (its prompt and parser) instead of Attune's prompts.</summary>
    public AlpacaEvaluator? Evaluator { get; init; }
    /// <summary>The user's own aspect-scoring prompt (see <see cref="Judge.AspectTemplate"/>).</summary>
    public string? AspectTemplate { get; init; }

    /// <summary><c>--kind</c> as <c>attune eval judge</c> takes it: pairwise, aspects or safety; null: pairwise when every item has a reference, else aspects.</summary>
    public static JudgeRunOptions ForKind(string? kind, IReadOnlyList<JudgeItem> items)
    {
        var what = kind ?? (items.All(i => i.Reference is not null) ? "pairwise" : "aspects");
        return what switch
        {
            "pairwise" => new JudgeRunOptions { Pairwise = true },
            "aspects" => new JudgeRunOptions { Aspects = Judge.Aspects },
            "safety" => new JudgeRunOptions { Aspects = Judge.SafetyAspects },
            _ => throw new AttuneException(null, "--kind", $"\"{what}\" is not pairwise, aspects or safety"),
        };
    }

    /// <summary>The kind's name in results: pairwise, aspects, safety, or pairwise+aspects.</summary>
    public string Kind => (Pairwise, Aspects) switch
    {
        (true, { Count: > 0 }) => "pairwise+aspects",
        (true, _) => "pairwise",
        (false, { } a) when ReferenceEquals(a, Judge.SafetyAspects) => "safety",
        _ => "aspects",
    };
}

/// <summary>A judge run's answers, critical errors, judgments and their summaries.</summary>
public sealed record JudgeRunResult(
    JudgeRunOptions Options,
    IReadOnlyList<JudgeItem> Items,
    IReadOnlyList<GeneratedText> Generated,
    IReadOnlyList<string> Responses,
    IReadOnlyList<CriticalError> Errors,
    IReadOnlyList<PairwiseJudgment>? Pairs,
    WinRate? WinRate,
    IReadOnlyList<AspectJudgment>? AspectJudgments,
    IReadOnlyDictionary<string, Estimate>? AspectMeans)
{
    public Dictionary<string, int> ErrorCounts => CriticalErrors.Count(Errors);

    /// <summary>The results file of <c>attune eval judge --out</c>: who judged whom, the summary, and every judgment.</summary>
    public JsonObject ToJson(string model, string judge)
    {
        var json = new JsonObject
        {
            ["model"] = model, ["judge"] = judge, ["kind"] = Options.Kind, ["mode"] = Options.Mode.ToString().ToLowerInvariant(),
            ["critical_errors"] = new JsonObject(ErrorCounts.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        };
        if (WinRate is { } w)
            json["summary"] = new JsonObject
            {
                ["win_rate"] = Estimate.Json(w.Rate), ["standard_error"] = Estimate.Json(w.StandardError),
                ["length_controlled_win_rate"] = Estimate.Json(w.LengthControlled), ["length_slope"] = Estimate.Json(w.LengthSlope),
                ["judged"] = w.Judged, ["ties"] = w.Ties, ["unreadable"] = w.Unreadable, ["retries"] = w.Retries,
            };
        if (AspectMeans is { } means)
        {
            var aspects = new JsonObject(means.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
            {
                ["mean"] = Estimate.Json(kv.Value.Value), ["ci_low"] = Estimate.Json(kv.Value.Low), ["ci_high"] = Estimate.Json(kv.Value.High), ["n"] = kv.Value.Count,
                ["n_na"] = AspectJudgments!.Count(x => x.NotApplicable.Contains(kv.Key)),
            })));
            if (WinRate is null) json["summary"] = aspects;
            else json["aspects"] = aspects;
            json["unreadable"] = AspectJudgments!.Count(x => x.Scores is null);
            json["retries"] = AspectJudgments!.Sum(x => x.Retries);
        }
        json["items"] = new JsonArray(Items.Select((item, i) =>
        {
            var o = new JsonObject { ["id"] = item.Id, ["lang"] = item.Language, ["instruction"] = item.Instruction, ["response"] = Responses[i] };
            if (Pairs is { } pairs)
            {
                o["reference"] = item.Reference;
                o["preference"] = pairs[i].Preference;
                o["verdicts"] = new JsonArray(pairs[i].Verdicts.Select(v => (JsonNode)v).ToArray());
                o["length_difference"] = pairs[i].LengthDifference;
            }
            if (AspectJudgments is { } aspects)
            {
                o["scores"] = aspects[i].Scores is { } sc ? new JsonObject(sc.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))) : null;
                o["rationales"] = aspects[i].Rationales is { } ra ? new JsonObject(ra.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))) : null;
                if (aspects[i].NotApplicable.Count > 0) o["not_applicable"] = new JsonArray(aspects[i].NotApplicable.Select(x => (JsonNode)x).ToArray());
            }
            o["retries"] = (Pairs?[i].Retries ?? 0) + (AspectJudgments?[i].Retries ?? 0);
            o["critical_errors"] = Errors[i].ToString();
            return (JsonNode)o;
        }).ToArray());
        return json;
    }
}

/// <summary>
/// One judge run, shared by <c>attune eval judge</c> and the sweep's judge cell: the judged model answers the
/// instructions (prompted as for the IF suite), critical errors are counted, and the judge compares each answer
/// with the reference and/or scores it per aspect.
/// </summary>
public static class JudgeRun
{
    /// <summary>Runs it; <paramref name="answering"/> and <paramref name="judging"/> hear (done, total) of each phase.</summary>
    public static async Task<JudgeRunResult> RunAsync(RequestRunner model, RequestRunner judge, IReadOnlyList<JudgeItem> items, JudgeRunOptions options,
        Action<int, int>? answering = null, Action<int, int>? judging = null, CancellationToken cancel = default)
    {
        if (options.Pairwise) Judge.RequireReferences(items); // before the judged model answers anything
        var (generated, responses) = await Judge.AnswerAsync(model, items, options.Mode, options.MaxTokens, options.UrialShots, answering, cancel);
        var errors = items.Select((it, i) => CriticalErrors.Detect(it.Instruction, responses[i], it.Language, generated[i].Finish)).ToList();
        var j = new Judge(judge, options.Seed) { Evaluator = options.Evaluator, AspectTemplate = options.AspectTemplate };
        List<PairwiseJudgment>? pairs = options.Pairwise ? await j.PairwiseAsync(items, responses, options.BothOrders, judging, cancel) : null;
        List<AspectJudgment>? aspects = options.Aspects is { Count: > 0 } names ? await j.AspectsAsync(items, responses, names, pairs is null ? judging : null, cancel) : null;
        return new JudgeRunResult(options, items, generated, responses, errors,
            pairs, pairs is null ? null : Judge.Summarize(pairs),
            aspects, aspects is null ? null : Judge.SummarizeAspects(aspects, options.Aspects!, options.Seed));
    }
}
