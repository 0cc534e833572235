using System.Text.Json.Nodes;
using Attune.Evaluation.Instructions;
using Attune.Tests.Cli;

namespace Attune.Tests.Evaluation;

/// <summary>Scoring responses that already exist (IFEval's input data + response file → its verdict files), and what bad input gets.</summary>
public class IfVerdictsTests
{
    static readonly string Peer = Path.Combine(Repo.Root, "..", "shared", "peers", "m-ifeval");

    [Fact]
    public void Existing_responses_are_scored_into_the_reference_s_verdict_files()
    {
        using var tmp = new TempDir();
        var run = Path.Combine(Peer, "evaluations", "es_input_response_data_CohereForAI__aya-23-8B");
        var (code, text, err) = CliRunner.Run("", "eval", "if", "--input", Path.Combine(Peer, "data", "es_input_data.jsonl"),
            "--responses", Path.Combine(run, "eval_results_strict.jsonl"), "--out-dir", tmp["out"], "--langs", "es", "--out", tmp["summary.json"]);
        Assert.True(code == 0, err);
        Assert.Contains("es", text);
        foreach (var name in new[] { "eval_results_strict.jsonl", "eval_results_loose.jsonl" })
        {
            var ours = File.ReadAllLines(Path.Combine(tmp["out"], name));
            var theirs = File.ReadAllLines(Path.Combine(run, name));
            Assert.Equal(theirs.Length, ours.Length);
            // Same records in the same order and the same writing (keys, spacing, ASCII escapes); where the verdicts
            // agree, the line is the reference's byte for byte.
            int identical = 0;
            for (int i = 0; i < ours.Length; i++)
            {
                var (o, t) = (JsonNode.Parse(ours[i])!, JsonNode.Parse(theirs[i])!);
                Assert.Equal((string)t["prompt"]!, (string)o["prompt"]!);
                Assert.Equal(t["instruction_id_list"]!.ToJsonString(), o["instruction_id_list"]!.ToJsonString());
                if (o["follow_instruction_list"]!.ToJsonString() == t["follow_instruction_list"]!.ToJsonString())
                {
                    Assert.Equal(theirs[i], ours[i]);
                    identical++;
                }
            }
            Assert.True(identical >= ours.Length * 0.98, $"{identical} of {ours.Length} lines identical");
        }
        var summary = JsonNode.Parse(File.ReadAllText(tmp["summary.json"]))!;
        Assert.Equal("responses", (string)summary["mode"]!);
    }

    [Fact]
    public void Where_the_reference_is_plainly_wrong_Attune_does_what_the_instruction_says()
    {
        // IFEval's letter check replaces a "letter" outside a–z with a random letter; Attune counts the one asked for.
        var hashes = new Instruction("keywords:letter_frequency", new JsonObject { ["letter"] = "#", ["let_frequency"] = 4, ["let_relation"] = "at least" });
        Assert.True(Checkers.Follows(hashes, "# One\n## Two\n# Three", "en"));
        Assert.False(Checkers.Follows(hashes, "One, two, three.", "en"));
        // langdetect names Chinese zh-cn or zh-tw, so the reference never finds "zh"; Attune does.
        var chinese = new Instruction("language:response_language", new JsonObject { ["language"] = "zh" });
        Assert.True(Checkers.Follows(chinese, "尼尔·阿姆斯特朗是第一个在月球上行走的人，他在一九六九年七月完成了这次任务。", "fr"));
        Assert.False(Checkers.Follows(chinese, "Neil Armstrong fut le premier homme à marcher sur la Lune, en juillet 1969.", "fr"));
    }

    [Fact]
    public void Languages_come_from_the_ids_prefix_and_scripts_settle_what_the_identifier_lacks()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["in.jsonl"], """
            {"key": 1, "prompt": "Écrivez sans virgule.", "instruction_id_list": ["fr:punctuation:no_comma", "fr:detectable_format:title"], "kwargs": [{}, {}]}
            {"key": 2, "prompt": "Write in Kannada.", "instruction_id_list": ["en:language:response_language"], "kwargs": [{"language": "kn"}]}
            """);
        var prompts = IfSuite.Load(tmp["in.jsonl"]);
        Assert.Equal(["fr", "en"], prompts.Select(p => p.Language));
        Assert.Equal(["fr:punctuation:no_comma", "fr:detectable_format:title"], prompts[0].SourceIds);
        Assert.Equal("punctuation:no_comma", prompts[0].Instructions[0].Id);
        Assert.True(IfEvaluation.Score(prompts[0], "##Titre##\nUn texte simple.").Strict.All(x => x));
        Assert.True(IfEvaluation.Score(prompts[1], "ಕನ್ನಡ ಒಂದು ಸುಂದರವಾದ ಭಾಷೆ.").Strict[0]);
        Assert.False(IfEvaluation.Score(prompts[1], "Kannada is a beautiful language.").Strict[0]);
    }

    [Theory]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["ja:punctuation:no_comma"], "kwargs": [{}]}""", "Japanese")]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["fr:keywords:rhymes"], "kwargs": [{}]}""", "keywords:rhymes")]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["fr:length_constraints:number_words"], "kwargs": [{"num_words": 5, "relation": "beaucoup"}]}""", "relation")]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["es:language:response_language"], "kwargs": [{"language": "klingon"}]}""", "klingon")]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["fr:punctuation:no_comma", "es:punctuation:no_comma"], "kwargs": [{}, {}]}""", "es instruction")]
    [InlineData("""{"key": 1, "prompt": "p", "instruction_id_list": ["fr:special_character:accents"], "kwargs": [{"word_to_accentuate": ["ete"]}]}""", "word_to_accentuate")]
    public void A_bad_input_file_is_one_line_naming_the_problem(string line, string expected)
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["in.jsonl"], line + "\n");
        File.WriteAllText(tmp["r.jsonl"], """{"prompt": "p", "response": "r"}""" + "\n");
        var (code, _, err) = CliRunner.Run("", "eval", "if", "--input", tmp["in.jsonl"], "--responses", tmp["r.jsonl"]);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.Contains("line 1", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void A_response_file_that_matches_no_prompt_or_misses_one_is_one_line()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["in.jsonl"], """
            {"key": 7, "prompt": "First.", "instruction_id_list": ["en:punctuation:no_comma"], "kwargs": [{}]}
            {"key": 8, "prompt": "Second.", "instruction_id_list": ["en:punctuation:no_comma"], "kwargs": [{}]}
            """);
        File.WriteAllText(tmp["none.jsonl"], """{"prompt": "Something else.", "response": "r"}""" + "\n");
        File.WriteAllText(tmp["some.jsonl"], """{"prompt": "First.", "response": "r"}""" + "\n");
        File.WriteAllText(tmp["null.jsonl"], """{"prompt": "First.", "response": null}""" + "\n" + """{"prompt": "Second.", "response": "ok"}""" + "\n");
        foreach (var (file, expected) in new[] { ("none.jsonl", "matches none of the 2 prompts"), ("some.jsonl", "no response for 1 of the 2 prompts, the first with key 8") })
        {
            var (code, _, err) = CliRunner.Run("", "eval", "if", "--input", tmp["in.jsonl"], "--responses", tmp[file], "--out-dir", tmp["out"]);
            Assert.Equal(2, code);
            Assert.Contains(expected, err);
            Assert.Single(err.Trim().Split('\n'));
            Assert.False(Directory.Exists(tmp["out"]));
        }
        // A response that is not text follows nothing, and is written back as it came.
        var ok = CliRunner.Run("", "eval", "if", "--input", tmp["in.jsonl"], "--responses", tmp["null.jsonl"], "--out-dir", tmp["out"]);
        Assert.True(ok.Code == 0, ok.Err);
        var first = JsonNode.Parse(File.ReadLines(Path.Combine(tmp["out"], "eval_results_loose.jsonl")).First())!;
        Assert.Null(first["response"]);
        Assert.False((bool)first["follow_all_instructions"]!);
        // --model and --responses do not go together; neither is a run without either.
        Assert.Equal(2, CliRunner.Run("", "eval", "if", "--input", tmp["in.jsonl"], "--responses", tmp["null.jsonl"], "--model", "x").Code);
        Assert.Equal(2, CliRunner.Run("", "eval", "if", "--input", tmp["in.jsonl"]).Code);
    }
}
