using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attune.Evaluation.Tasks;

namespace Attune.Tests.Evaluation;

/// <summary>The built-in suite's sizes, and every label re-derived by a rule of its own from the item's text.</summary>
public class BuiltinSuiteTests
{
    static JsonObject Lexicon(string lang) => JsonNode.Parse(File.ReadAllText(Path.Combine(Repo.Root, "data", "tasks", lang + ".json")))!.AsObject();
    static List<string> Strings(JsonNode? n) => n!.AsArray().Select(x => x!.GetValue<string>()).ToList();

    public static TheoryData<string, string> All()
    {
        var data = new TheoryData<string, string>();
        foreach (var t in BuiltinSuite.Types) foreach (var l in BuiltinSuite.Languages) data.Add(t, l);
        return data;
    }

    [Theory]
    [MemberData(nameof(All))]
    public void Each_task_has_150_items_with_labels_that_hold_by_rule(string type, string lang)
    {
        var task = BuiltinSuite.Load(type, lang);
        Assert.Equal(150, task.EvalDocs.Count);
        Assert.True(task.FewshotDocs.Count >= 6);
        string Key(JsonObject d) => d.ToJsonString();
        Assert.Empty(task.EvalDocs.Select(Key).Intersect(task.FewshotDocs.Select(Key)));
        var lex = Lexicon(lang)[type] as JsonObject;
        foreach (var doc in task.EvalDocs.Concat(task.FewshotDocs)) Check(type, lang, doc, lex);
        // And the items render: five shots, then the query.
        var item = task.Items(limit: 1).Single();
        Assert.Equal(6, item.Context.Split(task.Config.FewshotDelimiter).Length);
    }

    static void Check(string type, string lang, JsonObject doc, JsonObject? lex)
    {
        string S(string field) => doc[field]!.GetValue<string>();
        int Label() => doc["label"]!.GetValue<int>();
        switch (type)
        {
            case "sentiment":
                bool positive = Strings(lex!["positive"]).Any(p => S("text").Contains(p));
                bool negative = Strings(lex["negative"]).Any(p => S("text").Contains(p));
                Assert.True(positive != negative, S("text"));
                Assert.Equal(positive ? 1 : 0, Label());
                break;
            case "topic":
                var labels = Strings(lex!["labels"]);
                Assert.Contains(Strings(lex["phrases"]![labels[Label()]]), p => S("text").Contains(p));
                break;
            case "nli":
            {
                var negation = new Dictionary<string, string> { ["en"] = "nothing", ["fr"] = "rien", ["es"] = "nada" }[lang];
                var party = new Dictionary<string, string> { ["en"] = "party", ["fr"] = "fête", ["es"] = "fiesta" }[lang];
                var hypothesis = S("hypothesis");
                int expected = hypothesis.Contains(negation) ? 2 : hypothesis.Contains(party) ? 1 : 0;
                Assert.Equal(expected, Label());
                if (expected == 0)
                {
                    // Entailed: the hypothesis names the category of the item the premise says was bought.
                    var item = lex!["items"]!.AsArray().Where(i => S("premise").Contains(" " + i![0]!.GetValue<string>() + " "))
                        .MaxBy(i => i![0]!.GetValue<string>().Length); // "pommes de terre" over "pommes"
                    Assert.EndsWith(item![1]!.GetValue<string>() + ".", hypothesis);
                }
                break;
            }
            case "paraphrase":
            {
                var same = lex!["frames"]!.AsArray().SelectMany(f => f!["same"]!.AsArray()).Select(p => (p![0]!.GetValue<string>(), p[1]!.GetValue<string>())).ToList();
                bool synonyms = same.Any(p => S("sentence1").Replace(p.Item1, p.Item2) == S("sentence2") || S("sentence1").Replace(p.Item2, p.Item1) == S("sentence2"));
                Assert.Equal(synonyms ? 1 : 0, Label());
                break;
            }
            case "antonyms":
                Assert.Contains(lex!["pairs"]!.AsArray(), p => (p![0]!.GetValue<string>() == S("word") && p[1]!.GetValue<string>() == S("answer"))
                    || (p[1]!.GetValue<string>() == S("word") && p[0]!.GetValue<string>() == S("answer")));
                break;
            case "translation":
            {
                var concepts = JsonNode.Parse(File.ReadAllText(Path.Combine(Repo.Root, "data", "tasks", "translation.json")))!["concepts"]!.AsArray();
                int from = BuiltinSuite.Languages.ToList().IndexOf(lang), to = BuiltinSuite.Languages.ToList().IndexOf(S("target"));
                Assert.Contains(concepts, c => c![from]!.GetValue<string>() == S("word") && c[to]!.GetValue<string>() == S("answer"));
                break;
            }
            case "arithmetic":
            {
                var numbers = Regex.Matches(S("question"), @"\d+").Select(m => int.Parse(m.Value)).ToList();
                Assert.Equal(2, numbers.Count);
                var q = S("question");
                int expected = q.Contains("box") || q.Contains("boîte") || q.Contains("caja") ? numbers[0] * numbers[1]
                    : q.Contains("gives away") || q.Contains("en donne") || q.Contains("regala") ? numbers[0] - numbers[1]
                    : numbers[0] + numbers[1];
                Assert.Equal(expected.ToString(), S("answer"));
                break;
            }
            case "symbols":
            {
                var input = S("input");
                var expected = doc["op"]!.GetValue<string>() switch
                {
                    "reverse" => string.Concat(input.Select((_, i) => input[input.Length - 1 - i])),
                    "sort" => string.Concat(input.OrderBy(c => (int)c)),
                    "upper" => input.ToUpperInvariant(),
                    _ => new string(input.Split(' ').Select(w => w[0]).ToArray()),
                };
                Assert.Equal(expected, S("answer"));
                break;
            }
            case "reading":
            {
                Assert.Contains(S("answer"), S("passage"));
                var pool = S("field") switch
                {
                    "city" => Strings(lex!["cities"]),
                    "pet_name" => Strings(lex!["pet_names"]),
                    _ => lex!["jobs"] is JsonObject byGender ? byGender.SelectMany(kv => Strings(kv.Value)).ToList() : Strings(lex["jobs"]),
                };
                Assert.Contains(S("answer"), pool);
                break;
            }
        }
    }

    [Fact]
    public void Builtin_names_resolve_and_bad_ones_list_the_choices()
    {
        Assert.Equal(27, BuiltinSuite.Resolve("builtin:all").Count);
        Assert.Equal(3, BuiltinSuite.Resolve("builtin:nli").Count);
        Assert.Equal("reading_es", BuiltinSuite.Resolve("builtin:reading_es").Single().Config.Name);
        var e = Assert.Throws<AttuneException>(() => BuiltinSuite.Resolve("builtin:poetry"));
        Assert.Contains("sentiment", e.Message);
        // The same items on every run.
        Assert.Equal(BuiltinSuite.Load("arithmetic", "fr").EvalDocs.Select(d => d.ToJsonString()), BuiltinSuite.Load("arithmetic", "fr").EvalDocs.Select(d => d.ToJsonString()));
    }
}
