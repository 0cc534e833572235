using System.Text.Json.Nodes;
using Attune.Cli;

namespace Attune.Tests.Cli;

/// <summary><c>attune template</c>: JSONL conversations through a real tokenizer_config.json, in-process.</summary>
public class TemplateCliTests
{
    static (int Code, string Out, string Err) Run(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, new StringReader(stdin), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static string Config(string name) => Path.Combine(Repo.NpmTokenizer(name), "tokenizer_config.json");

    static List<JsonObject> Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void Renders_each_line_and_reports_template_errors_per_line()
    {
        var input = """
            {"messages": [{"role": "user", "content": "¿Qué tal?"}], "add_generation_prompt": true}

            {"messages": [{"role": "assistant", "content": "I speak first"}], "add_generation_prompt": false}
            {"messages": [{"role": "system", "content": "Sois bref."}, {"role": "user", "content": "Salut"}]}
            """;
        var (code, output, err) = Run(input, "template", "--tokenizer-config", Config("gemma3"));
        Assert.True(code == 0, err);
        var lines = Lines(output);
        Assert.Equal(3, lines.Count);
        Assert.Equal("<bos><start_of_turn>user\n¿Qué tal?<end_of_turn>\n<start_of_turn>model\n", lines[0]["text"]!.GetValue<string>());
        Assert.Equal("template line 19, column 12: Conversation roles must alternate user/assistant/user/assistant/...", lines[1]["error"]!.GetValue<string>());
        Assert.Equal("<bos><start_of_turn>user\nSois bref.\n\nSalut<end_of_turn>\n", lines[2]["text"]!.GetValue<string>());
    }

    [Fact]
    public void Passes_tools_and_other_fields_as_template_variables()
    {
        var input = """
            {"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true, "enable_thinking": false, "tools": [{"type": "function", "function": {"name": "f"}}]}
            """;
        var (code, output, err) = Run(input, "template", "--tokenizer-config", Repo.NpmTokenizer("qwen3"));
        Assert.True(code == 0, err);
        var text = Lines(output)[0]["text"]!.GetValue<string>();
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\"}}\n</tools>", text);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", text);
    }

    [Fact]
    public void Writes_generation_spans_when_the_template_marks_them()
    {
        using var tmp = new TempDir();
        var config = new JsonObject
        {
            ["chat_template"] = "{% for m in messages %}{{ m.role }}: {% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{{ '\\n' }}{% endfor %}",
        };
        File.WriteAllText(tmp["tokenizer_config.json"], config.ToJsonString());
        var (code, output, err) = Run("""{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}""",
            "template", "--tokenizer-config", tmp["tokenizer_config.json"]);
        Assert.True(code == 0, err);
        var line = Lines(output)[0];
        Assert.Equal("user: 2+2?\nassistant: 4\n", line["text"]!.GetValue<string>());
        Assert.Equal("[[22,23]]", line["generation_spans"]!.ToJsonString());
    }

    [Theory]
    [InlineData("{\"messages\": \"hi\"}\n", "line 1: field \"messages\" must be an array")]
    [InlineData("{\"messages\": [], \"add_generation_prompt\": \"yes\"}\n", "line 1: field \"add_generation_prompt\" must be true or false")]
    [InlineData("not json\n", "line 1: not valid JSON")]
    public void Bad_input_lines_stop_with_one_message_and_exit_2(string input, string expected)
    {
        var (code, _, err) = Run(input, "template", "--tokenizer-config", Config("llama3"));
        Assert.Equal(Program.BadInput, code);
        Assert.Contains(expected, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void A_config_without_a_template_or_with_a_broken_one_fails_before_reading_input()
    {
        var (code, _, err) = Run("", "template", "--tokenizer-config", Config("llama2"));
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("chat_template: missing: this tokenizer has no chat template", err);

        using var tmp = new TempDir();
        File.WriteAllText(tmp["tokenizer_config.json"], """{"chat_template": "line one\n{% for m in messages %}"}""");
        (code, _, err) = Run("{\"messages\": []}\n", "template", "--tokenizer-config", tmp["tokenizer_config.json"]);
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("chat_template: template line 2, column", err);
        Assert.Contains("is not closed", err);
    }

    [Fact]
    public void Template_name_picks_one_of_several_templates()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["tokenizer_config.json"], """
            {"chat_template": [{"name": "default", "template": "D{{ messages | length }}"}, {"name": "rag", "template": "R{{ messages | length }}"}]}
            """);
        var input = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n";
        Assert.Equal("D1", Lines(Run(input, "template", "--tokenizer-config", tmp["tokenizer_config.json"]).Out)[0]["text"]!.GetValue<string>());
        Assert.Equal("R1", Lines(Run(input, "template", "--tokenizer-config", tmp["tokenizer_config.json"], "--template-name", "rag").Out)[0]["text"]!.GetValue<string>());
        var (code, _, err) = Run(input, "template", "--tokenizer-config", tmp["tokenizer_config.json"], "--template-name", "nope");
        Assert.Equal(Program.BadInput, code);
        Assert.Contains("no template named 'nope'", err);
    }
}
