using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Prompting;

/// <summary>
/// In-context alignment of a base model (URIAL, Lin et al. 2023): a preamble saying that what follows
/// are conversations between a user and a helpful, honest assistant, then K stylistic examples as
/// <c># Query:</c> / <c># Answer:</c> blocks with their content fenced in triple backticks, then the
/// conversation so far and an open answer. Generation stops at the next <c># Query</c>; the closing
/// fence is removed from the answer. Attune ships a preamble and eight examples written natively in
/// English, French and Spanish (data/urial/*.json); a user file of the same shape can replace them.
/// </summary>
public sealed class UrialPrompt
{
    public const string QueryHeader = "# Query:";
    public const string AnswerHeader = "# Answer:";
    public const string Fence = "```";
    public const int DefaultShots = 3;
    public static readonly IReadOnlyList<string> Languages = ["en", "fr", "es"];

    /// <summary>Where generation must stop: the start of the model's next invented query.</summary>
    public static readonly IReadOnlyList<string> StopStrings = ["# Query"];

    public string Language { get; }
    public string Preamble { get; }
    public IReadOnlyList<(string Query, string Answer)> Examples { get; }

    public UrialPrompt(string language, string preamble, IReadOnlyList<(string Query, string Answer)> examples)
    {
        Language = language;
        Preamble = preamble;
        Examples = examples;
    }

    /// <summary>The built-in prompt for <paramref name="language"/> (en, fr, es).</summary>
    public static UrialPrompt BuiltIn(string language)
    {
        if (!Languages.Contains(language))
            throw new AttuneException(null, "--lang", $"\"{language}\" is not one of {string.Join(", ", Languages)}");
        using var stream = typeof(UrialPrompt).Assembly.GetManifestResourceStream($"Attune.urial.{language}.json")
            ?? throw new InvalidOperationException($"URIAL resource for {language} missing");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return Parse(reader.ReadToEnd(), $"data/urial/{language}.json");
    }

    /// <summary>A user-supplied prompt file: <c>{"language", "preamble", "examples": [{"query", "answer"}, …]}</c>.</summary>
    public static UrialPrompt Load(string path)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        return Parse(Utf8Input.ReadAllText(path), path);
    }

    static UrialPrompt Parse(string json, string source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw new AttuneException(source, $"not valid JSON: {e.Message}"); }
        string Text(JsonNode? n, string field) =>
            n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new AttuneException(source, field, "must be a string");
        var preamble = Text(root?["preamble"], "preamble");
        if (root?["examples"] is not JsonArray arr) throw new AttuneException(source, "examples", "must be a list of {query, answer}");
        var examples = new List<(string, string)>();
        for (int i = 0; i < arr.Count; i++)
        {
            var q = Text(arr[i]?["query"], $"examples[{i}].query");
            var a = Text(arr[i]?["answer"], $"examples[{i}].answer");
            foreach (var (text, field) in new[] { (q, "query"), (a, "answer") })
                if (text.Contains(Fence) || text.Contains("# Query") || text.Contains("# Answer"))
                    throw new AttuneException(source, $"examples[{i}].{field}", "must not contain ``` or the # Query / # Answer headers");
            examples.Add((q, a));
        }
        var language = root?["language"] is JsonValue lv && lv.TryGetValue<string>(out var l) ? l : "custom";
        return new UrialPrompt(language, preamble, examples);
    }

    /// <summary>
    /// The prompt for a conversation ending with a user turn: preamble (plus any system message), the
    /// first <paramref name="shots"/> examples, earlier turns as closed blocks, and an open answer.
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> conversation, int shots = DefaultShots)
    {
        if (shots < 0 || shots > Examples.Count)
            throw new AttuneException(null, "--shots", $"{shots} must be between 0 and the {Examples.Count} examples available");
        if (conversation.Count == 0 || conversation[^1].Role != "user")
            throw new AttuneException(null, "the conversation must end with a user turn");
        var sb = new StringBuilder();
        sb.Append(Preamble.TrimEnd()).Append("\n\n");
        foreach (var m in conversation.Where(m => m.Role == "system"))
            sb.Append(m.Content.Trim()).Append("\n\n");
        for (int i = 0; i < shots; i++)
        {
            Block(sb, QueryHeader, Examples[i].Query);
            Block(sb, AnswerHeader, Examples[i].Answer);
        }
        foreach (var m in conversation)
        {
            switch (m.Role)
            {
                case "system": break;
                case "user": Block(sb, QueryHeader, m.Content); break;
                case "assistant": Block(sb, AnswerHeader, m.Content); break;
                default: throw new AttuneException(null, $"role \"{m.Role}\" is not system, user or assistant");
            }
        }
        sb.Append(AnswerHeader).Append('\n').Append(Fence).Append('\n');
        return sb.ToString();
    }

    static void Block(StringBuilder sb, string header, string content) =>
        sb.Append(header).Append('\n').Append(Fence).Append('\n').Append(content.Trim()).Append('\n').Append(Fence).Append("\n\n");

    /// <summary>The answer without the closing fence and surrounding whitespace.</summary>
    public static string CleanAnswer(string generated)
    {
        var s = generated.TrimEnd();
        if (s.EndsWith(Fence, StringComparison.Ordinal)) s = s[..^Fence.Length];
        return s.Trim();
    }

    /// <summary>
    /// Wraps a streaming sink so the closing fence is never shown: a trailing run of whitespace and
    /// backticks is held back until more text arrives, and dropped at the end if it holds the fence.
    /// </summary>
    public sealed class StreamCleaner(Action<string> sink)
    {
        readonly StringBuilder _held = new();
        bool _started;

        public void Write(string text)
        {
            _held.Append(text);
            var s = _held.ToString();
            if (!_started) s = s.TrimStart(); // the answer starts after the opening fence's newline
            int keep = s.Length;
            while (keep > 0 && (char.IsWhiteSpace(s[keep - 1]) || s[keep - 1] == '`')) keep--;
            if (keep > 0)
            {
                sink(s[..keep]);
                _started = true;
            }
            _held.Clear().Append(s[keep..]);
        }

        public void Finish()
        {
            var tail = _held.ToString();
            if (_started && !tail.Contains(Fence)) sink(tail.TrimEnd());
            _held.Clear();
        }
    }
}
