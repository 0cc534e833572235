using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Tasks;

public enum OutputType { MultipleChoice, GenerateUntil }

/// <summary>
/// One step of a generation filter, as the harness defines them: regex (the match at <see cref="Select"/>
/// among all matches, negative counting from the end; its first non-empty capture group, or the whole
/// match without groups; stripped; <see cref="Fallback"/> when nothing matches), take_first, lowercase,
/// uppercase, remove_whitespace (leading white space).
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
/// output_type: multiple_choice       # or generate_until
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
/// Relative data paths are taken from the YAML file's folder. Python hooks (<c>!function</c>) are refused.
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
    public required JsonNode DocToText { get; init; }
    public required JsonNode DocToTarget { get; init; }
    public JsonNode? DocToChoice { get; init; }
    public string Description { get; init; } = "";
    public string TargetDelimiter { get; init; } = " ";
    public string FewshotDelimiter { get; init; } = "\n\n";
    public int NumFewshot { get; init; }
    public bool FirstNShots { get; init; }
    public ulong Seed { get; init; } = 1234;
    public IReadOnlyList<string> Until { get; init; } = [];
    public int MaxGenTokens { get; init; } = 256;
    public IReadOnlyList<MetricSpec> Metrics { get; init; } = [];
    public IReadOnlyList<FilterStep> Filters { get; init; } = [];

    static readonly HashSet<string> Known =
    [
        "task", "tag", "group", "dataset_path", "dataset_name", "dataset_kwargs", "test_split", "validation_split", "training_split",
        "fewshot_split", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "description", "target_delimiter",
        "fewshot_delimiter", "num_fewshot", "fewshot_config", "generation_kwargs", "metric_list", "filter_list", "metadata",
        "should_decontaminate", "doc_to_decontamination_query", "repeats", "lang", "seed", "task_alias",
    ];

    /// <summary>Reads a task file (its <c>include:</c> chain merged, nulls as not set): one task, or a list of tasks.</summary>
    public static IReadOnlyList<TaskConfig> Load(string path, DataSources? data = null) => TaskYaml.Load(path).Select(map => Parse(map, path, data)).ToList();

    /// <summary>A task from its merged mapping (<see cref="TaskYaml"/>); <paramref name="path"/> is the file that names it.</summary>
    public static TaskConfig Parse(YamlMappingNode root, string path, DataSources? data = null)
    {
        AttuneException Bad(YamlNode node, string field, string problem) => new(path, $"line {node.Start.Line}: {field}", problem);
        foreach (var (key, value) in root.Children)
        {
            if (!value.Tag.IsEmpty && value.Tag.IsLocal && value.Tag.Value == "!function")
                throw Bad(value, key.ToString(), $"the Python hook !function {(value as YamlScalarNode)?.Value} has no built-in equivalent in Attune");
            if (!Known.Contains(key.ToString())) throw Bad(key, key.ToString(), "is not a task field this subset of the harness's format reads");
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
            Resolve(Scalar(node, field)) is var file && File.Exists(file) ? file : throw Bad(node, field, $"{file}: file not found");

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

        var outputType = Text("output_type") switch
        {
            "multiple_choice" => OutputType.MultipleChoice,
            "generate_until" or null => OutputType.GenerateUntil,
            var other => throw Bad(Required("output_type"), "output_type", $"\"{other}\" is not multiple_choice or generate_until"),
        };
        var docToChoice = Get(root, "doc_to_choice") is { } c ? ToJson(c, path) : null;
        if (outputType == OutputType.MultipleChoice && docToChoice is null) throw new AttuneException(path, "doc_to_choice", "a multiple_choice task needs its choices");

        int numFewshot = Get(root, "num_fewshot") is { } nf ? Int(nf, "num_fewshot", 0) : 0;
        bool firstN = false;
        if (Get(root, "fewshot_config") is YamlMappingNode fc && Get(fc, "sampler") is { } sampler)
            firstN = Scalar(sampler, "fewshot_config.sampler") switch
            {
                "first_n" => true,
                "default" or "random" => false,
                var other => throw Bad(sampler, "fewshot_config.sampler", $"\"{other}\" is not default or first_n"),
            };

        var until = new List<string>();
        int maxGen = 256;
        if (Get(root, "generation_kwargs") is YamlMappingNode gen)
        {
            if (Get(gen, "until") is { } u)
                until.AddRange(u is YamlSequenceNode us ? us.Children.Select(x => Scalar(x, "until")) : [Scalar(u, "until")]);
            if (Get(gen, "max_gen_toks") is { } mg) maxGen = Int(mg, "max_gen_toks", 1);
            if (Get(gen, "do_sample") is { } ds && Scalar(ds, "do_sample") == "true")
                throw Bad(ds, "do_sample", "sampled generation is not supported in tasks (greedy only, as the harness's default)");
        }
        var fewshotDelimiter = Text("fewshot_delimiter") ?? "\n\n";
        if (outputType == OutputType.GenerateUntil && until.Count == 0) until.Add(fewshotDelimiter);

        var metrics = new List<MetricSpec>();
        if (Get(root, "metric_list") is YamlSequenceNode ml)
            foreach (var m in ml.Children)
            {
                if (m is not YamlMappingNode mm || Get(mm, "metric") is not { } metricName) throw Bad(m, "metric_list", "each entry needs a metric");
                var metric = Scalar(metricName, "metric");
                if (!TaskMetrics.Names.Contains(metric)) throw Bad(metricName, "metric", $"\"{metric}\" is not one of {string.Join(", ", TaskMetrics.Names)}");
                bool Flag(string f) => Get(mm, f) is { } n && Scalar(n, f) == "true";
                var regexes = Get(mm, "regexes_to_ignore") is YamlSequenceNode rs ? rs.Children.Select(x => Scalar(x, "regexes_to_ignore")).ToList() : null;
                metrics.Add(new MetricSpec(metric, Flag("ignore_case"), Flag("ignore_punctuation"), regexes));
            }
        if (metrics.Count == 0)
            metrics.AddRange(outputType == OutputType.MultipleChoice ? [new MetricSpec("acc"), new MetricSpec("acc_norm")] : [new MetricSpec("exact_match")]);
        foreach (var m in metrics)
            if (TaskMetrics.ForMultipleChoice.Contains(m.Name) != (outputType == OutputType.MultipleChoice))
                throw new AttuneException(path, "metric_list", $"{m.Name} does not apply to a {(outputType == OutputType.MultipleChoice ? "multiple_choice" : "generate_until")} task");

        var filters = new List<FilterStep>();
        if (Get(root, "filter_list") is YamlSequenceNode fl && fl.Children.Count > 0)
        {
            if (fl.Children.Count > 1) throw Bad(fl, "filter_list", "only one filter pipeline per task is supported");
            if (fl.Children[0] is not YamlMappingNode pipeline || Get(pipeline, "filter") is not YamlSequenceNode steps)
                throw Bad(fl, "filter_list", "needs a filter: list of steps");
            foreach (var step in steps.Children)
            {
                if (step is not YamlMappingNode sm || Get(sm, "function") is not { } fn) throw Bad(step, "filter", "each step needs a function");
                var function = Scalar(fn, "function");
                if (function is not ("regex" or "take_first" or "lowercase" or "uppercase" or "remove_whitespace"))
                    throw Bad(fn, "function", $"\"{function}\" is not one of regex, take_first, lowercase, uppercase, remove_whitespace");
                var pattern = Get(sm, "regex_pattern") is { } rp ? Scalar(rp, "regex_pattern") : null;
                if (function == "regex")
                {
                    if (pattern is null) throw Bad(step, "regex_pattern", "missing");
                    try { _ = new System.Text.RegularExpressions.Regex(pattern); }
                    catch (ArgumentException e) { throw Bad(step, "regex_pattern", e.Message); }
                }
                int group = Get(sm, "group_select") is { } gs
                    ? int.TryParse(Scalar(gs, "group_select"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var g) ? g : throw Bad(gs, "group_select", "must be an integer")
                    : 0;
                var fallback = Get(sm, "fallback") is { } fb ? Scalar(fb, "fallback") : "[invalid]";
                filters.Add(new FilterStep(function, pattern, group, fallback));
            }
        }

        var lang = Text("lang");
        if (lang is not null && lang is not ("en" or "fr" or "es")) throw Bad(Required("lang"), "lang", "must be en, fr or es");
        return new TaskConfig
        {
            Name = name,
            Source = path,
            Language = lang,
            DataFiles = files,
            EvalSplit = evalSplit,
            FewshotSplit = fewshotSplit,
            OutputType = outputType,
            DocToText = ToJson(Required("doc_to_text"), path),
            DocToTarget = ToJson(Required("doc_to_target"), path),
            DocToChoice = docToChoice,
            Description = Text("description") ?? "",
            TargetDelimiter = Text("target_delimiter") ?? " ",
            FewshotDelimiter = fewshotDelimiter,
            NumFewshot = numFewshot,
            FirstNShots = firstN,
            Seed = Get(root, "seed") is { } seed ? (ulong)Int(seed, "seed", 0) : 1234,
            Until = until,
            MaxGenTokens = maxGen,
            Metrics = metrics,
            Filters = filters,
        };
    }

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
