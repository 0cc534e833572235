using System.Text.Json.Nodes;
using Attune.Text;
using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>
/// <see cref="ChatTemplate"/>: reading chat_template from tokenizer_config.json (one template or a
/// list of named ones), the variables transformers passes, the clock, and generation spans.
/// </summary>
public class ChatTemplateTests
{
    static List<JsonNode?> Messages(string json) => JsonNode.Parse(json)!.AsArray().ToList();

    static TokenizerConfig Config(string json) => TokenizerConfig.Parse(JsonNode.Parse(json)!.AsObject(), "tokenizer_config.json");

    [Fact]
    public void Renders_a_real_template_with_its_special_tokens()
    {
        var template = ChatTemplate.Load(Path.Combine(Repo.NpmTokenizer("gemma3"), "tokenizer_config.json"));
        var text = template.Render(Messages("""[{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Bonjour ! "}]"""), addGenerationPrompt: true).Text;
        Assert.Equal("<bos><start_of_turn>user\nBe brief.\n\nBonjour !<end_of_turn>\n<start_of_turn>model\n", text);
    }

    [Fact]
    public void A_template_rule_broken_by_the_conversation_is_an_error_with_the_template_position()
    {
        var path = Path.Combine(Repo.NpmTokenizer("gemma3"), "tokenizer_config.json");
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Load(path).Render(Messages("""[{"role": "assistant", "content": "Hi"}]""")));
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.Problem);
        Assert.Equal((19, 12), (e.Line, e.Column));
        Assert.StartsWith($"{path}: chat_template: template line 19, column 12: ", e.Message);
    }

    [Fact]
    public void Passes_messages_tools_documents_generation_prompt_tokens_and_extra_variables()
    {
        var template = new ChatTemplate(
            "{{ bos_token }}|{{ eos_token }}|{{ messages | length }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ enable_thinking }}|{{ pad_token is defined }}",
            new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" });
        var text = template.Render(Messages("[{\"role\": \"user\", \"content\": \"x\"}]"), addGenerationPrompt: true,
            variables: new Dictionary<string, JsonNode?> { ["enable_thinking"] = false }).Text;
        Assert.Equal("<s>|</s>|1|None|None|True|False|False", text);
        var withTools = template.Render(Messages("[]"), tools: JsonNode.Parse("""[{"name": "f"}]""")!.AsArray()).Text;
        Assert.Contains("|[{'name': 'f'}]|", withTools);
    }

    [Fact]
    public void Takes_special_tokens_from_the_config_whether_strings_or_objects()
    {
        var template = ChatTemplate.FromConfig(Config("""
            {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null,
             "chat_template": "{{ bos_token }}{{ eos_token }}{{ pad_token is defined }}"}
            """));
        Assert.Equal("<s></s>False", template.Render([]).Text);
    }

    [Fact]
    public void A_list_of_named_templates_uses_the_name_given_else_tool_use_with_tools_else_default()
    {
        var config = Config("""
            {"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}, {"name": "rag", "template": "R"}]}
            """);
        var tools = JsonNode.Parse("[{\"name\": \"f\"}]")!.AsArray();
        var auto = ChatTemplate.FromConfig(config);
        Assert.Equal(["default", "tool_use", "rag"], auto.Names);
        Assert.Equal("D", auto.Render([]).Text);
        Assert.Equal("T", auto.Render([], tools: tools).Text);
        Assert.Equal("R", ChatTemplate.FromConfig(config, "rag").Render([], tools: tools).Text);

        var missing = Assert.Throws<AttuneException>(() => ChatTemplate.FromConfig(config, "chat", "cfg.json"));
        Assert.Equal("cfg.json: chat_template: no template named 'chat' (the file has 'default', 'tool_use', 'rag')", missing.Message);
        var noDefault = ChatTemplate.FromConfig(Config("""{"chat_template": [{"name": "a", "template": "A"}]}"""));
        Assert.Contains("none is named 'default'", Assert.Throws<AttuneException>(() => noDefault.Render([])).Message);
    }

    [Fact]
    public void A_config_without_a_template_or_with_a_malformed_one_is_a_clear_error()
    {
        Assert.Equal("cfg.json: chat_template: missing: this tokenizer has no chat template",
            Assert.Throws<AttuneException>(() => ChatTemplate.FromConfig(Config("{}"), configPath: "cfg.json")).Message);
        Assert.Contains("chat_template[0]", Assert.Throws<AttuneException>(() =>
            ChatTemplate.FromConfig(Config("""{"chat_template": [{"name": "x"}]}"""))).Message);
    }

    [Fact]
    public void A_syntax_error_names_the_config_file_and_the_template()
    {
        var config = Config("""{"chat_template": [{"name": "default", "template": "ok"}, {"name": "tool_use", "template": "{% if %}"}]}""");
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.FromConfig(config, "tool_use", "cfg.json").Resolve());
        Assert.StartsWith("cfg.json: chat_template[tool_use]: template line 1, column 7: ", e.Message);
    }

    sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now.ToUniversalTime();
        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }

    [Fact]
    public void Strftime_now_reads_the_injected_clock()
    {
        var template = new ChatTemplate("Today Date: {{ strftime_now('%d %b %Y') }} ({{ strftime_now('%A %B %-d, %H:%M:%S %p %j %y %%') }})")
        {
            Clock = new FixedClock(new DateTimeOffset(2024, 7, 6, 14, 5, 9, TimeSpan.Zero)),
        };
        Assert.Equal("Today Date: 06 Jul 2024 (Saturday July 6, 14:05:09 PM 188 24 %)", template.Render([]).Text);
    }

    [Fact]
    public void Generation_spans_mark_assistant_text_in_the_prompt()
    {
        const string source = """
            {%- for message in messages -%}
            <|{{ message.role }}|>
            {% if message.role == 'assistant' %}{% generation %}{{ message.content }}<|end|>{% endgeneration %}{% else %}{{ message.content }}<|end|>{% endif %}

            {% endfor -%}
            """;
        var rendering = new ChatTemplate(source).Render(Messages("""
            [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]
            """));
        Assert.Equal(["4<|end|>", "6<|end|>"], rendering.GenerationSpans.Select(s => rendering.Text[s.Start..s.End]).ToArray());
        Assert.StartsWith("<|user|>\n2+2?<|end|>\n<|assistant|>\n4<|end|>\n", rendering.Text);
    }

    [Fact]
    public void Limits_apply_to_chat_templates()
    {
        var template = new ChatTemplate("{% for m in messages %}{% for i in range(100) %}{{ m.content }}{% endfor %}{% endfor %}")
        {
            Limits = new TemplateLimits { MaxLoopIterations = 150 },
        };
        var e = Assert.Throws<TemplateException>(() => template.Render(Messages("""[{"content": "a"}, {"content": "b"}]""")));
        Assert.Contains("MaxLoopIterations", e.Problem);
    }
}
