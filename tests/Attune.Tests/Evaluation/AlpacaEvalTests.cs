using System.Globalization;
using System.Text.Json.Nodes;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Metrics;
using Attune.Tests.Cli;

namespace Attune.Tests.Evaluation;

/// <summary>
/// AlpacaEval 2.0's win rates from its own annotations.json files (../shared/peers/alpaca-eval, unchanged), against its
/// published leaderboard and against length-controlled figures computed by AlpacaEval's glm_winrate steps.
/// </summary>
public class AlpacaEvalTests
{
    static readonly string Peer = Path.Combine(Repo.Root, "..", "shared", "peers", "alpaca-eval");

    public static TheoryData<string> Models => new() { "alpaca-7b", "alpaca-7b_concise", "FuseChat-Llama-3.2-1B-Instruct" };

    static Dictionary<string, string> LeaderboardRow(string model)
    {
        var lines = File.ReadAllLines(Path.Combine(Peer, "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"));
        var header = lines[0].Split(',');
        var row = lines.Skip(1).Select(l => l.Split(',')).Single(r => r[0] == model);
        return header.Zip(row).ToDictionary(p => p.First, p => p.Second);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void The_leaderboard_s_raw_win_rates_are_reproduced_from_the_annotations(string model)
    {
        var m = AlpacaEvalFiles.Metrics(AlpacaEvalFiles.ReadAnnotations(Path.Combine(Peer, "results", model, "annotations.json")));
        var row = LeaderboardRow(model);
        double Num(string column) => double.Parse(row[column], CultureInfo.InvariantCulture);
        Assert.Equal(Num("win_rate"), m.WinRate, 1e-6);
        Assert.Equal(Num("standard_error"), m.StandardError, 1e-6);
        Assert.Equal(Num("discrete_win_rate"), m.DiscreteWinRate, 1e-6);
        Assert.Equal((int)Num("n_wins"), m.Wins);
        Assert.Equal((int)Num("n_wins_base"), m.WinsBase);
        Assert.Equal((int)Num("n_draws"), m.Draws);
        Assert.Equal((int)Num("n_total"), m.Total);
    }

    /// <summary>
    /// length_controlled_minimal as AlpacaEval's glm_winrate.py computes it, run here on these files with Debian's
    /// numpy 1.24, pandas 1.5, patsy 0.5 and scikit-learn 1.2 (whose LogisticRegressionCV cannot route the scorer's
    /// weights, so its cross-validation loop was written out with the same LogisticRegression fits, GroupKFold folds
    /// and continuous log-loss). Only the numbers are kept here.
    /// </summary>
    [Theory]
    [InlineData("alpaca-7b", 19.747583434528842)]
    [InlineData("alpaca-7b_concise", 13.032200712274955)]
    [InlineData("FuseChat-Llama-3.2-1B-Instruct", 26.03218468462475)]
    public void The_length_controlled_win_rate_matches_AlpacaEval_s_minimal_model(string model, double expected)
    {
        var m = AlpacaEvalFiles.Metrics(AlpacaEvalFiles.ReadAnnotations(Path.Combine(Peer, "results", model, "annotations.json")));
        Assert.InRange(m.LengthControlled, expected - 0.5, expected + 0.5);
        Assert.Equal(0, m.LengthControlledStandardError);
    }

    /// <summary>
    /// length_controlled_noreg (the model with each instruction's difficulty) with a made-up difficulty, (37·i mod 100) / 25 − 2,
    /// since the real one lives on the Hub: the numbers come from glm_winrate's steps run with Debian's scikit-learn as above.
    /// </summary>
    [Theory]
    [InlineData("alpaca-7b", 19.390294942846133, 0.08654359043526319)]
    [InlineData("alpaca-7b_concise", 12.921707168142909, 0.03546609066421337)]
    [InlineData("FuseChat-Llama-3.2-1B-Instruct", 26.037876279879658, 0.03738976073619529)]
    public void With_each_instruction_s_difficulty_the_difficulty_term_joins_the_model(string model, double expected, double expectedSe)
    {
        using var tmp = new TempDir();
        var annotations = AlpacaEvalFiles.ReadAnnotations(Path.Combine(Peer, "results", model, "annotations.json"));
        File.WriteAllLines(tmp["difficulty.csv"], ["index,instruction_difficulty", .. annotations.Select((_, i) => $"{i},{((i * 37) % 100) / 25.0 - 2.0:R}")]);
        var (code, _, err) = CliRunner.Run("", "eval", "judge", "--annotations", Path.Combine(Peer, "results", model, "annotations.json"),
            "--instruction-difficulty", tmp["difficulty.csv"], "--out", tmp["m.json"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(File.ReadAllText(tmp["m.json"]))!;
        Assert.Equal("length_controlled_noreg", (string)json["length_controlled_method"]!);
        Assert.InRange((double)json["length_controlled_winrate"]!, expected - 0.5, expected + 0.5);
        Assert.InRange((double)json["lc_standard_error"]!, expectedSe * 0.8, expectedSe * 1.2);

        File.WriteAllLines(tmp["short.csv"], ["index,instruction_difficulty", "0,1.5"]);
        (code, _, err) = CliRunner.Run("", "eval", "judge", "--annotations", Path.Combine(Peer, "results", model, "annotations.json"), "--instruction-difficulty", tmp["short.csv"]);
        Assert.Equal(2, code);
        Assert.Contains("1 difficulties for", err);
    }

    [Fact]
    public void Folds_are_dealt_as_scikit_learn_s_GroupKFold_deals_equal_groups()
    {
        // numpy 1.24: np.argsort(np.full(804, 2))[::-1][:12] and GroupKFold(5)'s fold of groups 0..9.
        Assert.Equal([803, 263, 273, 272, 271, 270, 269, 268, 267, 266, 265, 264], AlpacaEvalWinRate.ArgsortOfEqualKeys(804).Reverse().Take(12));
        Assert.Equal([3, 0, 4, 3, 2, 1, 0, 4, 3, 2], AlpacaEvalWinRate.GroupFolds(804).Take(10));
        // Few enough keys for insertion sort alone: the order is left as it is.
        Assert.Equal(Enumerable.Range(0, 17), AlpacaEvalWinRate.ArgsortOfEqualKeys(17));
    }

    [Fact]
    public void The_L1_fit_reaches_scikit_learn_s_coefficients()
    {
        // scikit-learn 1.2, LogisticRegression(penalty="l1", solver="liblinear", fit_intercept=False, C) on the duplicated
        // rows of alpaca-7b_concise (liblinear stops at its tolerance, hence 1e-2).
        var a = AlpacaEvalFiles.ReadAnnotations(Path.Combine(Peer, "results", "alpaca-7b_concise", "annotations.json"));
        var d = a.Select(x => (double)(x.Output1.EnumerateRunes().Count() - x.Output2.EnumerateRunes().Count())).ToArray();
        double mean = d.Average(), sd = Math.Sqrt(d.Sum(v => (v - mean) * (v - mean)) / (d.Length - 1));
        var x = d.Select(v => Math.Tanh(v / sd)).ToList();
        var y = a.Select(v => v.Preference!.Value - 1).ToList();
        var (w1, w2) = AlpacaEvalWinRate.FitL1(x, y, 2.782559402207126);
        Assert.Equal(-3.844317652514014, w1, 1e-2);
        Assert.Equal(-1.8981146543369778, w2, 1e-2);
        // A strong penalty zeroes the length weight, as liblinear's does.
        var (s1, s2) = AlpacaEvalWinRate.FitL1(x, y, 0.005994842503189409);
        Assert.Equal(0, s1);
        Assert.Equal(-1.22311981866763, s2, 1e-3);
    }

    [Fact]
    public void Eval_judge_computes_the_leaderboard_s_columns_from_annotations_alone()
    {
        using var tmp = new TempDir();
        var (code, text, err) = CliRunner.Run("", "eval", "judge", "--annotations", Path.Combine(Peer, "results", "alpaca-7b", "annotations.json"), "--out", tmp["m.json"]);
        Assert.True(code == 0, err);
        Assert.Contains("805", text);
        var json = JsonNode.Parse(File.ReadAllText(tmp["m.json"]))!;
        Assert.Equal("alpaca-7b", (string)json["model"]!);
        Assert.Equal(2.591450540223603, (double)json["win_rate"]!, 1e-6);
        Assert.Equal(805, (int)json["n_total"]!);
        Assert.NotNull(json["length_controlled_winrate"]);
        Assert.NotNull(json["lc_standard_error"]);

        File.WriteAllText(tmp["bad.json"], """[{"instruction": "x", "output_1": "a", "output_2": "b", "preference": "high"}]""");
        (code, _, err) = CliRunner.Run("", "eval", "judge", "--annotations", tmp["bad.json"]);
        Assert.Equal(2, code);
        Assert.Contains("annotation 0: preference", err);
        Assert.Single(err.Trim().Split('\n'));
        (code, _, err) = CliRunner.Run("", "eval", "judge", "--annotations", tmp["bad.json"], "--judge", "http://localhost:1/v1#j");
        Assert.Equal(2, code);
        Assert.Contains("leave out --model and --judge", err);
    }

    [Fact]
    public void AlpacaEval_s_sets_and_baselines_come_in_and_its_model_outputs_and_annotations_go_out()
    {
        using var tmp = new TempDir();
        Attune.Modeling.ModelInitializer.Write(tmp["m"], Attune.Modeling.Presets.Find("tiny", "llama").Config, seed: 4, Attune.Tensors.DType.F32);
        File.WriteAllText(tmp["set.json"], """[{"instruction": "Name a colour.", "dataset": "helpful_base"}, {"instruction": "Name a fruit.", "dataset": "koala"}]""");
        // The baseline's model_outputs.json, in another order: outputs are matched by instruction, as AlpacaEval matches them.
        File.WriteAllText(tmp["gpt4_turbo.json"], """[{"instruction": "Name a fruit.", "output": "Apple.", "generator": "gpt4_turbo"}, {"instruction": "Name a colour.", "output": "Blue.", "generator": "gpt4_turbo"}]""");
        var (code, _, err) = CliRunner.Run("", "eval", "judge", "--model", tmp["m"], "--judge", tmp["m"], "--set", tmp["set.json"], "--reference", tmp["gpt4_turbo.json"],
            "--max-tokens", "4", "--no-cache", "--model-outputs", tmp["model_outputs.json"], "--annotations-out", tmp["annotations.json"]);
        Assert.True(code == 0, err);
        var outputs = JsonNode.Parse(File.ReadAllText(tmp["model_outputs.json"]))!.AsArray();
        Assert.Equal(["Name a colour.", "Name a fruit."], outputs.Select(o => (string)o!["instruction"]!));
        Assert.Equal(["helpful_base", "koala"], outputs.Select(o => (string)o!["dataset"]!));
        Assert.All(outputs, o => Assert.NotNull((string?)o!["output"]));
        var annotations = JsonNode.Parse(File.ReadAllText(tmp["annotations.json"]))!.AsArray();
        Assert.Equal("Blue.", (string)annotations[0]!["output_1"]!);
        Assert.Equal("gpt4_turbo", (string)annotations[0]!["generator_1"]!);
        Assert.Equal((string)outputs[0]!["output"]!, (string)annotations[0]!["output_2"]!);
        // The tiny model is no judge: every preference is unreadable, written as null, and read back as such.
        Assert.All(annotations, a => Assert.Null(a!["preference"]));
        var back = AlpacaEvalFiles.ReadAnnotations(tmp["annotations.json"]);
        Assert.Equal(0, AlpacaEvalFiles.Metrics(back).Total);
        // The model's outputs serve as the next run's baseline.
        Assert.Equal(2, Judge.WithReferences(Judge.LoadSet(tmp["set.json"]), tmp["model_outputs.json"]).Count);
        File.WriteAllText(tmp["short.json"], """[{"instruction": "Name a fruit.", "output": "Apple."}]""");
        var e = Assert.Throws<AttuneException>(() => Judge.WithReferences(Judge.LoadSet(tmp["set.json"]), tmp["short.json"]));
        Assert.Contains("no output for the instruction of item 0", e.Message);
    }

    /// <summary>An annotator configuration in AlpacaEval's format, with a prompt of the test's own.</summary>
    static void WriteEvaluator(TempDir tmp, string parser)
    {
        Directory.CreateDirectory(tmp["configs/my_judge"]);
        File.WriteAllText(tmp["configs/my_judge/pick.txt"], """
            <|im_start|>system
            You compare two answers.
            <|im_end|>
            <|im_start|>user
            Request: {instruction}
            Answer m: {output_1}
            Answer M: {output_2}
            Which is better, m or M?
            <|im_end|>
            """);
        File.WriteAllText(tmp["configs/my_judge/configs.yaml"], $$"""
            my_judge:
              prompt_template: "my_judge/pick.txt"
              fn_completions: "openai_completions"
              completions_kwargs:
                model_name: "judge"
                max_tokens: 1
                temperature: 1
                logprobs: true
                top_logprobs: 5
            {{parser}}
            """);
    }

    [Fact]
    public async Task A_served_judge_s_top_logprobs_give_the_preference_AlpacaEval_s_parser_gives()
    {
        using var tmp = new TempDir();
        WriteEvaluator(tmp, """
              fn_completion_parser: "logprob_parser"
              completion_parser_kwargs:
                numerator_token: "m"
                denominator_tokens: ["m", "M"]
                is_binarize: false
            """);
        // The judge leans towards whichever answer is "Blue." (the reference here): log p(m) and log p(M) by position.
        var seen = new List<JsonNode>();
        await using var server = await Attune.Tests.Server.ScriptedServer.Start(async ctx =>
        {
            var body = JsonNode.Parse(await new StreamReader(ctx.Request.Body).ReadToEndAsync())!;
            lock (seen) seen.Add(body);
            var user = body["messages"]!.AsArray().Last(m => (string)m!["role"]! == "user")!["content"]!.ToString();
            bool referenceFirst = user.Contains("Answer m: Blue.");
            var (m, M) = referenceFirst ? (-0.25, -1.6) : (-2.3, -0.11);
            ctx.Response.ContentType = "application/json";
            await Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(ctx.Response, new JsonObject
            {
                ["id"] = "c", ["object"] = "chat.completion", ["created"] = 0, ["model"] = "judge",
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0, ["finish_reason"] = "length",
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = referenceFirst ? "m" : "M" },
                    ["logprobs"] = new JsonObject { ["content"] = new JsonArray(new JsonObject
                    {
                        ["token"] = referenceFirst ? "m" : "M", ["logprob"] = Math.Max(m, M), ["bytes"] = new JsonArray(),
                        ["top_logprobs"] = new JsonArray(
                            new JsonObject { ["token"] = "m", ["logprob"] = m, ["bytes"] = new JsonArray() },
                            new JsonObject { ["token"] = "M", ["logprob"] = M, ["bytes"] = new JsonArray() },
                            new JsonObject { ["token"] = "The", ["logprob"] = -9.0, ["bytes"] = new JsonArray() }),
                    }) },
                }),
                ["usage"] = new JsonObject { ["prompt_tokens"] = 1, ["completion_tokens"] = 1, ["total_tokens"] = 2 },
            }.ToJsonString());
        });
        Attune.Modeling.ModelInitializer.Write(tmp["m"], Attune.Modeling.Presets.Find("tiny", "llama").Config, seed: 4, Attune.Tensors.DType.F32);
        File.WriteAllText(tmp["set.jsonl"], string.Concat(Enumerable.Range(0, 8).Select(i => $$"""{"instruction": "Name colour {{i}}."}""" + "\n")));
        File.WriteAllText(tmp["ref.jsonl"], string.Concat(Enumerable.Range(0, 8).Select(_ => """{"output": "Blue."}""" + "\n")));
        var (code, _, err) = await Task.Run(() => CliRunner.Run("", "eval", "judge", "--model", tmp["m"], "--judge", server.Spec, "--set", tmp["set.jsonl"], "--reference", tmp["ref.jsonl"],
            "--evaluator", tmp["configs/my_judge/configs.yaml"], "--max-tokens", "4", "--no-cache", "--out", tmp["j.json"], "--annotations-out", tmp["annotations.json"]));
        Assert.True(code == 0, err);
        // What AlpacaEval's logprob_parser computes: 2 − exp(log p(m) − logsumexp(log p(m), log p(M))), in the order shown.
        static double Reference(double m, double M) => 2 - Math.Exp(m - Math.Log(Math.Exp(m) + Math.Exp(M)));
        var annotations = JsonNode.Parse(File.ReadAllText(tmp["annotations.json"]))!.AsArray();
        Assert.Equal(8, annotations.Count);
        var preferences = annotations.Select(a => (double)a!["preference"]!).ToList();
        // Shown with the reference first, the model (output_2 in AlpacaEval's file) gets p; shown second, the switch is undone: 3 − p.
        Assert.All(preferences, p => Assert.True(Math.Abs(p - Reference(-0.25, -1.6)) < 1e-12 || Math.Abs(p - (3 - Reference(-2.3, -0.11))) < 1e-12, $"preference {p}"));
        Assert.Contains(preferences, p => Math.Abs(p - Reference(-0.25, -1.6)) < 1e-12);
        Assert.Contains(preferences, p => Math.Abs(p - (3 - Reference(-2.3, -0.11))) < 1e-12);
        Assert.Equal("my_judge", (string)annotations[0]!["annotator"]!);
        // The request asked for the first token's log-probabilities, with the configured settings and the test's own prompt.
        Assert.All(seen, b => Assert.True((bool)b["logprobs"]! && (int)b["top_logprobs"]! == 5 && (int)(b["max_completion_tokens"] ?? b["max_tokens"])! == 1, b.ToJsonString()));
        Assert.All(seen, b => Assert.Equal("You compare two answers.", (string)b["messages"]![0]!["content"]!));
        var summary = JsonNode.Parse(File.ReadAllText(tmp["j.json"]))!["summary"]!;
        Assert.Equal(preferences.Average() - 1, (double)summary["win_rate"]!, 1e-9);
    }

    [Fact]
    public void A_regex_parsed_reply_and_unreadable_configurations()
    {
        using var tmp = new TempDir();
        WriteEvaluator(tmp, """
              fn_completion_parser: "regex_parser"
              completion_parser_kwargs:
                outputs_to_match:
                  1: '(?:^|\n) ?Output \(a\)'
                  2: '(?:^|\n) ?Output \(b\)'
            """);
        var e = AlpacaEvaluator.Load(tmp["configs/my_judge/configs.yaml"]);
        Assert.Equal(1.0, e.Parse(new Attune.Evaluation.GeneratedText("Output (a)", Attune.Modeling.FinishReason.Stop, 2)));
        Assert.Equal(2.0, e.Parse(new Attune.Evaluation.GeneratedText("Output (b) is better than Output (a)", Attune.Modeling.FinishReason.Stop, 2)));
        Assert.Null(e.Parse(new Attune.Evaluation.GeneratedText("Neither.", Attune.Modeling.FinishReason.Stop, 2)));
        Assert.Equal(["system", "user"], e.Prompt("i", "a", "b").Select(m => m.Role));
        Assert.Contains("Answer M: b", e.Prompt("i", "a", "b")[1].Content);

        WriteEvaluator(tmp, """
              fn_completion_parser: "pipeline_meta_parser"
            """);
        var bad = Assert.Throws<AttuneException>(() => AlpacaEvaluator.Load(tmp["configs/my_judge/configs.yaml"]));
        Assert.Contains("pipeline_meta_parser", bad.Message);
    }
}
