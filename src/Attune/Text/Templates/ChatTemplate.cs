using System.Text.Json.Nodes;

namespace Attune.Text.Templates;

/// <summary>
/// The chat template of a tokenizer_config.json, rendered the way transformers'
/// <c>apply_chat_template</c> renders it: Jinja with <c>trim_blocks</c> and <c>lstrip_blocks</c>,
/// the loop-control and <c>{% generation %}</c> extensions, <c>raise_exception</c> and
/// <c>strftime_now</c>, and the variables <c>messages</c>, <c>tools</c>, <c>documents</c>,
/// <c>add_generation_prompt</c>, the special tokens (<c>bos_token</c>, <c>eos_token</c>, …) and
/// any extra ones the caller passes (such as <c>enable_thinking</c>).
/// <para>
/// <c>chat_template</c> is either one template or a list of named ones; with a list, the name
/// asked for is used, else <c>tool_use</c> when tools are given and the list has it, else <c>default</c>.
/// </para>
/// <para>
/// Where @huggingface/jinja (the JavaScript port used as the conformance oracle) departs from
/// Python's Jinja, Attune follows Python, because models are trained on what transformers renders:
/// <c>str.strip(chars)</c> strips only <c>chars</c>; <c>{{ none }}</c> prints <c>None</c> and
/// <c>{{ true }}</c> prints <c>True</c>; an attribute of an undefined value is an error. The
/// conformance suite lists each such difference with a test.
/// </para>
/// </summary>
public sealed class ChatTemplate
{
    readonly string? _single;
    readonly IReadOnlyDictionary<string, string> _named;
    readonly Dictionary<string, Template> _parsed = [];
    readonly string? _sourceName;

    /// <summary>The special tokens passed to the template as variables (<c>bos_token</c>, <c>eos_token</c>, …).</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens { get; }

    /// <summary>The named template to use when <c>chat_template</c> is a list (null: choose as transformers does).</summary>
    public string? TemplateName { get; }

    public TemplateLimits Limits { get; init; } = TemplateLimits.Default;

    /// <summary>The clock <c>strftime_now</c> reads (pin it for reproducible prompts).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>The names of the templates when <c>chat_template</c> is a list; empty for a single template.</summary>
    public IReadOnlyCollection<string> Names => (IReadOnlyCollection<string>)_named.Keys;

    /// <summary>A single template given as text.</summary>
    public ChatTemplate(string source, IReadOnlyDictionary<string, string>? specialTokens = null, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        _single = source;
        _named = new Dictionary<string, string>();
        SpecialTokens = specialTokens ?? new Dictionary<string, string>();
        _sourceName = sourceName;
    }

    ChatTemplate(IReadOnlyDictionary<string, string> named, string? templateName, IReadOnlyDictionary<string, string> specialTokens, string? sourceName)
    {
        _named = named;
        TemplateName = templateName;
        SpecialTokens = specialTokens;
        _sourceName = sourceName;
    }

    /// <summary>Reads tokenizer_config.json and takes its chat template and special tokens.</summary>
    public static ChatTemplate Load(string tokenizerConfigPath, string? templateName = null) =>
        FromConfig(TokenizerConfig.Load(tokenizerConfigPath), templateName, tokenizerConfigPath);

    /// <summary>The chat template of <paramref name="config"/>; fails when there is none or the named one is missing.</summary>
    public static ChatTemplate FromConfig(TokenizerConfig config, string? templateName = null, string? configPath = null)
    {
        var tokens = new Dictionary<string, string>();
        void Token(string name, string? value)
        {
            if (value is not null) tokens[name] = value;
        }
        Token("bos_token", config.BosToken);
        Token("eos_token", config.EosToken);
        Token("unk_token", config.UnkToken);
        Token("pad_token", config.PadToken);

        var sourceName = configPath is null ? "chat_template" : $"{configPath}: chat_template";
        switch (config.ChatTemplate)
        {
            case null:
                throw new AttuneException(configPath, "chat_template", "missing: this tokenizer has no chat template");
            case JsonValue v when v.TryGetValue<string>(out var text):
                // transformers ignores a template name when there is only one template; so does Attune.
                return new ChatTemplate(text, tokens, sourceName);
            case JsonArray list:
            {
                var named = new Dictionary<string, string>();
                for (int i = 0; i < list.Count; i++)
                {
                    if (list[i] is not JsonObject o || o["name"] is not JsonValue n || !n.TryGetValue<string>(out var name)
                        || o["template"] is not JsonValue t || !t.TryGetValue<string>(out var source))
                        throw new AttuneException(configPath, $"chat_template[{i}]", "must be an object with string fields \"name\" and \"template\"");
                    named[name] = source;
                }
                if (templateName is not null && !named.ContainsKey(templateName))
                    throw new AttuneException(configPath, "chat_template",
                        $"no template named '{templateName}' (the file has {string.Join(", ", named.Keys.Select(k => $"'{k}'"))})");
                return new ChatTemplate(named, templateName, tokens, sourceName);
            }
            default:
                throw new AttuneException(configPath, "chat_template", "must be a string or a list of {name, template}");
        }
    }

    /// <summary>
    /// The template <see cref="Render"/> would use for a conversation with or without tools,
    /// parsed (a syntax error surfaces here as a <see cref="TemplateException"/>).
    /// </summary>
    public Template Resolve(bool hasTools = false)
    {
        var (key, source) = Choose(hasTools);
        lock (_parsed)
        {
            if (_parsed.TryGetValue(key, out var t)) return t;
            var name = key.Length == 0 ? _sourceName : $"{_sourceName}[{key}]";
            t = Template.Parse(source, name);
            _parsed[key] = t;
            return t;
        }
    }

    /// <summary>The text of the template <see cref="Render"/> would use (what a results file records).</summary>
    public string Source(bool hasTools = false) => Choose(hasTools).Source;

    (string Key, string Source) Choose(bool hasTools)
    {
        if (_single is not null) return ("", _single);
        var key = TemplateName
            ?? (hasTools && _named.ContainsKey("tool_use") ? "tool_use"
            : _named.ContainsKey("default") ? "default"
            : throw new AttuneException(_sourceName, $"there are several chat templates ({string.Join(", ", _named.Keys.Select(k => $"'{k}'"))}) and none is named 'default': choose one by name"));
        return (key, _named[key]);
    }

    /// <summary>
    /// Renders a conversation. <paramref name="messages"/> are the JSON objects of the
    /// conversation (<c>{"role", "content", …}</c>, passed through as they are); <paramref name="tools"/>
    /// and <paramref name="documents"/> are None to the template when null, as in transformers;
    /// <paramref name="variables"/> are added last and may override any of the others.
    /// </summary>
    public ChatRendering Render(IEnumerable<JsonNode?> messages, bool addGenerationPrompt = false, JsonArray? tools = null,
        JsonArray? documents = null, IReadOnlyDictionary<string, JsonNode?>? variables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var template = Resolve(tools is not null);
        var context = new Dictionary<string, Value>();
        var list = new List<Value>();
        foreach (var m in messages) list.Add(TemplateJson.FromJson(m));
        context["messages"] = Value.FromList(list);
        context["tools"] = TemplateJson.FromJson(tools);
        context["documents"] = TemplateJson.FromJson(documents);
        context["add_generation_prompt"] = addGenerationPrompt;
        foreach (var (k, v) in SpecialTokens) context[k] = v;
        if (variables is not null)
            foreach (var (k, v) in variables) context[k] = TemplateJson.FromJson(v);
        var result = template.Render(context, Limits, Clock);
        return new ChatRendering(result.Text, result.GenerationSpans);
    }
}

/// <summary>
/// A rendered conversation: the prompt text, and the spans of it that <c>{% generation %}</c>
/// blocks marked as assistant text (empty when the template has none), for loss masks in training.
/// </summary>
public sealed record ChatRendering(string Text, IReadOnlyList<GenerationSpan> GenerationSpans);
