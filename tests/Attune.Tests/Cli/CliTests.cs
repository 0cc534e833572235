using System.Text.Json.Nodes;
using Attune.Cli;

namespace Attune.Tests.Cli;

/// <summary>The <c>attune</c> command, run in-process with captured streams.</summary>
public class CliTests
{
    static (int Code, string Out, string Err) Run(string stdin, params string[] args) => CliRunner.Run(stdin, args);

    [Fact]
    public void Help_lists_every_command_with_a_description()
    {
        var (code, output, _) = Run("", "--help");
        Assert.Equal(Program.Success, code);
        Assert.Contains("attune", output);
        foreach (var cmd in Program.Build().Subcommands)
        {
            Assert.Contains(cmd.Name, output);
            Assert.False(string.IsNullOrWhiteSpace(cmd.Description), cmd.Name);
            var (c, help, _) = Run("", cmd.Name, "--help");
            Assert.Equal(Program.Success, c);
            Assert.Contains("Usage:", help);
        }
    }

    [Fact]
    public void Usage_errors_exit_with_1()
    {
        Assert.Equal(Program.UsageError, Run("", "tokenize").Code);           // missing --tokenizer
        Assert.Equal(Program.UsageError, Run("", "no-such-command").Code);
        Assert.Equal(Program.UsageError, Run("", "tokenize", "--tokenizer", "x", "--bogus").Code);
    }

    [Fact]
    public void Tokenize_and_detokenize_round_trip_jsonl()
    {
        var dir = Repo.NpmTokenizer("qwen3");
        var input = "{\"text\": \"Bonjour, ça va ? ¿Qué tal?\"}\n\n{\"text\": \"<|im_start|>user\\nhi<|im_end|>\"}\n";
        var (code, output, err) = Run(input, "tokenize", "--tokenizer", dir);
        Assert.True(code == 0, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var second = JsonNode.Parse(lines[1])!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        Assert.Equal(151644, second[0]); // <|im_start|> recognised as one token

        var (code2, text, err2) = Run(output, "detokenize", "--tokenizer", Path.Combine(dir, "tokenizer.json"));
        Assert.True(code2 == 0, err2);
        var texts = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToArray();
        Assert.Equal(["Bonjour, ça va ? ¿Qué tal?", "<|im_start|>user\nhi<|im_end|>"], texts);
    }

    [Fact]
    public void No_special_tokens_leaves_out_the_bos_token()
    {
        var dir = Repo.NpmTokenizer("llama2");
        var with = JsonNode.Parse(Run("{\"text\": \"hello\"}", "tokenize", "--tokenizer", dir).Out)!["ids"]!.AsArray();
        var without = JsonNode.Parse(Run("{\"text\": \"hello\"}", "tokenize", "--tokenizer", dir, "--no-special-tokens").Out)!["ids"]!.AsArray();
        Assert.Equal(1, with[0]!.GetValue<int>());
        Assert.Equal(with.Count - 1, without.Count);
    }

    [Theory]
    [InlineData("{\"text\": \"ok\"}\nnot json\n", "line 2: not valid JSON")]
    [InlineData("{\"text\": 5}\n", "line 1: field \"text\" must be a string")]
    [InlineData("[1, 2]\n", "line 1: expected a JSON object")]
    public void Bad_jsonl_gives_one_line_naming_the_line_and_exit_2(string input, string expected)
    {
        var (code, _, err) = Run(input, "tokenize", "--tokenizer", Repo.NpmTokenizer("qwen3"));
        Assert.Equal(Program.BadInput, code);
        Assert.StartsWith("error: <stdin>: ", err);
        Assert.Contains(expected, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Bad_tokenizer_file_gives_one_line_naming_the_file()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["tokenizer.json"], "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a zz\"]}}");
        var (code, _, err) = Run("{\"text\": \"a\"}", "tokenize", "--tokenizer", tmp.Path);
        Assert.Equal(Program.BadInput, code);
        Assert.Equal($"error: {tmp["tokenizer.json"]}: model.merges[0]: token \"zz\" is not in the vocabulary", err.Trim());
    }

    [Fact]
    public void Detokenize_rejects_non_integer_ids()
    {
        var (code, _, err) = Run("{\"ids\": [1, \"x\"]}", "detokenize", "--tokenizer", Repo.NpmTokenizer("qwen3"));
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("line 1: ids[1] is not an integer", err);
    }

    [Fact]
    public void Inspect_checks_a_checkpoint_folder_and_reports_problems()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TinyModels.LlamaConfig);
        var (code, output, err) = Run("", "inspect", tmp.Path, "--tensors");
        Assert.True(code == 0, err);
        Assert.Contains("LlamaForCausalLM", output);
        Assert.Contains("model.layers.1.mlp.down_proj.weight", output);
        Assert.EndsWith("ok", output.Trim());

        File.Delete(tmp["model.safetensors"]);
        File.WriteAllBytes(tmp["model.safetensors"], [9, 0, 0, 0]);
        var (code2, _, err2) = Run("", "inspect", tmp.Path);
        Assert.Equal(Program.BadInput, code2);
        Assert.Contains("model.safetensors: file is 4 bytes", err2);
    }

    [Fact]
    public void Verbose_adds_the_stack_trace()
    {
        var (code, _, err) = Run("", "inspect", "/nonexistent/folder", "--verbose");
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("   at ", err);
    }
}
