using System.Text.Json.Nodes;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Shift;
using Attune.Modeling;
using Attune.Tests.Cli;

namespace Attune.Tests.Evaluation;

public class TokenShiftTests
{
    static string TinyModel(TempDir tmp, string name, ulong seed)
    {
        ModelInitializer.Write(tmp[name], Presets.Find("tiny", "llama").Config, seed: seed, Attune.Tensors.DType.F32);
        return tmp[name];
    }

    [Fact]
    public void Answer_tokens_of_known_rank_under_the_base_give_the_expected_shares()
    {
        using var tmp = new TempDir();
        using var model = LanguageModel.Load(TinyModel(tmp, "base", 3));
        var prompt = model.Tokenizer.Encode("Name three colours.", addSpecialTokens: true);
        // An "aligned" answer built by hand: at each step the base model's 1st, 2nd or 5th choice, in turn.
        int[] wanted = [1, 2, 5, 1, 2, 5, 1, 2, 5, 5, 5, 1];
        var answer = new List<int>();
        foreach (var rank in wanted)
            answer.Add(model.TopNext([.. prompt, .. answer], 5)[rank - 1].Token);
        var ranks = model.Ranks(prompt, answer);
        Assert.Equal(wanted, ranks.Select(r => r.Rank));
        Assert.Equal(model.TopNext(prompt, 1)[0].Token, ranks[0].Top); // what the base would have said instead

        var item = new JudgeItem("1", "Name three colours.", "en", null);
        var shifted = new ShiftedAnswer(item, model.Tokenizer.Decode(answer), answer, ranks.Select(r => r.Rank).ToList(), ranks.Select(r => r.Top).ToList());
        var summary = TokenShift.Summarize("en", [shifted], model.Tokenizer);
        Assert.Equal(4.0 / 12, summary.Unshifted.Value, 1e-12); // ranks 1
        Assert.Equal(3.0 / 12, summary.Marginal.Value, 1e-12);  // ranks 2
        Assert.Equal(5.0 / 12, summary.Shifted.Value, 1e-12);   // ranks 5
        Assert.Equal(12, summary.Tokens);
        // The profile: positions 1–5 hold ranks 1, 2, 5, 1, 2 (one shifted of five); 6–10 hold 5, 1, 2, 5, 5.
        Assert.Equal(("1–5", 1 / 5.0, 5), summary.Profile[0]);
        Assert.Equal(("6–10", 3 / 5.0, 5), summary.Profile[1]);
        Assert.Equal(5, summary.TopShifted.Sum(t => t.Count));
    }

    [Fact]
    public void A_base_model_against_itself_is_never_shifted()
    {
        using var tmp = new TempDir();
        var path = TinyModel(tmp, "base", 3);
        var (code, text, err) = CliRunner.Run("", "shift", "--base", path, "--aligned", path, "--limit", "2", "--max-tokens", "12", "--langs", "en,es", "--out", tmp["shift.json"]);
        Assert.True(code == 0, err);
        Assert.Contains("unshifted", text);
        var json = JsonNode.Parse(File.ReadAllText(tmp["shift.json"]))!;
        Assert.Equal(["en", "es"], json["summary"]!.AsArray().Select(s => (string)s!["lang"]!));
        Assert.All(json["summary"]!.AsArray(), s =>
        {
            Assert.Equal(1.0, (double)s!["unshifted"]!["value"]!);
            Assert.Equal(0.0, (double)s["shifted"]!["value"]!);
        });
        Assert.All(json["items"]!.AsArray().SelectMany(i => i!["tokens"]!.AsArray()), t => Assert.Equal(1, (int)t!["rank"]!));
    }

    [Fact]
    public void Models_that_read_text_into_different_tokens_are_refused_in_one_line()
    {
        using var tmp = new TempDir();
        var a = TinyModel(tmp, "a", 3);
        var b = TinyModel(tmp, "b", 4);
        // Another tokenizer over the same vocabulary: half its merges gone.
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(b, "tokenizer.json")))!;
        var merges = tokenizer["model"]!["merges"]!.AsArray();
        while (merges.Count > 20) merges.RemoveAt(merges.Count - 1);
        File.WriteAllText(Path.Combine(b, "tokenizer.json"), tokenizer.ToJsonString());
        var (code, _, err) = CliRunner.Run("", "shift", "--base", a, "--aligned", b, "--limit", "1");
        Assert.Equal(2, code);
        Assert.Contains("do not share a tokenizer", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
