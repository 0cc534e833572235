using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Attune.Evaluation.Tasks;

/// <summary>What a task's model answered for one document, as a <c>process_results</c> hook reads it.</summary>
/// <param name="Logprobs">One log-likelihood per request (per choice, or the one continuation or rolling text).</param>
/// <param name="Greedy">Whether greedy decoding gives each continuation.</param>
/// <param name="Text">The filtered generation of a generate_until task.</param>
public sealed record HookResponse(IReadOnlyList<double>? Logprobs, IReadOnlyList<bool>? Greedy, string? Text);

/// <summary>
/// The Python hooks (<c>!function module.name</c>) of lm-evaluation-harness task folders, as Attune's own code.
/// A hook is found by the folder of the YAML file that names it and its module-qualified name, as the harness
/// imports it (<c>utils.process_docs</c> beside <c>hellaswag/hellaswag.yaml</c>); the module file must be there
/// and define the function, as it must for the harness. Each equivalent computes what the named function
/// computes: <c>process_docs</c> maps each document (the mapped fields added to the document's own, as
/// <c>datasets.map</c> does; a filtered-out document dropped), <c>doc_to_*</c> give a field's value,
/// <c>process_results</c> gives metric values, and metric functions score a prediction against a reference.
/// </summary>
public static class TaskHooks
{
    /// <summary>A document function: the mapped document (null drops it), or a field's value.</summary>
    public delegate JsonObject? DocsHook(JsonObject doc);
    public delegate JsonNode? FieldHook(JsonObject doc);
    /// <summary>Metric values for one document: <c>[value]</c>, or <c>[log-likelihood, weight]</c> for the perplexity family.</summary>
    public delegate Dictionary<string, double[]> ResultsHook(JsonObject doc, HookResponse response);
    public delegate double MetricHook(string prediction, string reference);
    /// <summary>An aggregation hook: the name of Attune's aggregation that computes what it computes.</summary>
    public delegate string AggregationHook();

    public enum Kind { ProcessDocs, DocField, ProcessResults, Metric, Aggregation }

    sealed record Entry(Kind Kind, Delegate Function);

    static readonly Dictionary<string, Entry> Registry = new(StringComparer.Ordinal);

    static void Add(Kind kind, Delegate function, string name, params string[] folders)
    {
        foreach (var folder in folders) Registry.Add($"{folder}/{name}", new Entry(kind, function));
    }

    static TaskHooks()
    {
        // HellaSwag and its translations (okapi, French bench): query "activity: ctx_a Ctx_b", cleaned endings, gold index.
        Add(Kind.ProcessDocs, (DocsHook)HellaSwagDoc, "utils.process_docs", "hellaswag", "hellaswag_multilingual", "french_bench");
        // ARC translations (okapi): options a–e, the empty ones left out, answer letter to index.
        Add(Kind.ProcessDocs, (DocsHook)OkapiArcDoc, "utils.process_docs", "arc_multilingual");
        // PAWS-X (and the Spanish bench's copy): detokenized sentence pair, empty pairs dropped.
        Add(Kind.ProcessDocs, (DocsHook)ParaphraseDoc, "utils.process_docs_paraphrases", "paws-x", "spanish_bench");
        Add(Kind.ProcessDocs, (DocsHook)CopaEsDoc, "utils.process_docs_copa_es", "spanish_bench");
        Add(Kind.ProcessDocs, (DocsHook)NliDoc, "utils.process_doc_nli", "spanish_bench");
        // XL-Sum (Spanish bench): runs of spaces in the text and the summary collapsed to one.
        Add(Kind.ProcessDocs, (DocsHook)(doc => With(doc, ("text", Spaces.Replace(Field(doc, "text"), " ")), ("summary", Spaces.Replace(Field(doc, "summary"), " ")))),
            "utils.process_xlsum", "spanish_bench");
        // Winogrande and XWinograd: multiple inputs — the index of the right filling, the sentence's rest, both fillings.
        Add(Kind.DocField, (FieldHook)WinogradAnswer, "preprocess_winogrande.doc_to_text", "winogrande");
        Add(Kind.DocField, (FieldHook)WinogradRest, "preprocess_winogrande.doc_to_target", "winogrande");
        Add(Kind.DocField, (FieldHook)WinogradFillings, "preprocess_winogrande.doc_to_choice", "winogrande");
        Add(Kind.DocField, (FieldHook)WinogradAnswer, "utils.doc_to_text", "xwinograd");
        Add(Kind.DocField, (FieldHook)WinogradRest, "utils.doc_to_target", "xwinograd");
        Add(Kind.DocField, (FieldHook)WinogradFillings, "utils.doc_to_choice", "xwinograd");
        // COPA (SuperGLUE): the premise without its final mark and a connective; choices with a lower-case first letter.
        Add(Kind.DocField, (FieldHook)CopaText, "utils.doc_to_text", "copa");
        Add(Kind.DocField, (FieldHook)CopaTarget, "utils.doc_to_target", "copa");
        Add(Kind.DocField, (FieldHook)CopaChoices, "utils.doc_to_choice", "copa");
        // LogiQA and LogiQA 2.0: passage, question and lettered options; the label letter as an index.
        Add(Kind.DocField, (FieldHook)(doc => LogiQaText(doc, "context", "Question: {0}\nChoices:\n")), "utils_logiqa.doc_to_text", "logiqa");
        Add(Kind.DocField, (FieldHook)LogiQaTarget, "utils_logiqa.doc_to_target", "logiqa");
        Add(Kind.DocField, (FieldHook)(doc => LogiQaText(doc, "text", "Question: {0}\n")), "utils_logiqa2.doc_to_text", "logiqa2");
        // SQuAD-style answers (XQuAD): exact match and token F1 against the first reference, SQuAD's normalisation.
        Add(Kind.ProcessResults, (ResultsHook)SquadResults, "utils.process_results_qa", "xquad");
        // French bench QA metrics: SQuAD's scores with French articles.
        Add(Kind.Metric, (MetricHook)((p, r) => SquadExact(r, p, FrenchArticles)), "utils.exact", "french_bench");
        Add(Kind.Metric, (MetricHook)((p, r) => SquadF1(r, p, FrenchArticles)), "utils.f1", "french_bench");
        // The benches' ROUGE-1 (summaries, titles): each pair's F-measure as rouge_score tokenizes, averaged over the corpus.
        Add(Kind.Metric, (MetricHook)((p, r) => Rouge1(r, p)), "utils.rouge1", "french_bench", "spanish_bench");
        Add(Kind.Aggregation, (AggregationHook)(() => "mean"), "utils.rouge1_agg", "french_bench", "spanish_bench");
        // The French bench's trivia: right when the gold answer appears in the generation, as it is.
        Add(Kind.Metric, (MetricHook)((p, r) => p.Contains(r, StringComparison.Ordinal) ? 1 : 0), "utils.is_included", "french_bench");
        // WikiText (English; the French bench's copy reads "paragraph"): detokenized page, words and bytes of the original.
        Add(Kind.DocField, (FieldHook)(doc => WikitextDetokenize(Field(doc, "page"))), "preprocess_wikitext.wikitext_detokenizer", "wikitext");
        Add(Kind.ProcessResults, (ResultsHook)((doc, r) => WikitextResults(Field(doc, "page"), r)), "preprocess_wikitext.process_results", "wikitext");
        Add(Kind.DocField, (FieldHook)(doc => WikitextDetokenize(Field(doc, "paragraph"))), "preprocess_wikitext.wikitext_detokenizer", "french_bench");
        Add(Kind.ProcessResults, (ResultsHook)((doc, r) => WikitextResults(Field(doc, "paragraph"), r)), "preprocess_wikitext.process_results", "french_bench");
        // TruthfulQA MC2: the probability mass of the true answers among all answers.
        Add(Kind.ProcessResults, (ResultsHook)((doc, r) => TruthfulMc2(doc, r, splitAtFirstFalse: false)), "utils.process_results_mc2", "truthfulqa");
        // The multilingual copy counts the answers before the first false one as the true ones.
        Add(Kind.ProcessResults, (ResultsHook)((doc, r) => TruthfulMc2(doc, r, splitAtFirstFalse: true)), "utils.process_results_mc2", "truthfulqa-multi");
    }

    /// <summary>Hooks a module makes in a loop: the folders it sits in, a line that shows it makes them, and the equivalent per name.</summary>
    sealed record Family(Regex Folder, string ModuleMarker, Regex Function, Func<Match, string, DocsHook?> Make);

    static readonly string[] GlobalMmluCategories = ["Business", "Humanities", "Medical", "Other", "STEM", "Social Sciences"];

    static readonly Family[] Families =
    [
        // Global-MMLU, every subject: process_<subject> keeps the documents of that subject.
        new(new Regex(@"/global_mmlu/full/[^/]+$"), "x[\"subject\"] == subject", new Regex(@"^utils\.process_(\w+)$"),
            (m, source) => source.Contains($"\"{m.Groups[1].Value}\"", StringComparison.Ordinal) ? KeepWhere("subject", m.Groups[1].Value) : null),
        // Global-MMLU by category: process_<category, lower case, spaces as _> keeps that subject_category.
        new(new Regex(@"/global_mmlu/default/[^/]+$"), "x[\"subject_category\"] == category", new Regex(@"^utils\.process_(\w+)$"),
            (m, _) => GlobalMmluCategories.FirstOrDefault(c => c.ToLowerInvariant().Replace(' ', '_') == m.Groups[1].Value) is { } category ? KeepWhere("subject_category", category) : null),
    ];

    /// <summary>datasets.filter on one field's value.</summary>
    static DocsHook KeepWhere(string field, string value) => doc => doc[field] is JsonValue v && v.TryGetValue<string>(out var s) && s == value ? doc : null;

    /// <summary>Every hook Attune knows, as <c>folder/module.function</c>.</summary>
    public static IEnumerable<string> Known => Registry.Keys.Order(StringComparer.Ordinal);

    /// <summary>
    /// The equivalent of <c>!function <paramref name="qualified"/></c> written in <paramref name="declaringFile"/> for
    /// <paramref name="field"/>; one clear line when the module, the function or an equivalent is missing, or when the
    /// hook is of another kind than the field takes.
    /// </summary>
    public static Delegate Find(string declaringFile, string qualified, string field, Kind kind)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(declaringFile))!;
        int dot = qualified.LastIndexOf('.');
        if (dot <= 0 || dot == qualified.Length - 1)
            throw new AttuneException(declaringFile, field, $"!function {qualified}: expected module.function");
        var module = qualified[..dot].Replace('.', Path.DirectorySeparatorChar) + ".py";
        var function = qualified[(dot + 1)..];
        var moduleFile = Path.Combine(dir, module);
        if (!File.Exists(moduleFile))
            throw new AttuneException(declaringFile, field, $"!function {qualified}: {moduleFile} not found (the hook's module sits beside the YAML file that names it)");
        var source = File.ReadAllText(moduleFile);
        var folder = Path.GetFileName(dir);
        Entry? entry = null;
        // A module that makes its hooks in a loop (partial(process_docs, …) into globals()) defines them without a def.
        foreach (var family in Families)
            if (family.Folder.IsMatch(dir.Replace('\\', '/')) && source.Contains(family.ModuleMarker, StringComparison.Ordinal)
                && family.Function.Match(qualified) is { Success: true } m && family.Make(m, source) is { } made)
                entry = new Entry(Kind.ProcessDocs, made);
        if (entry is null && !Regex.IsMatch(source, $@"^(def|class)\s+{Regex.Escape(function)}\b", RegexOptions.Multiline))
            throw new AttuneException(declaringFile, field, $"!function {qualified}: {module} defines no {function}");
        if (entry is null && !Registry.TryGetValue($"{folder}/{qualified}", out entry))
            throw new AttuneException(declaringFile, field,
                $"the Python hook !function {qualified} ({folder}/{module}) has no built-in equivalent in Attune (known: {string.Join(", ", Known.Where(k => k.StartsWith(folder + "/", StringComparison.Ordinal)).DefaultIfEmpty("none in this folder"))})");
        if (entry.Kind != kind)
            throw new AttuneException(declaringFile, field, $"!function {qualified} is a {Describe(entry.Kind)} hook, not a {Describe(kind)} one");
        return entry.Function;
    }

    static string Describe(Kind kind) => kind switch
    {
        Kind.ProcessDocs => "process_docs",
        Kind.DocField => "doc_to_text/doc_to_target/doc_to_choice",
        Kind.ProcessResults => "process_results",
        Kind.Aggregation => "aggregation",
        _ => "metric",
    };

    // ---- helpers with Python's string semantics ----

    static string Field(JsonObject doc, string key) => doc[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s
        : throw new HookException($"the document has no text field \"{key}\"");

    static int IntField(JsonObject doc, string key) => doc[key] switch
    {
        JsonValue v when v.TryGetValue<int>(out var i) => i,
        JsonValue v when v.TryGetValue<string>(out var s) && int.TryParse(s, out var i) => i,
        _ => throw new HookException($"the document has no integer field \"{key}\""),
    };

    /// <summary>Python's <c>str.capitalize()</c>: the first character upper case, the rest lower case.</summary>
    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    static string LowerFirst(string s) => s.Length == 0 ? throw new HookException("an empty text where a sentence was expected") : char.ToLowerInvariant(s[0]) + s[1..];

    static JsonObject With(JsonObject doc, params (string Key, JsonNode? Value)[] fields)
    {
        var copy = (JsonObject)doc.DeepClone();
        foreach (var (k, v) in fields) copy[k] = v;
        return copy;
    }

    /// <summary>The WikiHow clean-up of HellaSwag-style text: trimmed, " [title]" as ". ", bracketed tags removed, one double space collapsed.</summary>
    static string CleanBrackets(string text)
    {
        text = text.Trim().Replace(" [title]", ". ");
        text = Regex.Replace(text, @"\[.*?\]", "");
        return text.Replace("  ", " ");
    }

    /// <summary>The harness's general detokenizer: spaces before n't, ')' , quotes and ' . , removed.</summary>
    static string Detokenize(string s)
    {
        s = s.Replace(" n't", "n't").Replace(" )", ")").Replace("( ", "(").Replace("\" ", "\"").Replace(" \"", "\"");
        return Regex.Replace(s, @" (['.,])", "$1");
    }

    static bool IsEmpty(JsonNode? node) => node is null || (node is JsonValue v && v.TryGetValue<string>(out var s) && s.Length == 0);

    // ---- process_docs ----

    static JsonObject? HellaSwagDoc(JsonObject doc)
    {
        var ctx = Field(doc, "ctx_a") + " " + Capitalize(Field(doc, "ctx_b"));
        var endings = doc["endings"] as JsonArray ?? throw new HookException("the document has no list \"endings\"");
        return With(doc,
            ("query", CleanBrackets(Field(doc, "activity_label") + ": " + ctx)),
            ("choices", new JsonArray(endings.Select(e => (JsonNode)CleanBrackets(e?.GetValue<string>() ?? "")).ToArray())),
            ("gold", IntField(doc, "label")));
    }

    static JsonObject? OkapiArcDoc(JsonObject doc)
    {
        var options = new[] { "option_a", "option_b", "option_c", "option_d", "option_e" }
            .Select(k => doc[k]).Where(o => !IsEmpty(o)).Select(o => (JsonNode)CleanBrackets(o!.GetValue<string>())).ToArray();
        int gold = Array.IndexOf(["A", "B", "C", "D", "E"], Field(doc, "answer"));
        if (gold < 0) throw new HookException($"answer \"{Field(doc, "answer")}\" is not one of A–E");
        return With(doc, ("query", "Question: " + CleanBrackets(Field(doc, "instruction")) + "\nAnswer:"), ("choices", new JsonArray(options)), ("gold", gold));
    }

    static JsonObject? ParaphraseDoc(JsonObject doc)
    {
        if (IsEmpty(doc["sentence1"]) || IsEmpty(doc["sentence2"])) return null;
        var first = Detokenize(Field(doc, "sentence1")).Trim();
        if (first.EndsWith('.') || first.EndsWith(',') || first.EndsWith(';')) first = first[..^1];
        return With(doc, ("sentence1", first), ("sentence2", LowerFirst(Detokenize(Field(doc, "sentence2")).Trim())));
    }

    static JsonObject? CopaEsDoc(JsonObject doc) =>
        With(doc, ("choice1", LowerFirst(Field(doc, "choice1"))), ("choice2", LowerFirst(Field(doc, "choice2"))));

    static JsonObject? NliDoc(JsonObject doc)
    {
        var premise = Detokenize(Field(doc, "premise")).Trim();
        if (premise.Length > 0 && premise[^1] is '.' or ',' or '!' or '?') premise = premise[..^1];
        var hypothesis = LowerFirst(Detokenize(Field(doc, "hypothesis")).Trim());
        if (!hypothesis.EndsWith('.')) hypothesis += ".";
        return With(doc, ("premise", premise), ("hypothesis", hypothesis));
    }

    // ---- doc_to_* ----

    static int Blank(JsonObject doc) => Field(doc, "sentence").IndexOf('_') is var i and >= 0 ? i
        : throw new HookException("the sentence has no blank \"_\"");

    static JsonNode? WinogradAnswer(JsonObject doc) => Field(doc, "answer") switch
    {
        "1" => 0,
        "2" => 1,
        var other => throw new HookException($"answer \"{other}\" is not 1 or 2"),
    };

    static JsonNode? WinogradRest(JsonObject doc) => Field(doc, "sentence")[(Blank(doc) + 1)..].Trim();

    static JsonNode? WinogradFillings(JsonObject doc)
    {
        var before = Field(doc, "sentence")[..Blank(doc)];
        return new JsonArray(before + Field(doc, "option1"), before + Field(doc, "option2"));
    }

    static string CopaChoice(string choice) => LowerFirst(choice);

    static JsonNode? CopaText(JsonObject doc)
    {
        var connector = Field(doc, "question") switch
        {
            "cause" => "because",
            "effect" => "therefore",
            var other => throw new HookException($"question \"{other}\" is not cause or effect"),
        };
        var premise = Field(doc, "premise").Trim();
        return premise[..Math.Max(0, premise.Length - 1)] + " " + connector;
    }

    static JsonNode? CopaTarget(JsonObject doc) => " " + CopaChoice(Field(doc, IntField(doc, "label") == 0 ? "choice1" : "choice2"));

    static JsonNode? CopaChoices(JsonObject doc) => new JsonArray(" " + CopaChoice(Field(doc, "choice1")), " " + CopaChoice(Field(doc, "choice2")));

    static JsonNode? LogiQaText(JsonObject doc, string passage, string question)
    {
        var sb = new StringBuilder("Passage: ").Append(Field(doc, passage)).Append('\n');
        sb.Append(string.Format(System.Globalization.CultureInfo.InvariantCulture, question, Field(doc, "question")));
        var options = doc["options"] as JsonArray ?? throw new HookException("the document has no list \"options\"");
        foreach (var (letter, option) in "ABCD".Zip(options)) sb.Append(letter).Append(". ").Append(option?.GetValue<string>()).Append('\n');
        return sb.Append("Answer:").ToString();
    }

    static JsonNode? LogiQaTarget(JsonObject doc) => "abcd".IndexOf(Field(doc, "label").Trim(), StringComparison.Ordinal) is var i and >= 0 && Field(doc, "label").Trim().Length == 1
        ? i : throw new HookException($"label \"{Field(doc, "label")}\" is not one of a–d");

    // ---- SQuAD's answer scores (transformers' squad_metrics), articles by language ----

    static readonly Regex EnglishArticles = new(@"\b(a|an|the)\b");
    static readonly Regex FrenchArticles = new(@"\b(un|une|des|le|la|les)\b");
    const string AsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /// <summary>Lower case, ASCII punctuation removed, articles removed, white space collapsed.</summary>
    static string SquadNormalize(string s, Regex articles)
    {
        var lower = s.ToLowerInvariant();
        var noPunct = new string(lower.Where(c => !AsciiPunctuation.Contains(c)).ToArray());
        return string.Join(' ', articles.Replace(noPunct, " ").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    static double SquadExact(string gold, string prediction, Regex articles) => SquadNormalize(gold, articles) == SquadNormalize(prediction, articles) ? 1 : 0;

    static double SquadF1(string gold, string prediction, Regex articles)
    {
        string[] Tokens(string s) => s.Length == 0 ? [] : SquadNormalize(s, articles).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return Metrics.TaskMetrics.TokenF1(Tokens(prediction), Tokens(gold));
    }

    static Dictionary<string, double[]> SquadResults(JsonObject doc, HookResponse response)
    {
        var reference = (doc["answers"]?["text"] as JsonArray)?.FirstOrDefault()?.GetValue<string>()
            ?? throw new HookException("the document has no answers.text");
        var prediction = response.Text ?? "";
        return new() { ["f1"] = [SquadF1(reference, prediction, EnglishArticles)], ["exact_match"] = [SquadExact(reference, prediction, EnglishArticles)] };
    }

    // ---- ROUGE-1 (Google's rouge_score, as `evaluate` runs it) ----

    static readonly Regex NotAlphanumeric = new("[^a-z0-9]+");
    static readonly Regex Spaces = new(" +");

    /// <summary>
    /// ROUGE-1 F-measure of a prediction against a reference with rouge_score's default tokenizer: lower case, every run
    /// of characters other than a–z and 0–9 a separator (accented letters too, as it does), no stemming.
    /// </summary>
    static double Rouge1(string reference, string prediction)
    {
        string[] Tokens(string s) => NotAlphanumeric.Replace(s.ToLowerInvariant(), " ").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var r = Tokens(reference);
        var p = Tokens(prediction);
        var counts = r.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        int overlap = p.GroupBy(t => t).Sum(g => Math.Min(g.Count(), counts.GetValueOrDefault(g.Key)));
        double precision = p.Length == 0 ? 0 : (double)overlap / p.Length, recall = r.Length == 0 ? 0 : (double)overlap / r.Length;
        return precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
    }

    // ---- WikiText ----

    static string WikitextDetokenize(string s)
    {
        s = s.Replace("s '", "s'");
        s = Regex.Replace(s, "/' [0-9]/", "/'[0-9]/");
        s = s.Replace(" @-@ ", "-").Replace(" @,@ ", ",").Replace(" @.@ ", ".");
        s = s.Replace(" : ", ": ").Replace(" ; ", "; ").Replace(" . ", ". ").Replace(" ! ", "! ").Replace(" ? ", "? ").Replace(" , ", ", ");
        s = Regex.Replace(s, @"\(\s*([^\)]*?)\s*\)", "($1)");
        s = Regex.Replace(s, @"\[\s*([^\]]*?)\s*\]", "[$1]");
        s = Regex.Replace(s, @"{\s*([^}]*?)\s*}", "{$1}");
        s = Regex.Replace(s, "\"\\s*([^\"]*?)\\s*\"", "\"$1\"");
        s = Regex.Replace(s, @"'\s*([^']*?)\s*'", "'$1'");
        s = s.Replace("= = = =", "====").Replace("= = =", "===").Replace("= =", "==");
        s = s.Replace(" \u00b0 ", "\u00b0").Replace(" \n", "\n").Replace("\n ", "\n").Replace(" N ", " 1 ").Replace(" 's", "'s");
        return s;
    }

    static Dictionary<string, double[]> WikitextResults(string original, HookResponse response)
    {
        double ll = response.Logprobs?[0] ?? throw new HookException("no log-likelihood for the document");
        double words = Regex.Split(original, @"\s+").Length, bytes = Encoding.UTF8.GetByteCount(original);
        return new() { ["word_perplexity"] = [ll, words], ["byte_perplexity"] = [ll, bytes], ["bits_per_byte"] = [ll, bytes] };
    }

    // ---- TruthfulQA ----

    static Dictionary<string, double[]> TruthfulMc2(JsonObject doc, HookResponse response, bool splitAtFirstFalse)
    {
        var labels = (doc["mc2_targets"]?["labels"] as JsonArray)?.Select(l => l!.GetValue<int>()).ToArray()
            ?? throw new HookException("the document has no mc2_targets.labels");
        var lls = response.Logprobs ?? throw new HookException("no log-likelihoods for the document");
        if (labels.Length != lls.Count) throw new HookException($"{labels.Length} labels for {lls.Count} choices");
        int firstFalse = Array.IndexOf(labels, 0);
        if (splitAtFirstFalse && firstFalse < 0) throw new HookException("mc2_targets.labels has no false answer");
        double total = lls.Sum(Math.Exp);
        double truth = lls.Where((_, i) => splitAtFirstFalse ? i < firstFalse : labels[i] == 1).Sum(Math.Exp);
        return new() { ["acc"] = [truth / total] };
    }
}

/// <summary>A document a hook cannot process (a field missing or of the wrong kind); the task names the document.</summary>
public sealed class HookException(string message) : Exception(message);
