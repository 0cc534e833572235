using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attune.Evaluation.Tasks;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Instructions;

/// <summary>One prompt's response and which of its instructions it follows, strictly and loosely.</summary>
public sealed record IfItem(IfPrompt Prompt, string Response, bool[] Strict, bool[] Loose, CriticalError Errors, FinishReason Finish)
{
    /// <summary>A scored response file gave no text for the prompt (null): every instruction counts as not followed.</summary>
    public bool Unanswered { get; init; }
}

/// <summary>
/// Prompt-level accuracy (every instruction followed) and instruction-level accuracy (the share of
/// instructions followed), strict and loose, each with a bootstrap 95% interval over prompts; accuracy per
/// instruction; and the count of each critical error.
/// </summary>
public sealed record IfSummary(string Language, Estimate PromptStrict, Estimate PromptLoose, Estimate InstructionStrict, Estimate InstructionLoose,
    IReadOnlyDictionary<string, (int Followed, int Total)> PerInstruction, IReadOnlyDictionary<string, int> CriticalErrors, int Prompts);

public static class IfEvaluation
{
    /// <summary>
    /// IFEval's loose reading: the response, without its first line, without its last line, and without both (each
    /// of these three trimmed), each also with markdown emphasis (*) removed; an instruction is loosely followed if
    /// any of them follows it.
    /// </summary>
    public static IEnumerable<string> LooseVariants(string response)
    {
        var lines = response.Split('\n');
        var cut = new[]
        {
            response,
            string.Join('\n', lines.Skip(1)).Trim(),
            string.Join('\n', lines.Take(Math.Max(0, lines.Length - 1))).Trim(),
            string.Join('\n', lines.Skip(1).Take(Math.Max(0, lines.Length - 2))).Trim(),
        };
        foreach (var c in cut)
        {
            yield return c;
            yield return c.Replace("*", "");
        }
    }

    /// <summary>Whether a response follows each instruction, strictly and loosely (an empty response follows none), as IFEval decides.</summary>
    public static IfItem Score(IfPrompt prompt, string response, FinishReason finish = FinishReason.Stop)
    {
        var strict = prompt.Instructions.Select(i => response.Trim().Length > 0 && Checkers.Follows(i, response, prompt.Language)).ToArray();
        var variants = LooseVariants(response).Where(v => v.Trim().Length > 0).ToList();
        var loose = prompt.Instructions.Select(i => variants.Any(v => Checkers.Follows(i, v, prompt.Language))).ToArray();
        return new IfItem(prompt, response, strict, loose, CriticalErrors.Detect(prompt.Prompt, response, prompt.Language, finish), finish);
    }

    /// <summary>A prompt whose response is missing from a scored file (not text): nothing is followed.</summary>
    public static IfItem Unanswered(IfPrompt prompt) =>
        new(prompt, "", new bool[prompt.Instructions.Count], new bool[prompt.Instructions.Count], CriticalError.Empty, FinishReason.Stop) { Unanswered = true };

    /// <summary>The generation request for a prompt in a mode: chat template, URIAL (base models), or the prompt as is.</summary>
    public static GenerateRequest Request(IfPrompt prompt, PromptMode mode, int maxTokens, int shots = UrialPrompt.DefaultShots, bool runToLimit = false) =>
        Request(prompt.Prompt, prompt.Language, mode, maxTokens, shots, runToLimit);

    /// <summary>
    /// A request for an answer to one user message: greedy, with the loop guard, through the chosen prompt mode. With
    /// <paramref name="runToLimit"/> (benchmarks only) the reply runs to <paramref name="maxTokens"/>, the end token and
    /// the loop guard ignored: a random model's stand-in for the lengths of real answers.
    /// </summary>
    public static GenerateRequest Request(string message, string language, PromptMode mode, int maxTokens, int shots = UrialPrompt.DefaultShots, bool runToLimit = false)
    {
        var options = runToLimit ? new GenerationOptions { MaxNewTokens = maxTokens, IgnoreEos = true }
            : new GenerationOptions { MaxNewTokens = maxTokens, RepetitionGuard = new RepetitionGuard() };
        var conversation = new[] { ChatMessage.User(message) };
        return mode switch
        {
            PromptMode.Chat => GenerateRequest.Chat(conversation, options),
            PromptMode.Urial => GenerateRequest.Raw(UrialPrompt.BuiltIn(language).Render(conversation, shots), options with { StopStrings = UrialPrompt.StopStrings }),
            _ => GenerateRequest.Raw(message, options),
        };
    }

    /// <summary>The answer's text as the mode leaves it (URIAL's closing fence removed).</summary>
    public static string Answer(PromptMode mode, GeneratedText generated) =>
        mode == PromptMode.Urial ? UrialPrompt.CleanAnswer(generated.Text) : generated.Text.Trim();

    public static async Task<List<IfItem>> RunAsync(IReadOnlyList<IfPrompt> prompts, RequestRunner runner, PromptMode mode, int maxTokens,
        int shots = UrialPrompt.DefaultShots, Action<int, int>? progress = null, CancellationToken cancel = default, bool runToLimit = false)
    {
        var requests = prompts.Select(p => Request(p, mode, maxTokens, shots, runToLimit)).ToList();
        var answers = await runner.GenerateAsync(requests, progress, cancel);
        return prompts.Select((p, i) =>
        {
            return Score(p, Answer(mode, answers[i]), answers[i].Finish);
        }).ToList();
    }

    public static IfSummary Summarize(string language, IReadOnlyList<IfItem> items, ulong seed = 1234)
    {
        Estimate PromptLevel(Func<IfItem, bool[]> pick) => Bootstrap.Mean(items.Select(i => pick(i).All(x => x) ? 1.0 : 0.0).ToList(), seed);
        Estimate InstructionLevel(Func<IfItem, bool[]> pick) => Bootstrap.Interval(items.Count, idx =>
        {
            double followed = 0, total = 0;
            foreach (var i in idx) { followed += pick(items[i]).Count(x => x); total += pick(items[i]).Length; }
            return total == 0 ? double.NaN : followed / total;
        }, seed);
        var per = new SortedDictionary<string, (int, int)>(StringComparer.Ordinal);
        foreach (var item in items)
            for (int k = 0; k < item.Prompt.Instructions.Count; k++)
            {
                var id = item.Prompt.Instructions[k].Id;
                var (f, t) = per.GetValueOrDefault(id);
                per[id] = (f + (item.Strict[k] ? 1 : 0), t + 1);
            }
        var errors = CriticalErrors.Count(items.Select(i => i.Errors));
        return new IfSummary(language, PromptLevel(i => i.Strict), PromptLevel(i => i.Loose), InstructionLevel(i => i.Strict), InstructionLevel(i => i.Loose),
            per, errors, items.Count);
    }

    /// <summary>One summary per language that has items, in the order of <paramref name="languages"/>.</summary>
    public static List<IfSummary> SummarizeByLanguage(IReadOnlyList<string> languages, IReadOnlyList<IfItem> items) =>
        languages.Where(l => items.Any(i => i.Prompt.Language == l))
            .Select(l => Summarize(l, items.Where(i => i.Prompt.Language == l).ToList())).ToList();

    public static JsonObject ToJson(string model, string mode, IReadOnlyList<IfSummary> summaries, IReadOnlyList<IfItem> items)
    {
        JsonObject Est(Estimate e) => e.ToJson();
        return new JsonObject
        {
            ["model"] = model,
            ["mode"] = mode,
            ["summary"] = new JsonArray(summaries.Select(s => (JsonNode)new JsonObject
            {
                ["lang"] = s.Language,
                ["prompts"] = s.Prompts,
                ["prompt_level_strict"] = Est(s.PromptStrict),
                ["prompt_level_loose"] = Est(s.PromptLoose),
                ["instruction_level_strict"] = Est(s.InstructionStrict),
                ["instruction_level_loose"] = Est(s.InstructionLoose),
                ["per_instruction"] = new JsonObject(s.PerInstruction.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject { ["followed"] = kv.Value.Followed, ["total"] = kv.Value.Total }))),
                ["critical_errors"] = new JsonObject(s.CriticalErrors.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            }).ToArray()),
            ["items"] = new JsonArray(items.Select(i => (JsonNode)new JsonObject
            {
                ["key"] = i.Prompt.Key,
                ["lang"] = i.Prompt.Language,
                ["prompt"] = i.Prompt.Prompt,
                ["instruction_id_list"] = new JsonArray(i.Prompt.Instructions.Select(x => (JsonNode)x.Id).ToArray()),
                ["kwargs"] = new JsonArray(i.Prompt.Instructions.Select(x => (JsonNode)x.Kwargs.DeepClone()).ToArray()),
                ["response"] = i.Response,
                ["follow_strict"] = new JsonArray(i.Strict.Select(x => (JsonNode)x).ToArray()),
                ["follow_loose"] = new JsonArray(i.Loose.Select(x => (JsonNode)x).ToArray()),
                ["finish"] = i.Finish.ToString(),
                ["critical_errors"] = i.Errors == CriticalError.None ? new JsonArray() : new JsonArray(i.Errors.ToString().Split(", ").Select(x => (JsonNode)x).ToArray()),
            }).ToArray()),
        };
    }
}
