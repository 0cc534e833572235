using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text;
using System.Text.RegularExpressions;
using Attune.Formats;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Text.Templates;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Tasks;

/// <summary>One evaluated document: its prompt, and either its choices and gold index or its gold answer.</summary>
public sealed record TaskItem(int Doc, string Context, IReadOnlyList<string>? Choices, int GoldIndex, string GoldText)
{
    /// <summary>Every acceptable answer of a generation item (the gold first), when the target is a list.</summary>
    public IReadOnlyList<string> Golds { get; init; } = [GoldText];
    /// <summary>Every acceptable choice of a multiple-choice item whose target is a list.</summary>
    public IReadOnlyList<int>? GoldIndices { get; init; }
    /// <summary>Multiple inputs (Winogrande): one context per choice, each continued by <see cref="GoldText"/>.</summary>
    public IReadOnlyList<string>? Contexts { get; init; }
    /// <summary>The document, after the task's process_docs (what hooks and the per-document log read).</summary>
    public JsonObject? Document { get; init; }
    /// <summary>The context is a chat template's rendering (it carries its own special tokens).</summary>
    public bool Templated { get; init; }
}

/// <summary>
/// How task prompts reach the model, as lm-evaluation-harness's --system_instruction, --apply_chat_template [NAME] and
/// --fewshot_as_multiturn set it: plain text (the system instruction first), or the prompt's turns through the model's
/// chat template, the shots as their own turns or all in one user message.
/// </summary>
public sealed record TaskPrompting
{
    public string? SystemInstruction { get; init; }
    /// <summary>Renders a conversation through the model's chat template (true: continue the last message); null for plain text.</summary>
    public Func<IReadOnlyList<ChatMessage>, bool, string>? ChatTemplate { get; init; }
    public bool FewshotAsMultiturn { get; init; }
    /// <summary>The template's text, for the results file (the harness records it and its SHA-256).</summary>
    public string? ChatTemplateSource { get; init; }

    /// <summary>
    /// The options as the harness's command line settles them: with a chat template, shots are turns unless told not to;
    /// --fewshot-as-multiturn without a chat template is an error. The template is the backend's.
    /// </summary>
    public static TaskPrompting For(IModelBackend backend, string? chatTemplate, bool? fewshotAsMultiturn, string? systemInstruction)
    {
        if (chatTemplate is null && fewshotAsMultiturn == true)
            throw new AttuneException(null, "--fewshot-as-multiturn", "needs --apply-chat-template (the shots become chat turns)");
        var name = string.IsNullOrEmpty(chatTemplate) ? null : chatTemplate;
        return new TaskPrompting
        {
            SystemInstruction = systemInstruction,
            ChatTemplate = chatTemplate is null ? null : (messages, continueLast) => backend.RenderChat(messages, name, continueLast),
            FewshotAsMultiturn = chatTemplate is not null && (fewshotAsMultiturn ?? true),
            ChatTemplateSource = chatTemplate is null ? null : backend.ChatTemplateSource(name),
        };
    }
}

/// <summary>What a model did on one item: its responses, each filter pipeline's answer, and each metric's value.</summary>
/// <param name="Scores">Each metric's value for the item (key "metric", or "metric,pipeline" when a task has several pipelines).</param>
/// <param name="Stats">The item's part of a corpus-level metric (perplexities, mcc, f1, chrF), by the same key.</param>
public sealed record ItemResult(TaskItem Item, IReadOnlyList<double>? Logprobs, IReadOnlyList<bool>? Greedy, string Prediction, string? Raw,
    IReadOnlyDictionary<string, double> Scores)
{
    public IReadOnlyDictionary<string, double[]> Stats { get; init; } = new Dictionary<string, double[]>();
    /// <summary>Each filter pipeline's answer (generation tasks).</summary>
    public IReadOnlyDictionary<string, string>? Filtered { get; init; }
    /// <summary>Every generation of the item (several with repeats).</summary>
    public IReadOnlyList<string>? Responses { get; init; }
}

/// <summary>A task's results: per-item records and each metric with its bootstrap interval.</summary>
public sealed record TaskResult(string Task, string? Language, int Shots, IReadOnlyList<ItemResult> Items, IReadOnlyDictionary<string, Estimate> Metrics)
{
    /// <summary>Each metric's standard error as the harness reports it (the sample standard error of a mean; the bootstrap's otherwise).</summary>
    public IReadOnlyDictionary<string, double> StandardErrors { get; init; } = new Dictionary<string, double>();
}

/// <summary>
/// A few-shot task ready to run: its documents loaded (and mapped by the task's process_docs), rendered through
/// the task's templates or hooks, and turned into requests as lm-evaluation-harness builds them (one log-likelihood
/// per choice or per context, one log-likelihood of the target, one rolling log-likelihood of the text, or one
/// generation per repeat); then scored.
/// </summary>
public sealed class IclTask
{
    readonly Dictionary<string, Template> _templates = [];
    public TaskConfig Config { get; }
    public IReadOnlyList<JsonObject> EvalDocs { get; }
    public IReadOnlyList<JsonObject> FewshotDocs { get; }
    /// <summary>Whether shots come from the evaluated split (an item is then never its own shot).</summary>
    bool FewshotIsEvalSplit => Config.FewshotSamples is null && (Config.FewshotSplit is null || Config.FewshotSplit == Config.EvalSplit);
    /// <summary>Multiple inputs: doc_to_text gives the index of the right context among the choices (as the first document shows).</summary>
    public bool MultipleInput { get; }
    /// <summary>Multiple targets: doc_to_target gives a list of acceptable answers (as the first document shows).</summary>
    public bool MultipleTarget { get; }

    public IclTask(TaskConfig config)
        : this(config, TaskData.LoadDocs(config.DataFiles[config.EvalSplit]),
            config.FewshotSamples ?? (config.FewshotSplit is { } f && f != config.EvalSplit ? TaskData.LoadDocs(config.DataFiles[f]) : null))
    {
    }

    /// <summary>A task whose documents are already in memory (the built-in suite, or read by the caller); null few-shot documents mean the evaluated split's.</summary>
    public IclTask(TaskConfig config, IReadOnlyList<JsonObject> evalDocs, IReadOnlyList<JsonObject>? fewshotDocs)
    {
        Config = config;
        EvalDocs = Process(evalDocs, config.EvalSplit);
        FewshotDocs = fewshotDocs is null ? EvalDocs : config.FewshotSamples is not null ? fewshotDocs : Process(fewshotDocs, config.FewshotSplit ?? "few-shot");
        if (EvalDocs.Count == 0) throw new AttuneException(config.Source, $"{config.Name}: no documents");
        MultipleInput = config.DocToChoice is not null && TextNode(EvalDocs[0], 0) is JsonValue v && v.GetValueKind() == JsonValueKind.Number;
        MultipleTarget = TargetNode(EvalDocs[0], 0) is JsonArray;
    }

    /// <summary>The split's documents through process_docs (a document it filters out is dropped).</summary>
    IReadOnlyList<JsonObject> Process(IReadOnlyList<JsonObject> docs, string split)
    {
        if (Config.ProcessDocs is not { } hook) return docs;
        var kept = new List<JsonObject>(docs.Count);
        for (int i = 0; i < docs.Count; i++)
        {
            try { if (hook(docs[i]) is { } mapped) kept.Add(mapped); }
            catch (HookException e) { throw new AttuneException(Config.Source, $"{Config.Name}: process_docs, {split} document {i}", e.Message); }
        }
        return kept;
    }

    string Where(int doc) => $"{Config.Name}: document {doc}";

    /// <summary>Task templates render as the harness renders them: a variable the document lacks is an error, not empty text.</summary>
    static readonly TemplateLimits StrictTemplates = new() { StrictUndefined = true };

    Template TemplateOf(string source)
    {
        if (_templates.TryGetValue(source, out var t)) return t;
        try { return _templates[source] = Template.Parse(source, Config.Source); }
        catch (TemplateException e) { throw new AttuneException(Config.Source, $"template \"{Shorten(source)}\"", e.Message); }
    }

    static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

    static bool IsTemplate(string text) => text.Contains("{{") || text.Contains("{%");

    /// <summary>A field as the harness reads it: a hook's value, a document key, a Jinja template over the document, or a literal.</summary>
    JsonNode? Resolve(TaskField field, JsonObject doc, int index, string name)
    {
        if (field.Hook is { } hook)
        {
            try { return hook(doc); }
            catch (HookException e) { throw new AttuneException(Config.Source, Where(index), $"{name} (!function {field.HookName}): {e.Message}"); }
        }
        if (field.Value is JsonValue v && v.TryGetValue<string>(out var text))
        {
            if (doc.TryGetPropertyValue(text, out var value)) return value?.DeepClone();
            if (!IsTemplate(text)) return JsonValue.Create(text);
            try { return JsonValue.Create(TemplateOf(text).Render(doc, StrictTemplates).Text); }
            catch (TemplateException e) { throw new AttuneException(Config.Source, Where(index), $"template \"{Shorten(text)}\": {e.Message}"); }
        }
        return field.Value?.DeepClone();
    }

    /// <summary>Whether a field was rendered as a template for this document (not a hook, a document key or a literal).</summary>
    static bool IsTemplated(TaskField field, JsonObject doc) =>
        field.Value is JsonValue f && f.TryGetValue<string>(out var text) && !doc.ContainsKey(text) && IsTemplate(text);

    static string AsText(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : node?.ToJsonString() ?? "";

    /// <summary>doc_to_text's value: the text, or (multiple inputs) the index of the right context.</summary>
    JsonNode? TextNode(JsonObject doc, int index)
    {
        var text = Resolve(Config.DocToText, doc, index, "doc_to_text");
        // A template that renders digits is an index when the task has choices, as the harness literal_evals it.
        return IsTemplated(Config.DocToText, doc) && Config.DocToChoice is not null && text is JsonValue v && v.TryGetValue<string>(out var s) && s.Length is > 0 and < 10 && s.All(char.IsAsciiDigit)
            ? JsonValue.Create(int.Parse(s, CultureInfo.InvariantCulture)) : text;
    }

    public string Text(JsonObject doc, int index) => TextNode(doc, index) switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v => v.ToJsonString(),
        _ => throw new AttuneException(Config.Source, Where(index), "doc_to_text must give a text"),
    };

    public IReadOnlyList<string>? Choices(JsonObject doc, int index)
    {
        if (Config.DocToChoice is null) return null;
        var resolved = Resolve(Config.DocToChoice, doc, index, "doc_to_choice");
        if (resolved is JsonValue v && v.TryGetValue<string>(out var rendered)) resolved = PythonLiteral.ParseList(rendered, Config.Source, Where(index));
        if (resolved is not JsonArray list || list.Count == 0) throw new AttuneException(Config.Source, Where(index), "doc_to_choice must give a non-empty list");
        return list.Select(AsText).ToList();
    }

    /// <summary>
    /// doc_to_target as the harness resolves it: a hook's value or a document field as it is; a template's text, except
    /// that a rendered Python list (<c>['Paris', 'paris']</c>, as <c>{{answer.aliases}}</c> renders) is the list of
    /// every gold answer, read as the harness reads it with <c>ast.literal_eval</c>.
    /// </summary>
    JsonNode? TargetNode(JsonObject doc, int index)
    {
        var target = Resolve(Config.DocToTarget, doc, index, "doc_to_target");
        if (IsTemplated(Config.DocToTarget, doc) && target is JsonValue tv && tv.TryGetValue<string>(out var text) && text.Trim() is { Length: >= 2 } t && t[0] == '[' && t[^1] == ']')
        {
            try { return PythonLiteral.ParseList(t, Config.Source, Where(index)); }
            catch (AttuneException) { return target; } // not a literal list: the text itself, as the harness keeps it
        }
        return target;
    }

    /// <summary>A target value as a choice index: a number, or a text that is a choice (or, as the harness reads a rendered target, all digits).</summary>
    int ChoiceIndex(JsonNode? target, IReadOnlyList<string> choices, int index)
    {
        string? text = target is JsonValue tv && tv.TryGetValue<string>(out var s) ? s : null;
        int? number = target is JsonValue nv && nv.GetValueKind() == JsonValueKind.Number ? IntOf(nv, index)
            : text is not null && !choices.Contains(text) && text.Length > 0 && text.All(char.IsAsciiDigit) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed
            : null;
        if (number is int i)
            return i >= 0 && i < choices.Count ? i : throw new AttuneException(Config.Source, Where(index), $"target index {i} is outside the {choices.Count} choices");
        int found = text is null ? -1 : choices.ToList().IndexOf(text);
        return found >= 0 ? found : throw new AttuneException(Config.Source, Where(index), $"target \"{text ?? target?.ToJsonString()}\" is not one of the choices");
    }

    /// <summary>An integer JSON number however it is held (Parquet gives int64, YAML int, JSON double).</summary>
    int IntOf(JsonValue value, int index) =>
        value.TryGetValue<int>(out var i) ? i
        : value.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue ? (int)l
        : value.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue ? (int)d
        : throw new AttuneException(Config.Source, Where(index), $"target {value.ToJsonString()} is not an integer index");

    /// <summary>The gold as the harness shows it after a shot: the chosen choice, the first of several golds, or the text.</summary>
    public (int Index, string Text) Target(JsonObject doc, int index, IReadOnlyList<string>? choices)
    {
        var target = TargetNode(doc, index);
        if (target is JsonArray golds && golds.Count > 0) target = golds[0]; // several golds: the first is the one shown in shots
        if (choices is null || MultipleInput) return (-1, AsText(target));
        int i = ChoiceIndex(target, choices, index);
        return (i, choices[i]);
    }

    /// <summary>The description, rendered over the document when it is a template (as the harness resolves it per document).</summary>
    string Description(JsonObject doc, int index) =>
        IsTemplate(Config.Description) ? AsText(Resolve(new TaskField(JsonValue.Create(Config.Description)), doc, index, "description")) : Config.Description;

    /// <summary>
    /// The items, each with its few-shot prompt, in document order (the harness's sampler draws in that order). With
    /// <paramref name="shotSet"/>, every item takes the task's fixed shot set number <paramref name="shotSet"/> (drawn once
    /// by the task's seed and the set's number; a document that is itself among the shots gets the next one instead), so
    /// all items share one prompt prefix.
    /// </summary>
    public List<TaskItem> Items(int? shots = null, int? limit = null, TaskPrompting? prompting = null, int? shotSet = null)
    {
        int k = shots ?? Config.NumFewshot;
        int pool = FewshotDocs.Count - (FewshotIsEvalSplit ? 1 : 0);
        if (k > pool)
            throw new AttuneException(Config.Source, $"{Config.Name}: num_fewshot", $"{k} shots but only {pool} examples are available");
        int count = Math.Min(EvalDocs.Count, limit ?? int.MaxValue);
        var format = new FewShotFormat { ShotSeparator = Config.FewshotDelimiter, TargetDelimiter = Config.TargetDelimiter, SystemInstruction = prompting?.SystemInstruction };
        var chat = prompting?.ChatTemplate;
        string Prompt(List<PromptPart> parts) => chat is null ? FewShotPrompt.Text(parts)
            : chat(FewShotPrompt.Conversation(parts, prompting!.FewshotAsMultiturn), parts[^1].Role == "assistant"); // an open gen_prefix is continued
        var shotTurns = new Dictionary<int, FewShotTurn>();
        FewShotTurn Shot(int i)
        {
            if (shotTurns.TryGetValue(i, out var st)) return st;
            var doc = FewshotDocs[i];
            var choices = Choices(doc, i);
            var text = MultipleInput && TextNode(doc, i) is JsonValue tv && tv.TryGetValue<int>(out var right)
                ? (right >= 0 && right < choices!.Count ? choices[right] : throw new AttuneException(Config.Source, Where(i), $"doc_to_text index {right} is outside the {choices!.Count} choices"))
                : Text(doc, i);
            return shotTurns[i] = new FewShotTurn(text, Target(doc, i, choices).Text, GenPrefix(doc, i));
        }
        var harnessRandom = Config.Sampler == FewshotSampler.Harness && shotSet is null ? new PythonRandom(Config.Seed) : null;
        // A fixed set draws one more when shots come from the evaluated split, for the documents that are among them.
        int[]? fixedSet = shotSet is int set && k > 0
            ? FewShotPrompt.SampleShots(FewshotDocs.Count, Math.Min(k + (FewshotIsEvalSplit ? 1 : 0), FewshotDocs.Count), Config.Seed + (ulong)(set + 1) * 0xD1B54A32D192ED03UL)
            : null;
        var items = new List<TaskItem>(count);
        for (int d = 0; d < count; d++)
        {
            var doc = EvalDocs[d];
            var picked = (k == 0 ? [] : fixedSet is not null ? FromFixedSet(fixedSet, d, k) : PickShots(d, k, harnessRandom)).Select(Shot).ToList();
            var docFormat = format with { Description = Description(doc, d) };
            var choices = Choices(doc, d);
            var prefix = GenPrefix(doc, d);
            var item = MultipleInput
                ? MultipleInputItem(d, doc, choices!, c => Prompt(FewShotPrompt.Parts(docFormat, picked, new FewShotTurn(c, null, prefix), queryDelimiter: ""))) // the harness joins a multiple-input question without a delimiter
                : Item(d, doc, choices, Prompt(FewShotPrompt.Parts(docFormat, picked, new FewShotTurn(Text(doc, d), null, prefix))));
            items.Add(item with { Templated = chat is not null });
        }
        return items;
    }

    /// <summary>The first k shots of a fixed set, without the document itself (or an example equal to it) when shots come from its split.</summary>
    int[] FromFixedSet(int[] set, int d, int k) =>
        set.Where(i => !FewshotIsEvalSplit || !JsonNode.DeepEquals(FewshotDocs[i], EvalDocs[d])).Take(k).ToArray();

    /// <summary>gen_prefix for a document: a document key's value, or the text rendered over the document.</summary>
    string? GenPrefix(JsonObject doc, int index) =>
        Config.GenPrefix is null ? null : AsText(Resolve(new TaskField(JsonValue.Create(Config.GenPrefix)), doc, index, "gen_prefix"));

    /// <summary>
    /// The shots of document <paramref name="d"/>: the harness's sampler (Python's <c>random.sample</c> of k, or k + 1 when
    /// shots come from the evaluated split, the document itself then removed), its first_n, or Attune's per-item draw.
    /// </summary>
    int[] PickShots(int d, int k, PythonRandom? harnessRandom)
    {
        int exclude = FewshotIsEvalSplit ? d : -1;
        switch (Config.Sampler)
        {
            case FewshotSampler.Harness:
                var drawn = harnessRandom!.Sample(FewshotDocs.Count, exclude >= 0 ? Math.Min(k + 1, FewshotDocs.Count) : k);
                // The harness drops every drawn example equal to the document, not only the document itself.
                return drawn.Where(i => exclude < 0 || !JsonNode.DeepEquals(FewshotDocs[i], EvalDocs[d])).Take(k).ToArray();
            case FewshotSampler.FirstN:
                return Enumerable.Range(0, FewshotDocs.Count).Where(i => exclude < 0 || !JsonNode.DeepEquals(FewshotDocs[i], EvalDocs[d])).Take(k).ToArray();
            default:
                return FewShotPrompt.SampleShots(FewshotDocs.Count, k, Config.Seed + (ulong)d * 0x9E3779B97F4A7C15UL, exclude); // drawn per item
        }
    }

    TaskItem Item(int d, JsonObject doc, IReadOnlyList<string>? choices, string context)
    {
        var target = TargetNode(doc, d);
        if (target is JsonArray && !MultipleTarget)
            throw new AttuneException(Config.Source, Where(d), "doc_to_target gave a list, but the first document's target is a single answer (the harness reads the kind from the first document)");
        IReadOnlyList<JsonNode?> golds = target is JsonArray list ? list.ToList() : [target];
        if (golds.Count == 0) throw new AttuneException(Config.Source, Where(d), "doc_to_target gave an empty list");
        if (choices is not null)
        {
            var indices = golds.Select(g => ChoiceIndex(g, choices, d)).ToList();
            // A generation task with choices scores against the chosen choice's text, as the harness does.
            var texts = indices.Select(i => choices[i]).ToList();
            return new TaskItem(d, context, Config.OutputType == OutputType.MultipleChoice ? choices : null, indices[0], texts[0])
                { Golds = texts, GoldIndices = MultipleTarget ? indices : null, Document = doc };
        }
        var goldTexts = golds.Select(AsText).ToList();
        return new TaskItem(d, context, null, -1, goldTexts[0]) { Golds = goldTexts, Document = doc };
    }

    TaskItem MultipleInputItem(int d, JsonObject doc, IReadOnlyList<string> choices, Func<string, string> context)
    {
        if (TextNode(doc, d) is not JsonValue v || !v.TryGetValue<int>(out var right) || right < 0 || right >= choices.Count)
            throw new AttuneException(Config.Source, Where(d), "doc_to_text must give the index of the right context (multiple inputs, as the first document's does)");
        var contexts = choices.Select(context).ToList();
        var continuation = AsText(TargetNode(doc, d));
        return new TaskItem(d, contexts[right], choices, right, continuation) { Contexts = contexts, Document = doc };
    }

    /// <summary>
    /// The delimiter before a choice: the target delimiter, except under a chat template, where the harness keeps it only
    /// after a gen_prefix that does not end in white space (the assistant's turn starts the answer otherwise).
    /// </summary>
    string ChoiceDelimiter(TaskItem item) =>
        !item.Templated || Config.GenPrefix is { Length: > 0 } p && !char.IsWhiteSpace(p[^1]) ? Config.TargetDelimiter : "";

    /// <summary>The log-likelihood requests of an item: one per choice (or per context), or the target after the context.</summary>
    public IEnumerable<LoglikelihoodRequest> LoglikelihoodRequests(TaskItem item) => Config.OutputType switch
    {
        OutputType.MultipleChoice when item.Contexts is { } contexts => contexts.Select(c => new LoglikelihoodRequest(c, ChoiceDelimiter(item) + item.GoldText)),
        OutputType.MultipleChoice => item.Choices!.Select(c => new LoglikelihoodRequest(item.Context, ChoiceDelimiter(item) + c)),
        // The harness continues a loglikelihood context with the target as it is (lambada's starts with its space).
        OutputType.Loglikelihood => [new LoglikelihoodRequest(item.Context, item.GoldText)],
        _ => [],
    };

    public IEnumerable<LoglikelihoodRequest> LoglikelihoodRequests(IEnumerable<TaskItem> items) => items.SelectMany(LoglikelihoodRequests);

    public GenerateRequest GenerateRequestFor(TaskItem item) =>
        GenerateRequest.Raw(item.Context, new GenerationOptions { MaxNewTokens = Config.MaxGenTokens, StopStrings = Config.Until }) with { Templated = item.Templated };

    /// <summary>The text scored whole by a loglikelihood_rolling task (doc_to_target).</summary>
    public RollingRequest RollingRequestFor(TaskItem item) => new(item.GoldText);

    /// <summary>A task's responses through one filter pipeline, as the harness's filters run over a document's list of responses.</summary>
    public static string Filter(IReadOnlyList<string> responses, FilterPipeline? pipeline)
    {
        IEnumerable<string> list = responses;
        foreach (var step in pipeline?.Steps ?? [])
            list = step.Function switch
            {
                "regex" => list.Select(r => RegexPick(r, step)).ToList(),
                "lowercase" => list.Select(r => r.ToLowerInvariant()).ToList(),
                "uppercase" => list.Select(r => r.ToUpperInvariant()).ToList(),
                "remove_whitespace" => list.Select(r => r.TrimStart(' ')).ToList(),
                "take_first" => list.Take(1).ToList(),
                "take_first_k" => list.Take(step.Select).ToList(),
                // The most common answer; among equally common ones, the first seen (Python's Counter.most_common).
                "majority_vote" => list.GroupBy(r => r).OrderByDescending(g => g.Count()).Take(1).Select(g => g.Key).ToList(),
                _ => list,
            };
        return list.FirstOrDefault() ?? "";
    }

    /// <summary>A generation through the task's first filter pipeline (one response).</summary>
    public string Filter(string generated) => Filter([generated], Config.FilterPipelines.FirstOrDefault());

    static string RegexPick(string text, FilterStep step)
    {
        var matches = Regex.Matches(text, step.Pattern!);
        if (matches.Count == 0) return step.Fallback;
        int at = step.Select < 0 ? matches.Count + step.Select : step.Select;
        if (at < 0 || at >= matches.Count) return step.Fallback;
        var m = matches[at];
        var value = m.Groups.Count > 1 ? m.Groups.Cast<Group>().Skip(1).FirstOrDefault(g => g.Success && g.Value.Length > 0)?.Value ?? "" : m.Value;
        return value.Trim();
    }

    /// <summary>A process_results hook's values for the task's metrics (each must be among them).</summary>
    Dictionary<string, double[]> HookResults(TaskItem item, HookResponse response)
    {
        Dictionary<string, double[]> values;
        try { values = Config.ProcessResults!(item.Document!, response); }
        catch (HookException e) { throw new AttuneException(Config.Source, Where(item.Doc), $"process_results: {e.Message}"); }
        foreach (var m in Config.Metrics)
            if (!values.ContainsKey(m.Name))
                throw new AttuneException(Config.Source, $"{Config.Name}: metric_list", $"process_results gives {string.Join(", ", values.Keys)}, not {m.Name}");
        return values;
    }

    /// <summary>Scores multiple-choice items from their choices' log-likelihoods.</summary>
    public TaskResult ScoreChoices(IReadOnlyList<TaskItem> items, IReadOnlyList<ScoreResult> answers, int shots)
    {
        var results = new List<ItemResult>(items.Count);
        int at = 0;
        foreach (var item in items)
        {
            var scored = answers.Skip(at).Take(item.Choices!.Count).ToList();
            at += item.Choices.Count;
            var logprobs = scored.Select(s => s.LogProb).ToList();
            var greedy = scored.Select(s => s.IsGreedy).ToList();
            var scores = new Dictionary<string, double>();
            var stats = new Dictionary<string, double[]>();
            int predicted = TaskMetrics.BestChoice(logprobs, item.Choices, TaskMetrics.ChoiceNormalization.None);
            var golds = item.GoldIndices ?? [item.GoldIndex];
            if (Config.ProcessResults is not null)
                foreach (var (metric, value) in HookResults(item, new HookResponse(logprobs, greedy, null))) Record(scores, stats, metric, value);
            else
                foreach (var m in Config.Metrics)
                    switch (m.Name)
                    {
                        case "mcc" or "f1":
                            scores[m.Name] = golds.Contains(predicted) ? 1 : 0;
                            stats[m.Name] = [golds[0], predicted];
                            break;
                        case "exact_match": scores[m.Name] = golds.Any(g => greedy[g]) ? 1 : 0; break;
                        case "brier_score": scores[m.Name] = TaskMetrics.Brier(logprobs, item.GoldIndex); break;
                        default:
                            // Lengths are the choices' (for multiple inputs, the contexts' fillings), as the harness divides by doc_to_choice's.
                            int best = TaskMetrics.BestChoice(logprobs, item.Choices, TaskMetrics.NormalizationOf(m.Name));
                            scores[m.Name] = golds.Contains(best) ? 1 : 0;
                            break;
                    }
            results.Add(new ItemResult(item, logprobs, greedy, item.Choices[predicted], null, scores) { Stats = stats });
        }
        return Summarize(results, shots);
    }

    static void Record(Dictionary<string, double> scores, Dictionary<string, double[]> stats, string metric, double[] value)
    {
        scores[metric] = value[0];
        if (value.Length > 1) stats[metric] = value;
    }

    /// <summary>Scores loglikelihood items (perplexity of the target, and whether greedy decoding gives it).</summary>
    public TaskResult ScoreLoglikelihoods(IReadOnlyList<TaskItem> items, IReadOnlyList<ScoreResult> answers, int shots) =>
        ScoreOneLogprob(items, answers, shots, greedy: true, (_, answer, metric) => [metric == "perplexity" ? answer.LogProb : answer.IsGreedy ? 1 : 0]);

    /// <summary>Scores loglikelihood_rolling items: the text's log-likelihood against its words and UTF-8 bytes.</summary>
    public TaskResult ScoreRolling(IReadOnlyList<TaskItem> items, IReadOnlyList<ScoreResult> answers, int shots) =>
        ScoreOneLogprob(items, answers, shots, greedy: false, (item, answer, metric) =>
            [answer.LogProb, metric == "word_perplexity" ? Regex.Split(item.GoldText, @"\s+").Length : Encoding.UTF8.GetByteCount(item.GoldText)]);

    /// <summary>Items of one log-likelihood each: the process_results hook's values, or each metric's built-in value.</summary>
    TaskResult ScoreOneLogprob(IReadOnlyList<TaskItem> items, IReadOnlyList<ScoreResult> answers, int shots, bool greedy, Func<TaskItem, ScoreResult, string, double[]> builtin)
    {
        var results = new List<ItemResult>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var (item, answer) = (items[i], answers[i]);
            var scores = new Dictionary<string, double>();
            var stats = new Dictionary<string, double[]>();
            IReadOnlyList<bool>? greedyList = greedy ? [answer.IsGreedy] : null;
            IEnumerable<KeyValuePair<string, double[]>> values = Config.ProcessResults is not null
                ? HookResults(item, new HookResponse([answer.LogProb], greedyList, null))
                : Config.Metrics.Select(m => KeyValuePair.Create(m.Name, builtin(item, answer, m.Name)));
            foreach (var (metric, value) in values) Record(scores, stats, metric, value);
            results.Add(new ItemResult(item, [answer.LogProb], greedyList, item.GoldText, null, scores) { Stats = stats });
        }
        return Summarize(results, shots);
    }

    /// <summary>Metric keys as reported: the metric's name, or "metric,pipeline" for each of several filter pipelines.</summary>
    IEnumerable<(string Key, MetricSpec Metric, FilterPipeline? Pipeline)> MetricKeys()
    {
        if (Config.OutputType != OutputType.GenerateUntil || Config.FilterPipelines.Count <= 1)
            return Config.Metrics.Select(m => (m.Name, m, Config.OutputType == OutputType.GenerateUntil ? Config.FilterPipelines.FirstOrDefault() : null));
        return Config.FilterPipelines.SelectMany(p => Config.Metrics.Select(m => ($"{m.Name},{p.Name}", m, (FilterPipeline?)p)));
    }

    /// <summary>The filter pipeline a reported metric key belongs to ("none" without one).</summary>
    public string PipelineOf(string key) => key.Contains(',') ? key[(key.IndexOf(',') + 1)..] : Config.OutputType == OutputType.GenerateUntil && Config.FilterPipelines.Count == 1 ? Config.FilterPipelines[0].Name : "none";

    /// <summary>Scores generated answers (each filter pipeline's) against the gold text; <paramref name="answers"/> holds <see cref="TaskConfig.Repeats"/> per item.</summary>
    public TaskResult ScoreGenerations(IReadOnlyList<TaskItem> items, IReadOnlyList<GeneratedText> answers, int shots)
    {
        var results = new List<ItemResult>(items.Count);
        int repeats = Config.Repeats;
        var keys = MetricKeys().ToList();
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var responses = answers.Skip(i * repeats).Take(repeats).Select(a => a.Text).ToList();
            var scores = new Dictionary<string, double>();
            var stats = new Dictionary<string, double[]>();
            var filtered = new Dictionary<string, string>();
            foreach (var group in keys.GroupBy(k => k.Pipeline))
            {
                var pipeline = group.Key;
                var prediction = Filter(responses, pipeline);
                filtered[pipeline?.Name ?? "none"] = prediction;
                var hooked = Config.ProcessResults is not null ? HookResults(item, new HookResponse(null, null, prediction)) : null;
                foreach (var (key, m, _) in group)
                {
                    if (hooked is not null) { Record(scores, stats, key, hooked[m.Name]); continue; }
                    if (m.Name is "chrf" or "bleu")
                    {
                        // Corpus metrics: the item's statistics (summed over the corpus) and its own score for the per-item record.
                        var corpus = m.Name == "chrf" ? ChrF.Statistics(prediction.Trim(), item.Golds[0].Trim()) : Bleu.Statistics(prediction, item.Golds[0]);
                        stats[key] = corpus;
                        scores[key] = m.Name == "chrf" ? ChrF.Score(corpus) : Bleu.Score(corpus);
                        continue;
                    }
                    double Score(string gold) => m.Function is { } f ? f(prediction, gold)
                        : m.Name == "exact_match" ? TaskMetrics.ExactMatch(prediction, gold, m)
                        : TaskMetrics.F1(prediction, gold, Config.Language);
                    // Several golds: the harness counts a document right when any gold scores above zero (for every metric).
                    scores[key] = MultipleTarget ? item.Golds.Any(g => Score(g) > 0) ? 1 : 0 : Score(item.Golds[0]);
                }
            }
            results.Add(new ItemResult(item, null, null, filtered.Values.First(), responses[0], scores) { Stats = stats, Filtered = filtered, Responses = responses });
        }
        return Summarize(results, shots);
    }

    /// <summary>Each metric over the items: a mean, or its corpus-level aggregation, with a bootstrap interval and the harness's standard error.</summary>
    /// <summary>
    /// One result from the same items scored under several fixed shot sets: each item's scores are its mean over the sets,
    /// a metric's value is the mean of the sets' values, and its interval resamples documents (each drawn with all its sets),
    /// so that the result does not hang on one draw of shots. Item records keep the first set's prompt and prediction.
    /// </summary>
    public TaskResult CombineShotSets(IReadOnlyList<TaskResult> sets, int shots)
    {
        if (sets.Count == 1) return sets[0];
        int n = sets[0].Items.Count;
        var items = Enumerable.Range(0, n).Select(d => sets[0].Items[d] with
        {
            Scores = sets[0].Items[d].Scores.Keys.ToDictionary(key => key, key => sets.Average(r => r.Items[d].Scores[key])),
        }).ToList();
        var metrics = new Dictionary<string, Estimate>();
        var errors = new Dictionary<string, double>();
        foreach (var (key, m, _) in MetricKeys())
        {
            var aggregation = m.Aggregation ?? TaskMetrics.DefaultAggregation(m.Name, n > 0 && sets[0].Items[0].Stats.ContainsKey(key));
            if (aggregation == "mean")
            {
                var values = items.Select(r => r.Scores[key]).ToList();
                metrics[key] = Bootstrap.Mean(values, Config.Seed);
                errors[key] = TaskMetrics.MeanStandardError(values);
                continue;
            }
            var stats = sets.Select(r => r.Items.Select(i => i.Stats.TryGetValue(key, out var st) ? st : [i.Scores[key]]).ToList()).ToList();
            Func<IReadOnlyList<double[]>, double> corpus = TaskMetrics.Aggregate(aggregation, m.Name);
            var (estimate, error) = Bootstrap.IntervalAndError(n, sample => stats.Average(set => corpus(sample.Select(i => set[i]).ToList())), Config.Seed);
            metrics[key] = estimate;
            errors[key] = error;
        }
        return new TaskResult(Config.Name, Config.Language, shots, items, metrics) { StandardErrors = errors };
    }

    TaskResult Summarize(List<ItemResult> results, int shots)
    {
        var metrics = new Dictionary<string, Estimate>();
        var errors = new Dictionary<string, double>();
        foreach (var (key, m, _) in MetricKeys())
        {
            var aggregation = m.Aggregation ?? TaskMetrics.DefaultAggregation(m.Name, results.Count > 0 && results[0].Stats.ContainsKey(key));
            if (aggregation == "mean")
            {
                var values = results.Select(r => r.Scores[key]).ToList();
                metrics[key] = Bootstrap.Mean(values, Config.Seed);
                errors[key] = TaskMetrics.MeanStandardError(values);
                continue;
            }
            var stats = results.Select(r => r.Stats.TryGetValue(key, out var s) ? s : [r.Scores[key]]).ToList();
            Func<IReadOnlyList<double[]>, double> corpus = TaskMetrics.Aggregate(aggregation, m.Name);
            var (estimate, error) = Bootstrap.IntervalAndError(stats.Count, sample => corpus(sample.Select(i => stats[i]).ToList()), Config.Seed);
            metrics[key] = estimate;
            errors[key] = error;
        }
        return new TaskResult(Config.Name, Config.Language, shots, results, metrics) { StandardErrors = errors };
    }
}

/// <summary>Reads the Python list literal a template renders (<c>['a', "b", 3]</c>), as the harness's literal_eval would.</summary>
static class PythonLiteral
{
    public static JsonArray ParseList(string text, string source, string where)
    {
        var s = text.Trim();
        AttuneException Bad(string why) => new(source, where, $"doc_to_choice rendered \"{(s.Length > 60 ? s[..60] + "…" : s)}\", not a list: {why}");
        if (s.Length < 2 || s[0] != '[' || s[^1] != ']') throw Bad("expected [ … ]");
        var list = new JsonArray();
        int i = 1;
        void SkipSpace() { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }
        while (true)
        {
            SkipSpace();
            if (s[i] == ']') break;
            if (s[i] is '\'' or '"')
            {
                char quote = s[i++];
                var sb = new System.Text.StringBuilder();
                while (i < s.Length && s[i] != quote)
                {
                    if (s[i] == '\\' && i + 1 < s.Length)
                    {
                        i++;
                        sb.Append(s[i] switch { 'n' => '\n', 't' => '\t', _ => s[i] });
                    }
                    else sb.Append(s[i]);
                    i++;
                }
                if (i >= s.Length) throw Bad("an unterminated string");
                i++;
                list.Add(sb.ToString());
            }
            else
            {
                int start = i;
                while (i < s.Length && s[i] != ',' && s[i] != ']') i++;
                var token = s[start..i].Trim();
                list.Add(long.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? JsonValue.Create(n) : JsonValue.Create(token));
            }
            SkipSpace();
            if (i < s.Length && s[i] == ',') { i++; continue; }
            if (i < s.Length && s[i] == ']') break;
            throw Bad("expected , or ]");
        }
        return list;
    }
}
