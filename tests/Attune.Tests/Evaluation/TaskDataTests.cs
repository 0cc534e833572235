using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Attune.Evaluation.Tasks;
using Attune.Models;
using Parquet.Serialization;

namespace Attune.Tests.Evaluation;

/// <summary>Hub data sets on disk as users have them: --data-dir in huggingface-cli's layout, the Parquet conversion, the Hugging Face cache.</summary>
public class TaskDataTests
{
    static readonly string HarnessTasks = Path.Combine(Repo.Root, "..", "shared", "peers", "lm-eval-tasks");

    /// <summary>A row of allenai/ai2_arc in its real schema (choices is a struct of two lists).</summary>
    sealed class ArcRow
    {
        [JsonPropertyName("id")] public string Id { get; set; } = "";
        [JsonPropertyName("question")] public string Question { get; set; } = "";
        [JsonPropertyName("choices")] public ArcChoices Choices { get; set; } = new();
        [JsonPropertyName("answerKey")] public string AnswerKey { get; set; } = "";
    }

    sealed class ArcChoices
    {
        [JsonPropertyName("text")] public List<string> Text { get; set; } = [];
        [JsonPropertyName("label")] public List<string> Label { get; set; } = [];
    }

    static List<ArcRow> Rows(params (string Question, string[] Choices, int Answer)[] rows) => rows.Select((r, i) => new ArcRow
    {
        Id = $"q{i}", Question = r.Question, AnswerKey = ((char)('A' + r.Answer)).ToString(),
        Choices = new ArcChoices { Text = [.. r.Choices], Label = r.Choices.Select((_, k) => ((char)('A' + k)).ToString()).ToList() },
    }).ToList();

    static void WriteParquet<T>(string path, List<T> rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ParquetSerializer.SerializeAsync(rows, path).GetAwaiter().GetResult();
    }

    static readonly List<ArcRow> Test = Rows(("Which one is a fruit?", ["stone", "apple", "chair"], 1), ("What melts ice?", ["heat", "cold"], 0));
    static readonly List<ArcRow> Train = Rows(("What is wet?", ["water", "sand"], 0));

    [Fact]
    public void A_harness_task_reads_its_hub_data_set_from_parquet_in_the_download_layout()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/allenai/ai2_arc/ARC-Easy/test-00000-of-00001.parquet"], Test);
        WriteParquet(tmp["data/allenai/ai2_arc/ARC-Easy/train-00000-of-00001.parquet"], Train);
        var task = TaskList.Resolve("arc_easy", [HarnessTasks], data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) }).Single();
        Assert.Equal(2, task.EvalDocs.Count);
        // Nested columns reach the templates as the harness's Jinja sees them: choices.text is a list.
        Assert.Equal(["stone", "apple", "chair"], task.EvalDocs[0]["choices"]!["text"]!.AsArray().Select(x => x!.GetValue<string>()));
        var item = task.Items()[0];
        Assert.Equal(["stone", "apple", "chair"], item.Choices);
        Assert.Equal(1, item.GoldIndex);
        Assert.Equal("Question: Which one is a fruit?\nAnswer:", item.Context);
    }

    [Fact]
    public void Shards_the_parquet_conversion_and_the_hugging_face_cache_are_found()
    {
        using var tmp = new TempDir();
        // Two shards of one split, read in order.
        WriteParquet(tmp["d1/allenai/ai2_arc/ARC-Easy/test-00000-of-00002.parquet"], [Test[0]]);
        WriteParquet(tmp["d1/allenai/ai2_arc/ARC-Easy/test-00001-of-00002.parquet"], [Test[1]]);
        var docs = TaskData.LoadDocs(TaskData.FindSplit("allenai/ai2_arc", "ARC-Easy", "test", new DataSources { DataDirs = [tmp["d1"]], Cache = new HubCache(tmp["none"]) }, "t.yaml"));
        Assert.Equal(["q0", "q1"], docs.Select(d => d["id"]!.GetValue<string>()));
        // The Hub's Parquet conversion: <config>/<split>/0000.parquet.
        WriteParquet(tmp["d2/allenai/ai2_arc/ARC-Easy/test/0000.parquet"], Test);
        Assert.Single(TaskData.FindSplit("allenai/ai2_arc", "ARC-Easy", "test", new DataSources { DataDirs = [tmp["d2"]], Cache = new HubCache(tmp["none"]) }, "t.yaml"));
        // The local Hugging Face cache: datasets--ORG--NAME/snapshots/<refs/main>/.
        const string commit = "89abcdef0123456789abcdef0123456789abcdef";
        WriteParquet(tmp[$"hub/datasets--allenai--ai2_arc/snapshots/{commit}/ARC-Easy/test-00000-of-00001.parquet"], Test);
        Directory.CreateDirectory(tmp["hub/datasets--allenai--ai2_arc/refs"]);
        File.WriteAllText(tmp["hub/datasets--allenai--ai2_arc/refs/main"], commit);
        Assert.Single(TaskData.FindSplit("allenai/ai2_arc", "ARC-Easy", "test", new DataSources { DataDirs = [tmp["empty"]], Cache = new HubCache(tmp["hub"]) }, "t.yaml"));
    }

    [Fact]
    public void Json_lines_json_and_csv_split_files_are_read_too()
    {
        using var tmp = new TempDir();
        Directory.CreateDirectory(tmp["d/org/set/data"]);
        File.WriteAllText(tmp["d/org/set/data/validation.jsonl"], "{\"x\": 1}\n{\"x\": 2}\n");
        File.WriteAllText(tmp["d/org/set/data/train.json"], "[{\"x\": 3}]");
        File.WriteAllText(tmp["d/org/set/data/test.csv"], "x,y\n4,a\n");
        var sources = new DataSources { DataDirs = [tmp["d"]], Cache = new HubCache(tmp["none"]) };
        Assert.Equal(2, TaskData.LoadDocs(TaskData.FindSplit("org/set", null, "validation", sources, "t.yaml")).Count);
        Assert.Equal(3, TaskData.LoadDocs(TaskData.FindSplit("org/set", null, "train", sources, "t.yaml")).Single()["x"]!.GetValue<int>());
        Assert.Equal("a", TaskData.LoadDocs(TaskData.FindSplit("org/set", null, "test", sources, "t.yaml")).Single()["y"]!.GetValue<string>());
    }

    [Fact]
    public void A_missing_data_set_names_where_it_looked_and_how_to_fetch_it()
    {
        using var tmp = new TempDir();
        var e = Assert.Throws<AttuneException>(() => TaskList.Resolve("arc_challenge", [HarnessTasks],
            data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["none"]) }));
        Assert.Contains("arc_challenge.yaml", e.Message);
        Assert.Contains(Path.Combine(tmp["data"], "allenai/ai2_arc", "ARC-Challenge"), e.Message);
        Assert.Contains("huggingface-cli download --repo-type dataset allenai/ai2_arc", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_damaged_parquet_file_is_one_clean_line()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["p/test.parquet"], Test);
        var bytes = File.ReadAllBytes(tmp["p/test.parquet"]);
        File.WriteAllBytes(tmp["p/test.parquet"], bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<AttuneException>(() => TaskData.LoadDocs(tmp["p/test.parquet"]));
        Assert.Contains("test.parquet", e.Message);
    }
}
