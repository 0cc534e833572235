using System.Text.Json.Nodes;
using Attune.Experiments;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Evaluation;
using Attune.Tests.Server;
using Microsoft.AspNetCore.Http;

namespace Attune.Tests.Cli;

public class SweepCliTests
{
    /// <summary>
    /// An OpenAI-compatible judge over HTTP: the length-loving scripted judge answering /v1/chat/completions.
    /// </summary>
    static Task<ScriptedServer> JudgeServer(ScriptedJudge judge) => ScriptedServer.Start(async ctx =>
    {
        var body = JsonNode.Parse(await new StreamReader(ctx.Request.Body).ReadToEndAsync())!;
        var prompt = body["messages"]!.AsArray()[^1]!["content"]!.ToString();
        double temperature = body["temperature"]?.GetValue<double>() ?? 1;
        var reply = judge.Reply(prompt, temperature == 0 ? 0 : 1);
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(new JsonObject
        {
            ["id"] = "c", ["object"] = "chat.completion", ["created"] = 0, ["model"] = "m",
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = reply }, ["finish_reason"] = "stop",
            }),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 1, ["completion_tokens"] = 1, ["total_tokens"] = 2 },
        }.ToJsonString());
    });

    [Fact]
    public async Task Sweep_with_a_served_judge_stores_judge_cells_that_the_report_draws()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["instruct"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        var judge = ScriptedJudge.LengthLoving();
        await using var server = await JudgeServer(judge);
        string[] args = ["sweep", "--base", tmp["base"], "--instruct", tmp["instruct"], "--lambdas", "0,1", "--langs", "es",
            "--icl", "none", "--if", "none", "--judge", server.Spec, "--judge-limit", "2", "--max-tokens", "8", "--urial-shots", "1", "--store", tmp["runs.db"]];
        var (code, _, err) = await Task.Run(() => CliRunner.Run("", args));
        Assert.True(code == 0, err);
        Assert.Contains("3 cells (3 arms × 1 suites × 1 languages)", err);
        Assert.Contains("judge es", err); // the progress line names the cell
        // Per arm, two answers, each judged pairwise and on aspects — a question one arm already asked (the tiny random
        // models give the same answers) is answered from the run's cache, not asked again.
        Assert.Equal(judge.Prompts.Distinct().Count(), judge.Prompts.Count);
        Assert.InRange(judge.Prompts.Count, 2 * 2, 3 * 2 * 2);
        int asked = judge.Prompts.Count;
        Assert.All(judge.Prompts, p => Assert.Contains("Petición:", p));
        using (var store = new ResultsStore(tmp["runs.db"]))
        {
            var cells = store.Cells();
            Assert.Equal(3, cells.Count);
            Assert.All(cells, c => Assert.Contains(c.Aggregates, a => a.Name == "judge" && double.IsFinite(a.Value)));
            Assert.All(cells, c => Assert.Equal("remote:" + server.Spec, c.Settings["judge_identity"]!.ToString()));
        }

        // Rerun: nothing left, the judge is not even asked.
        (code, _, err) = await Task.Run(() => CliRunner.Run("", args));
        Assert.True(code == 0, err);
        Assert.Contains("0 cells run, 3 resumed", err);
        Assert.Equal(asked, judge.Prompts.Count);

        (code, _, err) = CliRunner.Run("", "report", tmp["runs.db"], "--format", "md", "--out", tmp["report.md"]);
        Assert.True(code == 0, err);
        Assert.Contains("judge win rate", File.ReadAllText(tmp["report.md"]));
    }

    [Fact]
    public void A_judge_set_without_references_is_refused_naming_the_instruction()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        File.WriteAllText(tmp["set.jsonl"], "{\"instruction\": \"Di hola.\", \"lang\": \"es\", \"id\": \"h1\"}\n");
        var (code, _, err) = CliRunner.Run("", "sweep", "--base", tmp["base"], "--instruct", tmp["base"], "--lambdas", "0", "--langs", "es",
            "--icl", "none", "--if", "none", "--judge", "http://127.0.0.1:9/v1#m", "--judge-set", tmp["set.jsonl"], "--store", tmp["runs.db"]);
        Assert.NotEqual(0, code);
        Assert.Contains("instruction h1", err);
        Assert.Contains("reference", err);
        Assert.DoesNotContain("   at ", err);
    }
}
