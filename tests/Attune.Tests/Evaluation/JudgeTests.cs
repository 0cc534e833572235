using Attune.Evaluation.Metrics;
using System.Text.RegularExpressions;
using Attune.Evaluation;
using Attune.Evaluation.Judging;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Tests.Cli;
using Attune.Tensors;

namespace Attune.Tests.Evaluation;

public class JudgeTests
{
    static List<JudgeItem> Items(int n, string lang = "en") =>
        Enumerable.Range(0, n).Select(i => new JudgeItem(i.ToString(), $"Request number {i}", lang, $"reference {i}")).ToList();

    static (string A, string B) Answers(string prompt) => ScriptedJudge.Answers(prompt);

    [Theory]
    [InlineData("en")]
    [InlineData("fr")]
    [InlineData("es")]
    public void The_built_in_set_has_thirty_instructions_per_language_each_with_a_reference_in_that_language(string lang)
    {
        var items = Judge.BuiltIn(lang);
        Assert.Equal(30, items.Count);
        Assert.Equal(30, items.Select(i => i.Id).Distinct().Count());
        Assert.All(items, i =>
        {
            Assert.StartsWith(lang + "-", i.Id);
            Assert.Equal(lang, i.Language);
            Assert.False(string.IsNullOrWhiteSpace(i.Reference));
        });
        // The language identifier of the IF checks reads the instructions and the references as the set's language
        // (a few short ones, such as a one-word classification, may carry too few function words to tell).
        Assert.True(items.Count(i => Attune.Evaluation.Instructions.TextUnits.Identify(i.Instruction + "\n" + i.Reference) == lang) >= 27);
        Assert.Equal(90, Judge.Resolve("builtin").Count);
    }

    [Fact]
    public async Task A_judge_that_always_picks_A_gives_one_half_when_pairs_are_shown_in_both_orders()
    {
        var backend = new ScriptedJudge((_, _) => """{"rationale": "first is fine", "winner": "A"}""");
        var judge = new Judge(new RequestRunner(backend));
        var items = Items(20);
        var responses = items.Select(i => "model " + i.Id).ToList();
        var both = await judge.PairwiseAsync(items, responses, bothOrders: true);
        Assert.All(both, j => Assert.Equal(0.5, j.Preference));
        Assert.Equal(0.5, Judge.Summarize(both).Rate);
        // One random order per item: the model is shown first about half the time, and wins exactly then.
        var one = await judge.PairwiseAsync(items, responses, bothOrders: false);
        var rate = Judge.Summarize(one);
        Assert.InRange(rate.Rate, 0.2, 0.8);
        Assert.True(rate.StandardError > 0);
        Assert.Equal(rate.Rate, (await new Judge(new RequestRunner(backend)).PairwiseAsync(items, responses, false)).Average(j => j.Preference!.Value)); // seeded
    }

    [Fact]
    public async Task Length_control_removes_a_preference_for_longer_answers()
    {
        // The judge prefers whichever answer has more words (a tie at equal length); the model's answers run
        // from 10 words shorter to 29 words longer than the 10-word references, so it "wins" 29.5 of 40.
        var backend = new ScriptedJudge((p, _) =>
        {
            var (a, b) = Answers(p);
            int wa = a.Split(' ').Length, wb = b.Split(' ').Length;
            return wa == wb ? """{"winner": "tie"}""" : $$"""{"winner": "{{(wa > wb ? "A" : "B")}}"}""";
        });
        var reference = string.Join(' ', Enumerable.Repeat("word", 10));
        var items = Items(40).Select(i => i with { Reference = reference }).ToList();
        var responses = items.Select((_, i) => string.Join(' ', Enumerable.Repeat("word", i))).Select(r => r.Length == 0 ? "word" : r).ToList();
        var judgments = await new Judge(new RequestRunner(backend)).PairwiseAsync(items, responses, bothOrders: false);
        var w = Judge.Summarize(judgments);
        Assert.Equal(29.5 / 40, w.Rate, 1e-12);
        Assert.True(w.LengthSlope > 1, $"slope {w.LengthSlope}");
        Assert.InRange(w.LengthControlled, 0.35, 0.65); // at equal length, no preference is left
    }

    [Fact]
    public async Task Unreadable_verdicts_are_asked_again_and_counted()
    {
        // Greedy replies are prose; a sampled retry gives JSON.
        var backend = new ScriptedJudge((_, attempt) => attempt == 0 ? "I think both are good." : "Sure. {\"winner\": \"B\", \"rationale\": \"clearer {really}\"}");
        var judgments = await new Judge(new RequestRunner(backend)).PairwiseAsync(Items(6), Enumerable.Repeat("x", 6).ToList(), bothOrders: false);
        Assert.All(judgments, j => Assert.Equal(1, j.Retries));
        var w = Judge.Summarize(judgments);
        Assert.Equal((6, 0, 6), (w.Judged, w.Unreadable, w.Retries));

        var hopeless = new ScriptedJudge((_, _) => "no idea");
        var none = await new Judge(new RequestRunner(hopeless)).PairwiseAsync(Items(3), ["a", "b", "c"], bothOrders: false);
        Assert.All(none, j => Assert.Null(j.Preference));
        Assert.Equal(3, Judge.Summarize(none).Unreadable);
        Assert.Equal(9, hopeless.Prompts.Count); // the first try and two retries each
    }

    [Theory]
    [InlineData("```json\n{\"rationale\": \"ok\", \"winner\": \"B\"}\n```", "B")]
    [InlineData("Verdict: {\"rationale\": \"both say {x}\", \"winner\": \"tie\"} done", "tie")]
    [InlineData("A", "A")]
    [InlineData("{\"winner\": \"a.\"}", "A")]
    [InlineData("Neither of them.", null)]
    [InlineData("{\"winner\": \"C\"}", null)]
    public void Verdicts_are_read_robustly(string reply, string? expected) => Assert.Equal(expected, Judge.ParseWinner(reply));

    [Fact]
    public void Aspect_scores_need_every_aspect_in_range()
    {
        string[] aspects = ["helpfulness", "clarity"];
        var ok = Judge.ParseAspects("""{"helpfulness": {"rationale": "useful", "score": 4}, "Clarity": {"rationale": "clear", "score": "5"}}""", aspects);
        Assert.Equal(4, ok!.Value.Scores["helpfulness"]);
        Assert.Equal(5, ok.Value.Scores["clarity"]);
        Assert.Equal("useful", ok.Value.Rationales["helpfulness"]);
        Assert.Null(Judge.ParseAspects("""{"helpfulness": {"score": 7}, "clarity": {"score": 3}}""", aspects));
        Assert.Null(Judge.ParseAspects("""{"helpfulness": {"score": 3}}""", aspects));
    }

    [Fact]
    public async Task Aspects_in_just_eval_s_shape_count_NA_apart_and_a_user_template_is_used()
    {
        string[] aspects = ["helpfulness", "factuality"];
        var parsed = Judge.ParseAspects("""{"helpfulness": {"reason": "fine", "score": "4"}, "factuality": {"reason": "nothing to check", "score": "N/A"}}""", aspects);
        Assert.Equal(4, parsed!.Value.Scores["helpfulness"]);
        Assert.False(parsed.Value.Scores.ContainsKey("factuality")); // N/A is not a score, and not unreadable either
        Assert.Equal("fine", parsed.Value.Rationales["helpfulness"]);

        // A template of the user's own, with just-eval's placeholders; the judge answers N/A on factuality for one item.
        var backend = new ScriptedJudge((p, _) => p.Contains("POEM")
            ? """{"helpfulness": {"reason": "r", "score": 5}, "factuality": {"reason": "r", "score": "N/A"}}"""
            : """{"helpfulness": {"reason": "r", "score": 3}, "factuality": {"reason": "r", "score": 2}}""");
        var judge = new Judge(new RequestRunner(backend)) { AspectTemplate = "Query: ${instruction}\nOutput: ${candidate}\nScore it." };
        var judgments = await judge.AspectsAsync(Items(2), ["POEM", "prose"], aspects);
        Assert.All(backend.Prompts, p => Assert.StartsWith("Query: ", p));
        Assert.Equal(["factuality"], judgments[0].NotApplicable);
        Assert.Empty(judgments[1].NotApplicable);
        var means = Judge.SummarizeAspects(judgments, aspects);
        Assert.Equal(4.0, means["helpfulness"].Value);
        Assert.Equal(2.0, means["factuality"].Value); // over the one numeric answer, not counting the N/A as anything
        Assert.Equal(1, means["factuality"].Count);
    }

    [Fact]
    public async Task Judge_prompts_follow_the_instruction_language_and_judgments_are_cached()
    {
        using var tmp = new TempDir();
        var backend = new ScriptedJudge((p, _) => """{"helpfulness": {"rationale": "r", "score": 3}, "clarity": {"rationale": "r", "score": 4}, "factuality": {"rationale": "r", "score": 5}, "depth": {"rationale": "r", "score": 2}, "engagement": {"rationale": "r", "score": 3}}""");
        var items = Items(2, "fr").Concat(Items(2, "es")).ToList();
        using (var cache = new ResponseCache(tmp["c.db"]))
        {
            var judgments = await new Judge(new RequestRunner(backend, cache)).AspectsAsync(items, ["a", "b", "c", "d"], Judge.Aspects);
            Assert.All(judgments, j => Assert.Equal(5, j.Scores!.Count));
            var means = Judge.SummarizeAspects(judgments, Judge.Aspects);
            Assert.Equal(3.0, means["helpfulness"].Value);
            Assert.Equal(2.0, means["depth"].Value);
        }
        Assert.Equal(2, backend.Prompts.Count(p => p.Contains("Demande :")));
        Assert.Equal(2, backend.Prompts.Count(p => p.Contains("Petición:")));
        using (var cache = new ResponseCache(tmp["c.db"]))
            await new Judge(new RequestRunner(backend, cache)).AspectsAsync(items, ["a", "b", "c", "d"], Judge.Aspects);
        Assert.Equal(4, backend.Prompts.Count); // the second run was answered from the cache
    }

    [Fact]
    public void Eval_judge_runs_end_to_end_and_counts_what_a_weak_judge_cannot_answer()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["m"], Presets.Find("tiny", "llama").Config, seed: 4, DType.F32);
        File.WriteAllText(tmp["set.jsonl"], "{\"instruction\": \"Name a colour.\", \"lang\": \"en\"}\n{\"instruction\": \"Nomme une couleur.\", \"lang\": \"fr\"}\n");
        File.WriteAllText(tmp["ref.jsonl"], "{\"output\": \"Blue.\"}\n{\"output\": \"Bleu.\"}\n");
        // The tiny random model judges itself: it never writes a verdict, so every pair is unreadable after its retries.
        var (code, text, err) = CliRunner.Run("", ["eval", "judge", "--model", tmp["m"], "--judge", tmp["m"], "--set", tmp["set.jsonl"], "--reference", tmp["ref.jsonl"],
            "--max-tokens", "8", "--out", tmp["j.json"], "--no-cache"]);
        Assert.True(code == 0, err);
        Assert.Contains("win rate", text);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(tmp["j.json"]))!;
        Assert.Equal("pairwise", json["kind"]!.GetValue<string>());
        Assert.Equal(2, json["summary"]!["unreadable"]!.GetValue<int>());
        Assert.Equal(4, json["summary"]!["retries"]!.GetValue<int>());

        (code, _, err) = CliRunner.Run("", ["eval", "judge", "--model", tmp["m"], "--judge", tmp["m"], "--set", tmp["set.jsonl"], "--kind", "pairwise", "--no-cache"]);
        Assert.Equal(2, code);
        Assert.Contains("needs a reference", err);
    }
}
