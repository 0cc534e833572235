using System.Text.Json.Nodes;
using Attune.Evaluation.Tasks;
using Attune.Tests.Cli;
using YamlDotNet.RepresentationModel;

namespace Attune.Tests.Evaluation;

/// <summary>Finding tasks as lm-evaluation-harness does: include chains, YAML nulls, task/group/tag names under --include-path.</summary>
public class TaskIndexTests
{
    static readonly string HarnessTasks = Path.Combine(Repo.Root, "..", "shared", "peers", "lm-eval-tasks");

    static string? Field(YamlMappingNode map, string key) => (TaskYaml.Get(map, key) as YamlScalarNode)?.Value;

    [Fact]
    public void Include_chains_of_the_harness_merge_with_the_including_file_winning()
    {
        // arc_challenge.yaml is three lines: include arc_easy.yaml, its own task name and data set config.
        var arc = TaskYaml.Load(Path.Combine(HarnessTasks, "arc", "arc_challenge.yaml")).Single();
        Assert.Equal("arc_challenge", Field(arc, "task"));
        Assert.Equal("ARC-Challenge", Field(arc, "dataset_name"));
        Assert.Equal("allenai/ai2_arc", Field(arc, "dataset_path"));
        Assert.Equal("Question: {{question}}\nAnswer:", Field(arc, "doc_to_text"));
        Assert.Null(TaskYaml.Get(arc, "include"));
        // xnli_fr includes a template whose task, dataset_name, doc_to_text and doc_to_choice are null: not set.
        var xnli = TaskYaml.Load(Path.Combine(HarnessTasks, "xnli", "xnli_fr.yaml")).Single();
        Assert.Equal(("xnli_fr", "fr", "facebook/xnli", "label"), (Field(xnli, "task"), Field(xnli, "dataset_name"), Field(xnli, "dataset_path"), Field(xnli, "doc_to_target")));
        Assert.Equal("", Field(xnli, "doc_to_text")); // a quoted empty string is a value, not a null
        Assert.StartsWith("{{[premise+", Field(xnli, "doc_to_choice"));
    }

    [Fact]
    public void A_null_unsets_what_an_included_file_set_and_a_cycle_is_named()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["base_yaml"], "num_fewshot: 5\ndescription: hello\ntask: null\n");
        File.WriteAllText(tmp["t.yaml"], "include: base_yaml\ntask: t\nnum_fewshot: null\nfewshot_split: ~\n");
        var t = TaskYaml.Load(tmp["t.yaml"]).Single();
        Assert.Null(TaskYaml.Get(t, "num_fewshot"));
        Assert.Null(TaskYaml.Get(t, "fewshot_split"));
        Assert.Equal("hello", Field(t, "description"));
        File.WriteAllText(tmp["a.yaml"], "include: b.yaml\ntask: a\n");
        File.WriteAllText(tmp["b.yaml"], "include: a.yaml\n");
        var e = Assert.Throws<AttuneException>(() => TaskYaml.Load(tmp["a.yaml"]));
        Assert.Contains("a.yaml → b.yaml → a.yaml", e.Message);
    }

    [Fact]
    public void The_harness_folders_index_tasks_groups_and_tags_by_name()
    {
        var index = TaskIndex.Build([HarnessTasks]);
        foreach (var task in new[] { "arc_easy", "arc_challenge", "xnli_fr", "xnli_es", "paws_fr", "paws_es", "hellaswag", "lambada_openai", "gsm8k", "winogrande", "piqa" })
            Assert.Contains(task, index.TaskNames);
        Assert.Contains("xnli", index.GroupNames);
        Assert.Contains("ai2_arc", index.TagNames);
    }

    /// <summary>Two local tasks, a tag and a group over them in one folder (data as JSON Lines beside them).</summary>
    static void WriteFolder(TempDir tmp)
    {
        Directory.CreateDirectory(tmp["tasks"]);
        File.WriteAllLines(tmp["tasks/data.jsonl"], new[] { ("2 + 2", "4"), ("3 + 4", "7") }
            .Select(x => new JsonObject { ["q"] = x.Item1, ["a"] = x.Item2 }.ToJsonString()));
        File.WriteAllText(tmp["tasks/_template_yaml"], """
            dataset_path: json
            dataset_kwargs:
              data_files: {test: data.jsonl}
            test_split: test
            output_type: generate_until
            doc_to_target: "{{a}}"
            generation_kwargs: {until: ["\n"], max_gen_toks: 4}
            fewshot_split: null
            tag: [sums]
            """);
        File.WriteAllText(tmp["tasks/sum_en.yaml"], "include: _template_yaml\ntask: sum_en\ndoc_to_text: \"{{q}} =\"\n");
        File.WriteAllText(tmp["tasks/sum_fr.yaml"], "include: _template_yaml\ntask: sum_fr\ndoc_to_text: \"{{q}} font\"\n");
        File.WriteAllText(tmp["tasks/_sums.yaml"], "group: all_sums\ntask: [sum_en, sums]\naggregate_metric_list:\n  - metric: exact_match\n    weight_by_size: true\n");
    }

    [Fact]
    public void Task_group_and_tag_names_resolve_to_their_tasks_each_once()
    {
        using var tmp = new TempDir();
        WriteFolder(tmp);
        Assert.Equal(["sum_fr"], TaskList.Resolve("sum_fr", [tmp["tasks"]]).Select(t => t.Config.Name));
        Assert.Equal(["sum_en", "sum_fr"], TaskList.Resolve("sums", [tmp["tasks"]]).Select(t => t.Config.Name));
        var groups = new List<TaskGroup>();
        Assert.Equal(["sum_en", "sum_fr"], TaskList.Resolve("all_sums", [tmp["tasks"]], groups).Select(t => t.Config.Name));
        var g = Assert.Single(groups);
        Assert.Equal(("all_sums", true), (g.Name, g.Aggregates.Single().WeightBySize));
        // A group file given as a path finds its members beside it.
        Assert.Equal(2, TaskList.Resolve(tmp["tasks/_sums.yaml"]).Count);
        var e = Assert.Throws<AttuneException>(() => TaskList.Resolve("sum_de", [tmp["tasks"]]));
        Assert.Contains("no task, group or tag named \"sum_de\"", e.Message);
        Assert.Contains("sum_en", e.Message); // the near names
    }

    [Fact]
    public void Eval_icl_runs_a_group_by_name_from_an_include_path()
    {
        using var tmp = new TempDir();
        WriteFolder(tmp);
        Attune.Modeling.ModelInitializer.Write(tmp["m"], Attune.Modeling.Presets.Find("tiny", null).Config, seed: 1, Attune.Tensors.DType.F32);
        var (code, text, err) = CliRunner.Run("", "eval", "icl", "--model", tmp["m"], "--tasks", "all_sums", "--include-path", tmp["tasks"], "--no-cache");
        Assert.True(code == 0, err);
        Assert.Contains("sum_en", text);
        Assert.Contains("sum_fr", text);
        (code, _, err) = CliRunner.Run("", "eval", "icl", "--model", tmp["m"], "--tasks", "all_sums", "--no-cache");
        Assert.Equal(2, code);
        Assert.Contains("--include-path", err);

        // The harness's results file and samples, where its --output_path puts them.
        (code, _, err) = CliRunner.Run("", "eval", "icl", "--model", tmp["m"], "--tasks", "all_sums", "--include-path", tmp["tasks"], "--no-cache",
            "--output-path", tmp["out"], "--log-samples", "--system-instruction", "Add.");
        Assert.True(code == 0, err);
        var folder = Directory.GetDirectories(tmp["out"]).Single();
        var results = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Directory.GetFiles(folder, "results_*.json").Single()))!;
        Assert.NotNull(results["groups"]!["all_sums"]);
        Assert.Equal("Add.", (string)results["system_instruction"]!);
        Assert.Equal(2, Directory.GetFiles(folder, "samples_sum_*.jsonl").Length);

        // Through the model's chat template (the tiny model's tokenizer has one), shots as turns by default.
        (code, _, err) = CliRunner.Run("", "eval", "icl", "--model", tmp["m"], "--tasks", "all_sums", "--include-path", tmp["tasks"], "--no-cache",
            "--output-path", tmp["chat.json"], "--apply-chat-template");
        Assert.True(code == 0, err);
        var chat = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Directory.GetFiles(tmp.Path, "chat_*.json").Single()))!;
        Assert.True((bool)chat["fewshot_as_multiturn"]!);
        // The template's text and its SHA-256, as the harness records them.
        var template = Attune.Text.TokenizerConfig.Load(Path.Combine(tmp["m"], "tokenizer_config.json")).ChatTemplate;
        Assert.Equal((string?)template, (string)chat["chat_template"]!);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes((string)chat["chat_template"]!))),
            (string)chat["chat_template_sha"]!);

        // Bad combinations are one line each, and nothing is written.
        foreach (var (args, expected) in new[]
        {
            (new[] { "--fewshot-as-multiturn", "--output-path", tmp["bad"] }, "needs --apply-chat-template"),
            (["--fewshot-as-multiturn", "true", "--output-path", tmp["bad"]], "needs --apply-chat-template"),
            (["--log-samples"], "needs --output-path"),
        })
        {
            (code, _, err) = CliRunner.Run("", ["eval", "icl", "--model", tmp["m"], "--tasks", "all_sums", "--include-path", tmp["tasks"], "--no-cache", .. args]);
            Assert.Equal(2, code);
            Assert.Contains(expected, err);
            Assert.Single(err.Trim().Split('\n'));
            Assert.False(Directory.Exists(tmp["bad"]));
        }
    }
}
