using System.Text.Json.Nodes;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Metrics;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Text;

namespace Attune.Evaluation.Shift;

/// <summary>One answer's token ranks under the base model (1: the base model's own first choice).</summary>
public sealed record ShiftedAnswer(JudgeItem Item, string Answer, IReadOnlyList<int> Tokens, IReadOnlyList<int> Ranks, IReadOnlyList<int> BaseChoices);

/// <summary>A language's token distribution shift: the share of answer tokens in each class, with intervals over answers.</summary>
public sealed record ShiftSummary(string Language, int Answers, int Tokens, Estimate Unshifted, Estimate Marginal, Estimate Shifted,
    IReadOnlyList<(string Token, int Count)> TopShifted, IReadOnlyList<(string Positions, double Shifted, int Tokens)> Profile);

/// <summary>
/// The token distribution shift between a base model and an aligned one, as URIAL measures it: the aligned model
/// answers greedily; at every position of its answer the base model, given the same prompt and the answer so far,
/// ranks the aligned model's token. Rank 1 is unshifted, ranks 2–3 marginal, anything lower shifted. Both models must
/// read the same tokens.
/// </summary>
public static class TokenShift
{
    /// <summary>The position bins of the profile (1-based, inclusive): how the shift falls off along the answer.</summary>
    static readonly (int From, int To)[] Bins = [(1, 5), (6, 10), (11, 20), (21, 50), (51, int.MaxValue)];

    /// <summary>Stops unless both models read text into the same tokens (the ranks compare token for token).</summary>
    public static void RequireSameTokenizer(LanguageModel baseModel, LanguageModel aligned)
    {
        const string probe = "Token shift: the quick brown fox — le renard brun, el zorro marrón. 12345 ¿Qué? naïve café ñandú\n";
        if (baseModel.Tokenizer.VocabSize != aligned.Tokenizer.VocabSize
            || !baseModel.Tokenizer.Encode(probe, addSpecialTokens: false).SequenceEqual(aligned.Tokenizer.Encode(probe, addSpecialTokens: false)))
            throw new AttuneException(null, "--aligned", $"the base model ({baseModel.Source}) and the aligned model ({aligned.Source}) do not share a tokenizer, so their token distributions cannot be compared");
    }

    /// <summary>Every item answered by the aligned model (greedy, through <paramref name="mode"/>) and ranked by the base model.</summary>
    public static List<ShiftedAnswer> Measure(LanguageModel baseModel, LanguageModel aligned, IReadOnlyList<JudgeItem> items, PromptMode mode, int maxTokens,
        int urialShots = UrialPrompt.DefaultShots, Action<int, int>? progress = null)
    {
        RequireSameTokenizer(baseModel, aligned);
        var results = new List<ShiftedAnswer>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var urial = mode == PromptMode.Urial ? UrialPrompt.BuiltIn(item.Language) : null;
            var prompt = ChatPrompt.Encode(aligned.Tokenizer, mode, urial, [ChatMessage.User(item.Instruction)], urialShots);
            var generated = aligned.Generate(prompt, new GenerationOptions
            {
                MaxNewTokens = maxTokens,
                Sampling = new SamplingOptions { Temperature = 0 },
                StopStrings = mode == PromptMode.Urial ? UrialPrompt.StopStrings : [],
            });
            var answer = generated.Tokens.Where(t => !aligned.EndOfSequenceIds.Contains(t)).ToArray();
            var ranks = baseModel.Ranks(prompt, answer);
            results.Add(new ShiftedAnswer(item, generated.Text, answer, ranks.Select(r => r.Rank).ToList(), ranks.Select(r => r.Top).ToList()));
            progress?.Invoke(i + 1, items.Count);
        }
        return results;
    }

    public static string Class(int rank) => rank == 1 ? "unshifted" : rank <= 3 ? "marginal" : "shifted";

    /// <summary>The three shares of one language's answer tokens (bootstrap 95% intervals over answers), the most often shifted tokens, and the profile along positions.</summary>
    public static ShiftSummary Summarize(string language, IReadOnlyList<ShiftedAnswer> answers, Tokenizer tokenizer, ulong seed = 1234, int top = 10)
    {
        Estimate Share(Func<int, bool> inClass) => Bootstrap.Interval(answers.Count, idx =>
        {
            double hits = 0, total = 0;
            foreach (var i in idx) { hits += answers[i].Ranks.Count(inClass); total += answers[i].Ranks.Count; }
            return total == 0 ? double.NaN : hits / total;
        }, seed);
        var shiftedTokens = answers.SelectMany(a => a.Tokens.Where((_, k) => a.Ranks[k] > 3))
            .GroupBy(t => tokenizer.Decode([t])).Select(g => (Token: g.Key, Count: g.Count()))
            .OrderByDescending(x => x.Count).ThenBy(x => x.Token, StringComparer.Ordinal).Take(top).ToList();
        var profile = Bins.Select(b =>
        {
            var ranks = answers.SelectMany(a => a.Ranks.Where((_, k) => k + 1 >= b.From && k + 1 <= b.To)).ToList();
            return (b.To == int.MaxValue ? $"{b.From}+" : $"{b.From}–{b.To}", ranks.Count == 0 ? double.NaN : ranks.Count(r => r > 3) / (double)ranks.Count, ranks.Count);
        }).ToList();
        return new ShiftSummary(language, answers.Count, answers.Sum(a => a.Ranks.Count), Share(r => r == 1), Share(r => r is 2 or 3), Share(r => r > 3), shiftedTokens, profile);
    }

    public static JsonObject ToJson(string baseModel, string aligned, string mode, IReadOnlyList<ShiftSummary> summaries, IReadOnlyList<ShiftedAnswer> answers, Tokenizer tokenizer) => new()
    {
        ["base"] = baseModel,
        ["aligned"] = aligned,
        ["mode"] = mode,
        ["summary"] = new JsonArray(summaries.Select(s => (JsonNode)new JsonObject
        {
            ["lang"] = s.Language, ["answers"] = s.Answers, ["tokens"] = s.Tokens,
            ["unshifted"] = s.Unshifted.ToJson(), ["marginal"] = s.Marginal.ToJson(), ["shifted"] = s.Shifted.ToJson(),
            ["top_shifted"] = new JsonArray(s.TopShifted.Select(t => (JsonNode)new JsonObject { ["token"] = t.Token, ["count"] = t.Count }).ToArray()),
            ["profile"] = new JsonArray(s.Profile.Select(p => (JsonNode)new JsonObject { ["positions"] = p.Positions, ["shifted"] = Estimate.Json(p.Shifted), ["tokens"] = p.Tokens }).ToArray()),
        }).ToArray()),
        ["items"] = new JsonArray(answers.Select(a => (JsonNode)new JsonObject
        {
            ["id"] = a.Item.Id, ["lang"] = a.Item.Language, ["instruction"] = a.Item.Instruction, ["answer"] = a.Answer,
            ["tokens"] = new JsonArray(a.Tokens.Select((t, k) => (JsonNode)new JsonObject
            {
                ["token"] = tokenizer.Decode([t]), ["rank"] = a.Ranks[k], ["base_choice"] = tokenizer.Decode([a.BaseChoices[k]]),
            }).ToArray()),
        }).ToArray()),
    };
}
