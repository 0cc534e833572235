using System.Text.Json.Nodes;
using Attune.Cli;

namespace Attune.Tests.Cli;

/// <summary><c>attune init</c>, <c>convert</c>, <c>generate</c>, <c>score</c>, <c>perplexity</c> end to end, in-process.</summary>
public class ModelCliTests
{
    static (int Code, string Out, string Err) Run(string stdin, params string[] args) => CliRunner.Run(stdin, args);

    [Fact]
    public void Init_convert_generate_score_and_perplexity_work_on_folders_and_gguf()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("", "init", "--arch", "qwen2", "--preset", "tiny", "--seed", "3", "--out", tmp["m"]);
        Assert.True(code == 0, err);
        (code, _, err) = Run("", "convert", "--in", tmp["m"], "--out", tmp["m.gguf"], "--dtype", "q8_0");
        Assert.True(code == 0, err);
        (code, _, err) = Run("", "convert", "--in", tmp["m.gguf"], "--out", tmp["back"], "--dtype", "bf16");
        Assert.True(code == 0, err);
        Assert.True(File.Exists(tmp["back/model.safetensors"]));

        foreach (var model in new[] { tmp["m"], tmp["m.gguf"], tmp["back"] })
        {
            (code, var text, err) = Run("", "generate", "--model", model, "--prompt", "Le musée ouvre", "--max-tokens", "6", "--temperature", "0.7", "--seed", "1");
            Assert.True(code == 0, err);
            Assert.False(string.IsNullOrWhiteSpace(text));
        }
        // Greedy generation is the same from the folder and from an f32 GGUF of it.
        (code, _, err) = Run("", "convert", "--in", tmp["m"], "--out", tmp["f32.gguf"], "--dtype", "f32");
        Assert.True(code == 0, err);
        var a = Run("", "generate", "--model", tmp["m"], "--prompt", "Hello", "--max-tokens", "8").Out;
        var b = Run("", "generate", "--model", tmp["f32.gguf"], "--prompt", "Hello", "--max-tokens", "8").Out;
        Assert.Equal(a, b);

        (code, var scored, err) = Run("{\"context\": \"The capital of France is\", \"continuation\": \" Paris\"}\n{\"continuation\": \"Hola\"}\n",
            "score", "--model", tmp["m"]);
        Assert.True(code == 0, err);
        var lines = scored.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(2, lines.Count);
        Assert.True(lines[0]["logprob"]!.GetValue<double>() < 0);
        Assert.NotNull(lines[0]["greedy"]);

        File.WriteAllText(tmp["text.txt"], "Una buena pregunta suele ser más útil que una respuesta rápida.");
        (code, var ppl, err) = Run("", "perplexity", "--model", tmp["m.gguf"], "--file", tmp["text.txt"]);
        Assert.True(code == 0, err);
        Assert.True(JsonNode.Parse(ppl)!["perplexity"]!.GetValue<double>() > 1);
    }

    [Theory]
    [InlineData("generate --model {m} --prompt hi --temperature -1", "--temperature")]
    [InlineData("generate --model {m} --prompt hi --top-p 2", "--top-p")]
    [InlineData("generate --model {m} --prompt hi --mode fancy", "--mode")]
    [InlineData("init --preset huge --out {tmp}/x", "unknown preset")]
    [InlineData("init --preset tiny --dtype q4 --out {tmp}/x", "--dtype")]
    [InlineData("convert --in {m} --out {tmp}/x.bin", "*.gguf")]
    [InlineData("convert --in {m} --out {tmp}/y.gguf --dtype q4_k", "--dtype")]
    [InlineData("perplexity --model {m} --file {tmp}/missing.txt", "file not found")]
    [InlineData("generate --model {tmp}/nothing --prompt hi", "folder not found")]
    public void Bad_options_give_one_line_and_exit_2(string command, string expected)
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("", "init", "--preset", "tiny", "--out", tmp["m"]).Code);
        var args = command.Replace("{m}", tmp["m"]).Replace("{tmp}", tmp.Path).Split(' ');
        var (code, _, err) = Run("", args);
        Assert.Equal(Program.BadInput, code);
        Assert.Contains(expected, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Score_rejects_records_without_a_continuation()
    {
        using var tmp = new TempDir();
        Run("", "init", "--preset", "tiny", "--out", tmp["m"]);
        var (code, _, err) = Run("{\"context\": \"a\"}\n", "score", "--model", tmp["m"]);
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("line 1", err);
    }
}
