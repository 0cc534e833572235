using System.Text.Json.Nodes;
using Attune.Evaluation.Tasks;
using Attune.Experiments;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tests.Formats;
using Attune.Tests.Text.Templates;
using Attune.Text;

namespace Attune.Tests.Mutation;

/// <summary>Each input the mutation harness found crashing a parser, kept as a plain test of the clean error it now gives.</summary>
public class FoundByMutationTests(TinyCheckpoint tiny) : IClassFixture<TinyCheckpoint>
{
    static AttuneException Refused(Action load, string path)
    {
        var e = Assert.Throws<AttuneException>(load);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain("\n", e.Message);
        return e;
    }

    [Fact]
    public void Num_hidden_layers_far_past_the_weights_is_one_problem_not_billions()
    {
        using var tmp = new TempDir();
        var dir = tiny.CopyTo(tmp);
        var config = Path.Combine(dir, Checkpoint.ConfigFileName);
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["num_hidden_layers"] = int.MaxValue;
        File.WriteAllText(config, json.ToJsonString());
        var e = Refused(() => Checkpoint.Open(dir).Dispose(), dir);
        Assert.Contains($"num_hidden_layers {int.MaxValue} but the weights hold 2 layers", e.Message);
    }

    [Theory]
    [InlineData("{\"bos_token\": \"a\", \"bos_token\": \"b\"}", Checkpoint.TokenizerConfigFileName)]
    [InlineData("[1, 2]", Checkpoint.GenerationConfigFileName)]
    [InlineData("{\"eos_token_id\": 1, \"eos_token_id\": 2}", Checkpoint.GenerationConfigFileName)]
    public void A_repeated_member_or_a_root_of_the_wrong_type_is_a_clean_error(string text, string name)
    {
        using var tmp = new TempDir();
        var dir = tiny.CopyTo(tmp);
        File.WriteAllText(Path.Combine(dir, name), text);
        Refused(() => LanguageModel.Load(dir).Dispose(), Path.Combine(dir, name));
    }

    [Fact]
    public void A_vocabulary_id_that_is_not_a_number_or_is_huge_is_a_clean_error()
    {
        using var tmp = new TempDir();
        var dir = tiny.CopyTo(tmp);
        var file = Path.Combine(dir, Checkpoint.TokenizerFileName);
        var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        var vocab = json["model"]!["vocab"]!.AsObject();
        var first = vocab.First().Key;
        foreach (var bad in new JsonNode?[] { new JsonArray(), JsonValue.Create(true), JsonValue.Create(2_000_000_000) })
        {
            vocab[first] = bad;
            File.WriteAllText(file, json.ToJsonString());
            Assert.Contains("model.vocab", Refused(() => Tokenizer.Load(dir), file).Message);
        }
    }

    [Fact]
    public void A_yaml_alias_inside_its_own_anchor_is_a_clean_error()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["test.jsonl"], "{\"text\": \"a\", \"label\": 0}\n");
        var yaml = tmp["task.yaml"];
        File.WriteAllText(yaml, "task: t\ndataset_path: test.jsonl\noutput_type: multiple_choice\ndoc_to_text: \"{{text}}\"\ndoc_to_target: label\ndoc_to_choice: &a [x, *a]\n");
        Assert.Contains("nested more than 64 deep", Refused(() => TaskConfig.Load(yaml), yaml).Message);
    }

    [Fact]
    public void A_task_data_file_that_is_missing_is_named_with_the_yaml_line()
    {
        using var tmp = new TempDir();
        var yaml = tmp["task.yaml"];
        File.WriteAllText(yaml, "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files: {test: nowhere.jsonl}\noutput_type: generate_until\ndoc_to_text: x\ndoc_to_target: y\n");
        var e = Refused(() => TaskConfig.Load(yaml), yaml);
        Assert.Contains("line 4: data_files.test", e.Message);
        Assert.Contains("nowhere.jsonl: file not found", e.Message);
    }

    [Fact]
    public void More_shots_than_the_task_file_has_examples_names_num_fewshot_in_the_task_file()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["test.jsonl"], "{\"q\": \"a\", \"a\": \"b\"}\n{\"q\": \"c\", \"a\": \"d\"}\n");
        var yaml = tmp["task.yaml"];
        File.WriteAllText(yaml, $"task: t\ndataset_path: test.jsonl\noutput_type: generate_until\ndoc_to_text: x\ndoc_to_target: y\nnum_fewshot: {int.MaxValue}\n");
        var task = new IclTask(TaskConfig.Load(yaml).Single());
        Assert.Contains($"t: num_fewshot: {int.MaxValue} shots but only 1 examples", Refused(() => task.Items(), yaml).Message);
    }

    [Fact]
    public void An_instruction_argument_a_megabyte_long_is_refused_before_any_regular_expression_is_built()
    {
        using var tmp = new TempDir();
        var input = tmp["input.jsonl"];
        var prompt = new JsonObject
        {
            ["key"] = 1, ["prompt"] = "Write two sections.", ["instruction_id_list"] = new JsonArray("detectable_format:multiple_sections"),
            ["kwargs"] = new JsonArray(new JsonObject { ["num_sections"] = 2, ["section_spliter"] = new string('{', 1 << 20) }),
        };
        File.WriteAllText(input, prompt.ToJsonString() + "\n");
        Assert.Contains("at most 1000 characters", Refused(() => Attune.Evaluation.Instructions.IfSuite.Load(input), input).Message);
    }

    [Theory]
    [InlineData("UPDATE cells SET settings = 'not json'", "settings")]
    [InlineData("UPDATE items SET record = 'null'", "item 0")]
    [InlineData("UPDATE aggregates SET n = 9223372036854775807", "not as Attune writes it")]
    public void A_results_store_edited_by_another_tool_is_a_clean_error(string sql, string expected)
    {
        using var tmp = new TempDir();
        var path = tmp["results.db"];
        using (var store = new ResultsStore(path))
        {
            var run = store.BeginRun("attune sweep", "test", []);
            store.Commit(run, new CellResult("c", "base", null, "if", "en", "m", [], [new Aggregate("acc", 0.5, 0.4, 0.6, 10)], [new JsonObject { ["ok"] = true }], 1));
        }
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = sql;
            cmd.ExecuteNonQuery();
        }
        using var reopened = new ResultsStore(path);
        Assert.Contains(expected, Refused(() => reopened.Cells(withItems: true), path).Message);
    }

    [Fact]
    public void A_string_times_an_integer_that_overflows_is_a_length_error() =>
        Assert.Contains("MaxOutputLength", T.Error("{{ 'ab' * 9223372036854775807 }}").Problem);

    [Fact]
    public void A_message_quoting_a_line_break_from_the_input_stays_on_one_line()
    {
        var e = new AttuneException("f.json", "line 2", "not valid JSON: 'a\nb'");
        Assert.Equal("f.json: line 2: not valid JSON: 'a\\nb'", e.Message);
    }
}
