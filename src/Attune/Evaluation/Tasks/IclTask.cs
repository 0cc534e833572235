using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
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
    /// <summary>Every acceptable answer of a generation item (the gold first); generation metrics take the best.</summary>
    public IReadOnlyList<string> Golds { get; init; } = [GoldText];
}

/// <summary>What a model did on one item.</summary>
public sealed record ItemResult(TaskItem Item, IReadOnlyList<double>? Logprobs, IReadOnlyList<bool>? Greedy, string Prediction, string? Raw,
    IReadOnlyDictionary<string, double> Scores);

/// <summary>A task's results: per-item records and each metric with its bootstrap interval.</summary>
public sealed record TaskResult(string Task, string? Language, int Shots, IReadOnlyList<ItemResult> Items, IReadOnlyDictionary<string, Estimate> Metrics);

/// <summary>
/// A few-shot task ready to run: its documents loaded, rendered through the task's templates, and
/// turned into requests (one log-likelihood per choice, or one generation per item); then scored.
/// </summary>
public sealed class IclTask
{
    readonly Dictionary<string, Template> _templates = [];
    public TaskConfig Config { get; }
    public IReadOnlyList<JsonObject> EvalDocs { get; }
    public IReadOnlyList<JsonObject> FewshotDocs { get; }
    bool FewshotIsEvalSplit => Config.FewshotSplit is null || Config.FewshotSplit == Config.EvalSplit;

    public IclTask(TaskConfig config)
    {
        Config = config;
        EvalDocs = TaskData.LoadDocs(config.DataFiles[config.EvalSplit]);
        FewshotDocs = config.FewshotSplit is { } f && f != config.EvalSplit ? TaskData.LoadDocs(config.DataFiles[f]) : EvalDocs;
        if (EvalDocs.Count == 0) throw new AttuneException(config.DataFiles[config.EvalSplit][0], "no documents");
    }

    /// <summary>A task whose documents are already in memory (the built-in suite).</summary>
    public IclTask(TaskConfig config, IReadOnlyList<JsonObject> evalDocs, IReadOnlyList<JsonObject> fewshotDocs)
    {
        Config = config;
        EvalDocs = evalDocs;
        FewshotDocs = fewshotDocs;
        if (EvalDocs.Count == 0) throw new AttuneException(config.Source, $"{config.Name}: no documents");
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

    /// <summary>A field as the harness reads it: a document key, a Jinja template over the document, or a literal.</summary>
    JsonNode? Resolve(JsonNode field, JsonObject doc, int index)
    {
        if (field is JsonValue v && v.TryGetValue<string>(out var text))
        {
            if (doc.TryGetPropertyValue(text, out var value)) return value?.DeepClone();
            if (!text.Contains("{{") && !text.Contains("{%")) return JsonValue.Create(text);
            try { return JsonValue.Create(TemplateOf(text).Render(doc, StrictTemplates).Text); }
            catch (TemplateException e) { throw new AttuneException(Config.Source, Where(index), $"template \"{Shorten(text)}\": {e.Message}"); }
        }
        return field.DeepClone();
    }

    public string Text(JsonObject doc, int index) => Resolve(Config.DocToText, doc, index) switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v => v.ToJsonString(),
        _ => throw new AttuneException(Config.Source, Where(index), "doc_to_text must give a text"),
    };

    public IReadOnlyList<string>? Choices(JsonObject doc, int index)
    {
        if (Config.DocToChoice is null) return null;
        var resolved = Resolve(Config.DocToChoice, doc, index);
        if (resolved is JsonValue v && v.TryGetValue<string>(out var rendered)) resolved = PythonLiteral.ParseList(rendered, Config.Source, Where(index));
        if (resolved is not JsonArray list || list.Count == 0) throw new AttuneException(Config.Source, Where(index), "doc_to_choice must give a non-empty list");
        return list.Select(x => x is JsonValue xv && xv.TryGetValue<string>(out var s) ? s : x?.ToJsonString() ?? "").ToList();
    }

    /// <summary>The gold answer: an index into the choices, or a text (for generation).</summary>
    /// <summary>
    /// doc_to_target as the harness resolves it: a document field as it is; a template's text, except that a
    /// rendered Python list (<c>['Paris', 'paris']</c>, as <c>{{answer.aliases}}</c> renders) is the list of
    /// every gold answer, read as the harness reads it with <c>ast.literal_eval</c>.
    /// </summary>
    JsonNode? TargetNode(JsonObject doc, int index)
    {
        var target = Resolve(Config.DocToTarget, doc, index);
        bool templated = Config.DocToTarget is JsonValue f && f.TryGetValue<string>(out var field) && !doc.ContainsKey(field) && (field.Contains("{{") || field.Contains("{%"));
        if (templated && target is JsonValue tv && tv.TryGetValue<string>(out var text) && text.Trim() is { Length: >= 2 } t && t[0] == '[' && t[^1] == ']')
        {
            try { return PythonLiteral.ParseList(t, Config.Source, Where(index)); }
            catch (AttuneException) { return target; } // not a literal list: the text itself, as the harness keeps it
        }
        return target;
    }

    public (int Index, string Text) Target(JsonObject doc, int index, IReadOnlyList<string>? choices)
    {
        var target = TargetNode(doc, index);
        if (target is JsonArray golds && golds.Count > 0) target = golds[0]; // several golds: the first is the one shown in shots
        string? text = target is JsonValue tv && tv.TryGetValue<string>(out var s) ? s : null;
        int? number = target is JsonValue nv && nv.GetValueKind() == JsonValueKind.Number && nv.TryGetValue<int>(out var n) ? n
            : text is not null && choices is not null && int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) && !choices.Contains(text) ? parsed
            : null;
        if (choices is null) return (-1, text ?? target?.ToJsonString() ?? "");
        if (number is int i)
            return i >= 0 && i < choices.Count ? (i, choices[i]) : throw new AttuneException(Config.Source, Where(index), $"target index {i} is outside the {choices.Count} choices");
        int found = text is null ? -1 : choices.ToList().IndexOf(text);
        return found >= 0 ? (found, text!) : throw new AttuneException(Config.Source, Where(index), $"target \"{text}\" is not one of the choices");
    }

    /// <summary>All gold answers of a generation document: a target that resolves to a list gives them all.</summary>
    List<string> Golds(JsonObject doc, int index, string first) =>
        TargetNode(doc, index) is JsonArray all && all.Count > 1
            ? all.Select(g => g is JsonValue v && v.TryGetValue<string>(out var s) ? s : g?.ToJsonString() ?? "").ToList()
            : [first];

    /// <summary>The items, each with its few-shot prompt (shots drawn per item, seeded, never the item itself).</summary>
    public List<TaskItem> Items(int? shots = null, int? limit = null)
    {
        int k = shots ?? Config.NumFewshot;
        int pool = FewshotDocs.Count - (FewshotIsEvalSplit ? 1 : 0);
        if (shots is null && k > pool)
            throw new AttuneException(Config.Source, $"{Config.Name}: num_fewshot", $"{k} shots but only {pool} examples are available");
        int count = Math.Min(EvalDocs.Count, limit ?? int.MaxValue);
        var format = new FewShotFormat { Description = Config.Description, ShotSeparator = Config.FewshotDelimiter, TargetDelimiter = Config.TargetDelimiter };
        var shotTexts = new Dictionary<int, (string, string)>();
        (string, string) Shot(int i)
        {
            if (shotTexts.TryGetValue(i, out var st)) return st;
            var doc = FewshotDocs[i];
            var choices = Choices(doc, i);
            return shotTexts[i] = (Text(doc, i), Target(doc, i, choices).Text);
        }
        var items = new List<TaskItem>(count);
        for (int d = 0; d < count; d++)
        {
            var doc = EvalDocs[d];
            int exclude = FewshotIsEvalSplit ? d : -1;
            int[] picked = Config.FirstNShots
                ? Enumerable.Range(0, FewshotDocs.Count).Where(i => i != exclude).Take(k).ToArray() is { } first && first.Length == k ? first
                    : throw new AttuneException(Config.Source, "num_fewshot", $"{k} shots requested but the few-shot split has only {FewshotDocs.Count - (exclude >= 0 ? 1 : 0)}")
                : FewShotPrompt.SampleShots(FewshotDocs.Count, k, Config.Seed + (ulong)d * 0x9E3779B97F4A7C15UL, exclude); // drawn per item
            var context = FewShotPrompt.Build(format, picked.Select(Shot), Text(doc, d));
            var choices = Choices(doc, d);
            var (gold, goldText) = Target(doc, d, choices);
            items.Add(new TaskItem(d, context, choices, gold, goldText) { Golds = choices is null ? Golds(doc, d, goldText) : [goldText] });
        }
        return items;
    }

    /// <summary>One log-likelihood request per choice (the target delimiter leads each continuation).</summary>
    public IEnumerable<LoglikelihoodRequest> LoglikelihoodRequests(IEnumerable<TaskItem> items) =>
        items.SelectMany(item => item.Choices!.Select(c => new LoglikelihoodRequest(item.Context, Config.TargetDelimiter + c)));

    public GenerateRequest GenerateRequestFor(TaskItem item) =>
        GenerateRequest.Raw(item.Context, new GenerationOptions { MaxNewTokens = Config.MaxGenTokens, StopStrings = Config.Until });

    /// <summary>A generation through the task's filter (regex extraction and the like).</summary>
    public string Filter(string generated)
    {
        var s = generated;
        foreach (var step in Config.Filters)
            s = step.Function switch
            {
                "regex" => RegexPick(s, step),
                "lowercase" => s.ToLowerInvariant(),
                "uppercase" => s.ToUpperInvariant(),
                "remove_whitespace" => s.TrimStart(),
                _ => s, // take_first: one generation per item already
            };
        return s;
    }

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
            var scores = new Dictionary<string, double>();
            int predicted = TaskMetrics.BestChoice(logprobs, item.Choices, TaskMetrics.ChoiceNormalization.None);
            foreach (var m in Config.Metrics)
                scores[m.Name] = TaskMetrics.BestChoice(logprobs, item.Choices, TaskMetrics.NormalizationOf(m.Name)) == item.GoldIndex ? 1 : 0;
            results.Add(new ItemResult(item, logprobs, scored.Select(s => s.IsGreedy).ToList(), item.Choices[predicted], null, scores));
        }
        return Summarize(results, shots, null);
    }

    /// <summary>Scores generated answers (after the filter) against the gold text.</summary>
    public TaskResult ScoreGenerations(IReadOnlyList<TaskItem> items, IReadOnlyList<GeneratedText> answers, int shots)
    {
        var results = new List<ItemResult>(items.Count);
        var chrf = new List<double[]>();
        for (int i = 0; i < items.Count; i++)
        {
            var prediction = Filter(answers[i].Text);
            var golds = items[i].Golds;
            var scores = new Dictionary<string, double>();
            foreach (var m in Config.Metrics)
                switch (m.Name)
                {
                    case "exact_match": scores[m.Name] = golds.Max(g => TaskMetrics.ExactMatch(prediction, g, m)); break;
                    case "f1": scores[m.Name] = golds.Max(g => TaskMetrics.F1(prediction, g, Config.Language)); break;
                    case "chrf":
                        var stats = ChrF.Statistics(prediction.Trim(), golds[0].Trim());
                        chrf.Add(stats);
                        scores[m.Name] = ChrF.Score(stats); // the item's own chrF, for the per-item record
                        break;
                }
            results.Add(new ItemResult(items[i], null, null, prediction, answers[i].Text, scores));
        }
        return Summarize(results, shots, chrf);
    }

    TaskResult Summarize(List<ItemResult> results, int shots, List<double[]>? chrf)
    {
        var metrics = new Dictionary<string, Estimate>();
        foreach (var m in Config.Metrics)
            metrics[m.Name] = m.Name == "chrf" && chrf is { Count: > 0 }
                ? Bootstrap.Summed(chrf, ChrF.Score, Config.Seed) // corpus-level, as sacrebleu scores it
                : Bootstrap.Mean(results.Select(r => r.Scores[m.Name]).ToList(), Config.Seed);
        return new TaskResult(Config.Name, Config.Language, shots, results, metrics);
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
