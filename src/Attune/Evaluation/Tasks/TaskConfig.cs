using System.Globalization;
using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Tasks;

public enum OutputType { MultipleChoice, GenerateUntil, Loglikelihood, LoglikelihoodRolling }

/// <summary>How few-shot examples are drawn: the harness's seeded Python sampler, its first_n, or Attune's per-item draw (the built-in suite).</summary>
public enum FewshotSampler { PerItem, Harness, FirstN }

/// <summary>A task field: a value (a document key, a Jinja template, or a literal), or a Python hook's built-in equivalent.</summary>
public sealed record TaskField(JsonNode? Value, TaskHooks.FieldHook? Hook = null, string? HookName = null)
{
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(value))]
    public static implicit operator TaskField?(JsonNode? value) => value is null ? null : new(value);
}

/// <summary>A named filter pipeline (the harness's filter_list entry); metrics are reported for each pipeline.</summary>
public sealed record FilterPipeline(string Name, IReadOnlyList<FilterStep> Steps);

/// <summary>
/// One step of a generation filter, as the harness defines them: regex (the match at <see cref="Select"/>
/// among all matches, negative counting from the end; its first non-empty capture group, or the whole
/// match without groups; stripped; <see cref="Fallback"/> when nothing matches), take_first, take_first_k
/// (<see cref="Select"/> responses), majority_vote, lowercase, uppercase, remove_whitespace (leading white space).
/// </summary>
public sealed record FilterStep(string Function, string? Pattern = null, int Select = 0, string Fallback = "[invalid]");

/// <summary>
/// A few-shot task in the subset of lm-evaluation-harness's YAML format that Attune reads, so task files
/// and data users already have work unchanged:
/// <code>
/// task: sentiment_en
/// dataset_path: json                 # json | csv, or a path to a .jsonl/.json/.csv file
/// dataset_kwargs:
///   data_files: {train: train.jsonl, test: test.jsonl}
/// test_split: test                   # or validation_split; few-shot examples from fewshot_split or training_split
/// output_type: multiple_choice       # or generate_until, loglikelihood, loglikelihood_rolling
/// doc_to_text: "Review: {{text}}\nSentiment:"
/// doc_to_target: label               # a field, a template, or an index
/// doc_to_choice: ["negative", "positive"]
/// description: ""
/// target_delimiter: " "
/// fewshot_delimiter: "\n\n"
/// num_fewshot: 5
/// fewshot_config: {sampler: first_n} # or default (seeded random shots per item)
/// generation_kwargs: {until: ["\n"], max_gen_toks: 32}
/// metric_list: [{metric: acc}, {metric: acc_norm}]
/// filter_list: [{name: answer, filter: [{function: regex, regex_pattern: "(\\d+)"}, {function: take_first}]}]
/// </code>
/// Relative data paths are taken from the YAML file's folder. Python hooks (<c>!function</c>) resolve to their
/// built-in equivalents (<see cref="TaskHooks"/>); one without an equivalent is refused by name.
/// </summary>
public sealed record TaskConfig
{
    public required string Name { get; init; }
    public required string Source { get; init; }
    /// <summary>The language of the task's text (Attune's field: en, fr, es), when known.</summary>
    public string? Language { get; init; }
    /// <summary>The files of each split the task reads (several for a sharded split).</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<string>> DataFiles { get; init; }
    public required string EvalSplit { get; init; }
    public string? FewshotSplit { get; init; }
    public required OutputType OutputType { get; init; }
    public required TaskField DocToText { get; init; }
    public required TaskField DocToTarget { get; init; }
    public TaskField? DocToChoice { get; init; }
    /// <summary>process_docs: maps (or drops) each document of every split before it is used.</summary>
    public TaskHooks.DocsHook? ProcessDocs { get; init; }
    /// <summary>process_results: a document's metric values from its responses, in place of the built-in metrics.</summary>
    public TaskHooks.ResultsHook? ProcessResults { get; init; }
    /// <summary>The name results are shown under (task_alias), and the task's version (metadata.version).</summary>
    public string? Alias { get; init; }
    public JsonNode? Version { get; init; }
    /// <summary>Few-shot examples written in the task file (fewshot_config.samples), in place of a split.</summary>
    public IReadOnlyList<JsonObject>? FewshotSamples { get; init; }
    /// <summary>Generations per document (repeats); the filters combine them.</summary>
    public int Repeats { get; init; } = 1;
    public string Description { get; init; } = "";
    /// <summary>gen_prefix: text that starts the answer (a document key or a template), after the question and in every shot.</summary>
    public string? GenPrefix { get; init; }
    public string TargetDelimiter { get; init; } = " ";
    public string FewshotDelimiter { get; init; } = "\n\n";
    public int NumFewshot { get; init; }
    public FewshotSampler Sampler { get; init; } = FewshotSampler.PerItem;
    public ulong Seed { get; init; } = 1234;
    public IReadOnlyList<string> Until { get; init; } = [];
    public int MaxGenTokens { get; init; } = 256;
    public IReadOnlyList<MetricSpec> Metrics { get; init; } = [];
    public IReadOnlyList<FilterPipeline> FilterPipelines { get; init; } = [];
    /// <summary>The harness's output_type name.</summary>
    public string OutputTypeName => HarnessName(OutputType);

    public static string HarnessName(OutputType type) => type switch
    {
        OutputType.MultipleChoice => "multiple_choice",
        OutputType.Loglikelihood => "loglikelihood",
        OutputType.LoglikelihoodRolling => "loglikelihood_rolling",
        _ => "generate_until",
    };

    static readonly HashSet<string> Known =
    [
        "task", "tag", "group", "dataset_path", "dataset_name", "dataset_kwargs", "test_split", "validation_split", "training_split",
        "fewshot_split", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "description", "target_delimiter",
        "fewshot_delimiter", "num_fewshot", "fewshot_config", "generation_kwargs", "metric_list", "filter_list", "metadata",
        "should_decontaminate", "doc_to_decontamination_query", "repeats", "lang", "seed", "task_alias", "process_docs", "process_results",
        "unsafe_code", "gen_prefix",
    ];

    /// <summary>Fields of the harness's format that Attune does not implement, and what each is, for the one-line refusal.</summary>
    static readonly Dictionary<string, string> Unsupported = new()
    {
        ["use_prompt"] = "promptsource prompts (use_prompt)",
        ["doc_to_image"] = "image inputs (doc_to_image)",
        ["doc_to_audio"] = "audio inputs (doc_to_audio)",
        ["custom_dataset"] = "a Python data set loader (custom_dataset)",
        ["class"] = "a Python task class (class:)",
    };

    /// <summary>Reads a task file (its <c>include:</c> chain merged, nulls as not set): one task, or a list of tasks.</summary>
    public static IReadOnlyList<TaskConfig> Load(string path, DataSources? data = null) => TaskYaml.Load(path).Select(map => Parse(map, path, data)).ToList();

    /// <summary>A task from its merged mapping (<see cref="TaskYaml"/>); <paramref name="path"/> is the file that names it.</summary>
    public static TaskConfig Parse(YamlMappingNode root, string path, DataSources? data = null)
    {
        AttuneException Bad(YamlNode node, string field, string problem) => new(path, $"line {node.Start.Line}: {field}", problem);
        foreach (var (key, value) in root.Children)
        {
            var field = key.ToString();
            if (Unsupported.TryGetValue(field, out var what)) throw Bad(key, field, $"uses {what}, which Attune does not support");
            if (!Known.Contains(field)) throw Bad(key, field, "is not a task field this subset of the harness's format reads");
            if (TaskYaml.IsHook(value) && field is not ("process_docs" or "process_results" or "doc_to_text" or "doc_to_target" or "doc_to_choice"))
                throw Bad(value, field, $"the Python hook !function {(value as YamlScalarNode)?.Value} is not supported in {field}");
        }
        YamlNode? Get(YamlMappingNode map, string key) => TaskYaml.Get(map, key);
        string Scalar(YamlNode node, string field) => node is YamlScalarNode s && s.Value is not null ? s.Value : throw Bad(node, field, "must be a single value");
        string? Text(string field) => Get(root, field) is { } n ? Scalar(n, field) : null;
        int Int(YamlNode node, string field, int min) =>
            int.TryParse(Scalar(node, field), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min ? v : throw Bad(node, field, $"must be an integer ≥ {min}");
        YamlNode Required(string field) => Get(root, field) ?? throw new AttuneException(path, field, "missing");

        var name = Text("task") ?? throw new AttuneException(path, "task", "missing (every task needs a name)");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string Resolve(string file) => Path.GetFullPath(Path.Combine(dir, file));
        string DataFile(YamlNode node, string field) =>
            Scalar(node, field) is var given && Regex.IsMatch(given, "^[a-z][a-z0-9+]*://", RegexOptions.IgnoreCase)
                ? throw Bad(node, field, $"{given}: a remote data file (Attune reads data from disk; download it and name the local file)")
                : Resolve(given) is var file && File.Exists(file) ? file : throw Bad(node, field, $"{file}: file not found");

        // Data: dataset_path json/csv/parquet with dataset_kwargs.data_files, a file path, or a Hub data set on disk.
        var files = new Dictionary<string, IReadOnlyList<string>>();
        var datasetPath = Text("dataset_path") ?? throw new AttuneException(path, "dataset_path", "missing");
        var evalSplit = Text("test_split") ?? Text("validation_split");
        // Few-shot examples as the harness picks them: fewshot_split, else the training, validation or test split.
        var fewshotSplit = Text("fewshot_split") ?? Text("training_split") ?? Text("validation_split");
        if (Get(root, "dataset_kwargs") is YamlMappingNode kwargs && Get(kwargs, "data_files") is { } dataFiles)
        {
            switch (dataFiles)
            {
                case YamlScalarNode one: files["train"] = [DataFile(one, "data_files")]; break;
                case YamlMappingNode bySplit:
                    foreach (var (split, file) in bySplit.Children)
                        files[split.ToString()] = file is YamlSequenceNode shards
                            ? shards.Children.Select(f => DataFile(f, $"data_files.{split}")).ToList()
                            : [DataFile(file, $"data_files.{split}")];
                    break;
                default: throw Bad(dataFiles, "data_files", "must be a file or a mapping of split to file");
            }
        }
        else if (datasetPath is "json" or "csv" or "parquet") throw new AttuneException(path, "dataset_kwargs.data_files", $"dataset_path {datasetPath} needs data files");
        else if (File.Exists(Resolve(datasetPath))) files[evalSplit ?? "test"] = [Resolve(datasetPath)];
        else
        {
            var config = Text("dataset_name");
            var sources = data ?? DataSources.Default;
            if (evalSplit is null) throw new AttuneException(path, "test_split", "missing (which split is evaluated?)");
            files[evalSplit] = TaskData.FindSplit(datasetPath, config, evalSplit, sources, path);
            // The few-shot split is read when it is on disk; a zero-shot task does not need it.
            if (fewshotSplit is not null && fewshotSplit != evalSplit)
            {
                try { files[fewshotSplit] = TaskData.FindSplit(datasetPath, config, fewshotSplit, sources, path); }
                catch (AttuneException) when (!(Get(root, "num_fewshot") is { } n && n is YamlScalarNode { Value: not "0" })) { fewshotSplit = null; }
            }
        }

        evalSplit ??= files.Count == 1 ? files.Keys.Single() : throw new AttuneException(path, "test_split", "missing (which split is evaluated?)");
        if (fewshotSplit is not null && !files.ContainsKey(fewshotSplit) && Text("fewshot_split") is null && Text("training_split") is null) fewshotSplit = null;
        foreach (var split in new[] { evalSplit, fewshotSplit }.OfType<string>())
            if (!files.ContainsKey(split)) throw new AttuneException(path, "data_files", $"no file for split \"{split}\" (have: {string.Join(", ", files.Keys)})");

        Delegate Hook(YamlNode node, string field, TaskHooks.Kind kind) =>
            TaskHooks.Find(TaskYaml.HookFile(node) ?? path, (node as YamlScalarNode)?.Value ?? "", field, kind);
        TaskField? Field(string field)
        {
            if (Get(root, field) is not { } node) return null;
            return TaskYaml.IsHook(node)
                ? new TaskField(null, (TaskHooks.FieldHook)Hook(node, field, TaskHooks.Kind.DocField), ((YamlScalarNode)node).Value)
                : new TaskField(ToJson(node, path));
        }

        var outputType = Text("output_type") switch
        {
            "multiple_choice" => OutputType.MultipleChoice,
            "generate_until" or null => OutputType.GenerateUntil,
            "loglikelihood" => OutputType.Loglikelihood,
            "loglikelihood_rolling" => OutputType.LoglikelihoodRolling,
            var other => throw Bad(Required("output_type"), "output_type", $"\"{other}\" is not multiple_choice, generate_until, loglikelihood or loglikelihood_rolling"),
        };
        var docToChoice = Field("doc_to_choice");
        if (outputType == OutputType.MultipleChoice && docToChoice is null) throw new AttuneException(path, "doc_to_choice", "a multiple_choice task needs its choices");

        int numFewshot = Get(root, "num_fewshot") is { } nf ? Int(nf, "num_fewshot", 0) : 0;
        var sampler = FewshotSampler.Harness;
        List<JsonObject>? samples = null;
        if (Get(root, "fewshot_config") is YamlMappingNode fc)
            foreach (var (k, option) in fc.Children)
            {
                if (TaskYaml.IsNull(option)) continue;
                switch (k.ToString())
                {
                    case "sampler":
                        sampler = Scalar(option, "fewshot_config.sampler") switch
                        {
                            "first_n" => FewshotSampler.FirstN,
                            "default" => FewshotSampler.Harness,
                            var other => throw Bad(option, "fewshot_config.sampler", $"\"{other}\" is not default or first_n"),
                        };
                        break;
                    case "samples":
                        if (TaskYaml.IsHook(option)) throw Bad(option, "fewshot_config.samples", $"the Python hook !function {(option as YamlScalarNode)?.Value} is not supported (write the examples in the file)");
                        samples = option is YamlSequenceNode list
                            ? list.Children.Select(x => ToJson(x, path) as JsonObject ?? throw Bad(x, "fewshot_config.samples", "each example is a mapping of fields")).ToList()
                            : throw Bad(option, "fewshot_config.samples", "must be a list of examples");
                        break;
                    default: throw Bad(k, $"fewshot_config.{k}", "is not supported (Attune reads fewshot_config.sampler and fewshot_config.samples)");
                }
            }

        var until = new List<string>();
        int maxGen = 256;
        if (Get(root, "generation_kwargs") is YamlMappingNode gen)
        {
            if (Get(gen, "until") is { } u)
                until.AddRange(u is YamlSequenceNode us ? us.Children.Select(x => Scalar(x, "until")) : [Scalar(u, "until")]);
            if (Get(gen, "max_gen_toks") is { } mg) maxGen = Int(mg, "max_gen_toks", 1);
            if (Get(gen, "do_sample") is { } ds && Scalar(ds, "do_sample") is "true" or "True")
                throw Bad(ds, "do_sample", "sampled generation is not supported in tasks (greedy only, as the harness's default)");
        }
        var fewshotDelimiter = Text("fewshot_delimiter") ?? "\n\n";
        if (outputType == OutputType.GenerateUntil && until.Count == 0) until.Add(fewshotDelimiter);

        var processResults = Get(root, "process_results") is { } pr
            ? TaskYaml.IsHook(pr) ? (TaskHooks.ResultsHook)Hook(pr, "process_results", TaskHooks.Kind.ProcessResults)
                : throw Bad(pr, "process_results", "must be a Python hook (!function module.name)")
            : null;
        var metrics = new List<MetricSpec>();
        if (Get(root, "metric_list") is YamlSequenceNode ml)
            foreach (var m in ml.Children)
            {
                if (m is not YamlMappingNode mm || Get(mm, "metric") is not { } metricNode) throw Bad(m, "metric_list", "each entry needs a metric");
                string metric;
                Func<string, string, double>? function = null;
                if (TaskYaml.IsHook(metricNode))
                {
                    var hook = (TaskHooks.MetricHook)Hook(metricNode, "metric", TaskHooks.Kind.Metric);
                    function = (prediction, reference) => hook(prediction, reference);
                    metric = Scalar(metricNode, "metric").Split('.')[^1];
                }
                else metric = Scalar(metricNode, "metric");
                if (function is null && processResults is null && !MetricsFor(outputType).Contains(metric))
                    throw Bad(metricNode, "metric", $"\"{metric}\" is not a {HarnessName(outputType)} metric Attune computes ({string.Join(", ", MetricsFor(outputType))})");
                bool Flag(string f) => Get(mm, f) is { } n && Scalar(n, f) is "true" or "True";
                var regexes = Get(mm, "regexes_to_ignore") is YamlSequenceNode rs ? rs.Children.Select(x => Scalar(x, "regexes_to_ignore")).ToList() : null;
                var aggregation = Get(mm, "aggregation") is not { } a ? null
                    : TaskYaml.IsHook(a) ? ((TaskHooks.AggregationHook)Hook(a, "aggregation", TaskHooks.Kind.Aggregation))()
                    : Scalar(a, "aggregation");
                if (aggregation is not (null or "mean" or "perplexity" or "weighted_perplexity" or "bits_per_byte" or "f1" or "mcc" or "matthews_corrcoef" or "brier_score" or "bleu" or "chrf"))
                    throw Bad(Get(mm, "aggregation")!, "aggregation", $"\"{aggregation}\" is not an aggregation Attune computes (mean, perplexity, weighted_perplexity, bits_per_byte, f1, mcc, brier_score, bleu, chrf)");
                bool? higher = Get(mm, "higher_is_better") is { } h ? Scalar(h, "higher_is_better") is "true" or "True" : null;
                foreach (var option in mm.Children.Keys.Select(x => x.ToString()))
                    if (option is not ("metric" or "aggregation" or "higher_is_better" or "ignore_case" or "ignore_punctuation" or "regexes_to_ignore" or "average" or "hf_evaluate"))
                        throw Bad(mm, $"metric_list.{option}", $"is not a metric option Attune reads");
                metrics.Add(new MetricSpec(metric, Flag("ignore_case"), Flag("ignore_punctuation"), regexes) { Function = function, Aggregation = aggregation, HigherIsBetter = higher });
            }
        if (metrics.Count == 0)
            metrics.AddRange(outputType switch
            {
                OutputType.MultipleChoice => [new MetricSpec("acc"), new MetricSpec("acc_norm")],
                OutputType.Loglikelihood => [new MetricSpec("perplexity"), new MetricSpec("acc")],
                OutputType.LoglikelihoodRolling => [new MetricSpec("word_perplexity"), new MetricSpec("byte_perplexity"), new MetricSpec("bits_per_byte")],
                _ => [new MetricSpec("exact_match")],
            });

        var pipelines = new List<FilterPipeline>();
        if (Get(root, "filter_list") is YamlSequenceNode fl)
            foreach (var entry in fl.Children)
            {
                if (entry is not YamlMappingNode pipeline || Get(pipeline, "filter") is not YamlSequenceNode steps)
                    throw Bad(entry, "filter_list", "each pipeline needs a filter: list of steps");
                var pipelineName = Get(pipeline, "name") is { } pn ? Scalar(pn, "filter_list.name") : "none";
                if (pipelines.Any(p => p.Name == pipelineName)) throw Bad(entry, "filter_list.name", $"two pipelines are named \"{pipelineName}\"");
                pipelines.Add(new FilterPipeline(pipelineName, steps.Children.Select(ParseStep).ToList()));
            }
        FilterStep ParseStep(YamlNode step)
        {
            if (step is not YamlMappingNode sm || Get(sm, "function") is not { } fn) throw Bad(step, "filter", "each step needs a function");
            if (TaskYaml.IsHook(fn)) throw Bad(fn, "function", $"the Python filter !function {(fn as YamlScalarNode)?.Value} has no built-in equivalent in Attune");
            var function = Scalar(fn, "function");
            if (function is not ("regex" or "take_first" or "take_first_k" or "majority_vote" or "lowercase" or "uppercase" or "remove_whitespace"))
                throw Bad(fn, "function", $"the filter \"{function}\" is not one of regex, take_first, take_first_k, majority_vote, lowercase, uppercase, remove_whitespace");
            var pattern = Get(sm, "regex_pattern") is { } rp ? Scalar(rp, "regex_pattern") : null;
            if (function == "regex")
            {
                pattern ??= @"#### (\-?[0-9\.\,]+)"; // the harness's default pattern
                try { _ = new System.Text.RegularExpressions.Regex(pattern); }
                catch (ArgumentException e) { throw Bad(step, "regex_pattern", e.Message); }
            }
            int select = Get(sm, function == "take_first_k" ? "k" : "group_select") is { } gs
                ? int.TryParse(Scalar(gs, "group_select"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var g) ? g : throw Bad(gs, function == "take_first_k" ? "k" : "group_select", "must be an integer")
                : function == "take_first_k" ? throw Bad(step, "k", "take_first_k needs k") : 0;
            var fallback = Get(sm, "fallback") is { } fb ? Scalar(fb, "fallback") : "[invalid]";
            return new FilterStep(function, pattern, select, fallback);
        }

        var lang = Text("lang");
        if (lang is not null && lang is not ("en" or "fr" or "es")) throw Bad(Required("lang"), "lang", "must be en, fr or es");
        var docToText = Field("doc_to_text") ?? (outputType == OutputType.LoglikelihoodRolling ? new TaskField(JsonValue.Create("")) : throw new AttuneException(path, "doc_to_text", "missing"));
        return new TaskConfig
        {
            Name = name,
            Source = path,
            Language = lang,
            DataFiles = files,
            EvalSplit = evalSplit,
            FewshotSplit = fewshotSplit,
            OutputType = outputType,
            DocToText = docToText,
            DocToTarget = Field("doc_to_target") ?? throw new AttuneException(path, "doc_to_target", "missing"),
            DocToChoice = docToChoice,
            ProcessDocs = Get(root, "process_docs") is { } pd
                ? TaskYaml.IsHook(pd) ? (TaskHooks.DocsHook)Hook(pd, "process_docs", TaskHooks.Kind.ProcessDocs) : throw Bad(pd, "process_docs", "must be a Python hook (!function module.name)")
                : null,
            ProcessResults = processResults,
            Alias = Text("task_alias"),
            Version = Get(root, "metadata") is YamlMappingNode meta && Get(meta, "version") is YamlScalarNode ver
                ? double.TryParse(ver.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? JsonValue.Create(v) : JsonValue.Create(ver.Value) : null,
            FewshotSamples = samples,
            Repeats = Get(root, "repeats") is { } rep ? Int(rep, "repeats", 1) : 1,
            Description = Text("description") ?? "",
            GenPrefix = Text("gen_prefix"),
            TargetDelimiter = Text("target_delimiter") ?? " ",
            FewshotDelimiter = fewshotDelimiter,
            NumFewshot = numFewshot,
            Sampler = sampler,
            Seed = Get(root, "seed") is { } seed ? (ulong)Int(seed, "seed", 0) : 1234,
            Until = until,
            MaxGenTokens = maxGen,
            Metrics = metrics,
            FilterPipelines = pipelines,
        };
    }

    /// <summary>The built-in metrics of each output type, named as the harness names them.</summary>
    public static IReadOnlyList<string> MetricsFor(OutputType type) => type switch
    {
        OutputType.MultipleChoice => ["acc", "acc_norm", "acc_bytes", "mcc", "f1", "brier_score"],
        OutputType.Loglikelihood => ["perplexity", "acc"],
        OutputType.LoglikelihoodRolling => ["word_perplexity", "byte_perplexity", "bits_per_byte"],
        _ => ["exact_match", "f1", "chrf", "bleu"],
    };

    /// <summary>Deepest nesting of a field's value; an alias that refers to its own anchor would otherwise nest forever.</summary>
    const int MaxNesting = 64;

    /// <summary>A YAML value as JSON: plain scalars that read as integers become numbers, quoted ones stay text.</summary>
    static JsonNode ToJson(YamlNode node, string path, int depth = 0)
    {
        if (depth > MaxNesting)
            throw new AttuneException(path, $"line {node.Start.Line}", $"value nested more than {MaxNesting} deep (or an alias inside its own anchor)");
        return node switch
        {
            YamlScalarNode s when s.Style == ScalarStyle.Plain && long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) => JsonValue.Create(i),
            YamlScalarNode s => JsonValue.Create(s.Value ?? ""),
            YamlSequenceNode seq => new JsonArray(seq.Children.Select(c => (JsonNode?)ToJson(c, path, depth + 1)).ToArray()),
            YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(kv.Key.ToString(), (JsonNode?)ToJson(kv.Value, path, depth + 1)))),
            _ => JsonValue.Create(""),
        };
    }
}
