using System.Text.Json.Nodes;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Tests.Cli;

/// <summary><c>attune eval icl</c> end to end on a tiny model, in-process.</summary>
[Collection("Simd")]
public class EvalCliTests
{
    static void WriteTask(TempDir tmp)
    {
        var rows = new[] { ("The soup was lovely", "positive"), ("The room was cold and dirty", "negative"), ("A wonderful trip", "positive"),
            ("The train was late again", "negative"), ("Great food, kind staff", "positive"), ("Nothing worked", "negative") };
        File.WriteAllLines(tmp["reviews.jsonl"], rows.Select(r => new JsonObject { ["text"] = r.Item1, ["label"] = r.Item2 }.ToJsonString()));
        File.WriteAllText(tmp["task.yaml"], """
            task: reviews
            lang: en
            dataset_path: reviews.jsonl
            output_type: multiple_choice
            doc_to_text: "Review: {{text}}\nSentiment:"
            doc_to_target: label
            doc_to_choice: ["negative", "positive"]
            num_fewshot: 3
            """);
    }

    [Fact]
    public void Eval_icl_writes_results_and_a_rerun_is_answered_from_the_cache()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["m"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        WriteTask(tmp);
        string[] args = ["eval", "icl", "--model", tmp["m"], "--tasks", tmp["task.yaml"], "--out", tmp["r.json"], "--cache", tmp["cache.db"]];
        var (code, text, err) = CliRunner.Run("", args);
        Assert.True(code == 0, err);
        Assert.Contains("reviews", text);
        Assert.Contains("acc_norm", text);
        Assert.Contains("12 computed, 0 from the cache", err);
        var json = JsonNode.Parse(File.ReadAllText(tmp["r.json"]))!;
        var acc = json["summary"]!.AsArray().First(s => s!["metric"]!.GetValue<string>() == "acc")!;
        Assert.Equal(6, acc["n"]!.GetValue<int>());
        Assert.InRange(acc["value"]!.GetValue<double>(), 0, 1);
        var item = json["tasks"]![0]!["items"]![0]!;
        Assert.Equal(2, item["logprobs"]!.AsArray().Count);
        Assert.EndsWith("Review: The soup was lovely\nSentiment:", item["prompt"]!.GetValue<string>());

        (code, var again, err) = CliRunner.Run("", args);
        Assert.True(code == 0, err);
        Assert.Contains("0 computed, 12 from the cache", err);
        Assert.Equal(text, again);

        // --langs leaves out tasks in other languages.
        (code, _, err) = CliRunner.Run("", ["eval", "icl", "--model", tmp["m"], "--tasks", tmp["task.yaml"], "--langs", "fr", "--no-cache"]);
        Assert.Equal(2, code);
        Assert.Contains("no task left", err);
    }

    [Theory]
    [InlineData("chat")]
    [InlineData("urial")]
    public void Eval_if_runs_the_built_in_suite_and_reports_per_language(string mode)
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["m"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        string[] args = ["eval", "if", "--model", tmp["m"], "--mode", mode, "--langs", "fr,es", "--limit", "4", "--max-tokens", "24", "--out", tmp["if.json"], "--cache", tmp["c.db"]];
        var (code, text, err) = CliRunner.Run("", args);
        Assert.True(code == 0, err);
        Assert.Contains("prompt strict", text);
        Assert.Contains("8 computed", err);
        var json = JsonNode.Parse(File.ReadAllText(tmp["if.json"]))!;
        Assert.Equal(["fr", "es"], json["summary"]!.AsArray().Select(s => s!["lang"]!.GetValue<string>()));
        Assert.Equal(8, json["items"]!.AsArray().Count);
        var item = json["items"]![0]!;
        Assert.Equal(item["instruction_id_list"]!.AsArray().Count, item["follow_strict"]!.AsArray().Count);
        (code, _, err) = CliRunner.Run("", args);
        Assert.True(code == 0, err);
        Assert.Contains("0 computed, 8 from the cache", err);
    }

    [Fact]
    public void Eval_icl_runs_the_whole_built_in_suite()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["m"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        var (code, text, err) = CliRunner.Run("", ["eval", "icl", "--model", tmp["m"], "--tasks", "builtin:all", "--limit", "2", "--out", tmp["r.json"], "--no-cache"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(File.ReadAllText(tmp["r.json"]))!;
        var tasks = json["tasks"]!.AsArray().Select(t => t!["task"]!.GetValue<string>()).ToList();
        Assert.Equal(27, tasks.Count);
        Assert.Contains("translation_fr", tasks);
        Assert.Contains("chrf", text);
        Assert.All(json["tasks"]!.AsArray(), t => Assert.Equal(5, t!["shots"]!.GetValue<int>()));
    }

    [Fact]
    public void Eval_icl_refuses_bad_options_in_one_line()
    {
        using var tmp = new TempDir();
        WriteTask(tmp);
        var (code, _, err) = CliRunner.Run("", ["eval", "icl", "--model", "/nonexistent", "--tasks", tmp["missing.yaml"]]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains("missing.yaml", err);
        (code, _, err) = CliRunner.Run("", ["eval", "icl", "--model", "/nonexistent", "--tasks", tmp["task.yaml"], "--langs", "de"]);
        Assert.Equal(2, code);
        Assert.Contains("--langs", err);
    }
}
