using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Evaluation.Metrics;

namespace Attune.Tests.Evaluation;

public class TaskTests
{
    /// <summary>A backend whose answers a test writes as functions.</summary>
    sealed class ScriptedBackend(Func<string, string, double>? score = null, Func<string, string>? generate = null) : IModelBackend
    {
        public string Identity => "scripted";
        public Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default) =>
            Task.FromResult(new ScoreResult(score!(context, continuation), false, 1));
        public Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default) =>
            Task.FromResult(new GeneratedText(generate!(prompt), FinishReason.Stop, 1));
        public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
            CompleteAsync(conversation[^1].Content, options, cancel);
        public void Dispose() { }
    }

    static string WriteSentiment(TempDir tmp, string extra = "")
    {
        File.WriteAllLines(tmp["train.jsonl"], new[] { ("great fun", 1), ("dull and slow", 0), ("a delight", 1), ("a mess", 0) }
            .Select(x => new JsonObject { ["text"] = x.Item1, ["label"] = x.Item2 }.ToJsonString()));
        File.WriteAllLines(tmp["test.jsonl"], new[] { ("really good", 1), ("truly bad", 0), ("good stuff", 1) }
            .Select(x => new JsonObject { ["text"] = x.Item1, ["label"] = x.Item2 }.ToJsonString()));
        File.WriteAllText(tmp["task.yaml"], """
            task: sentiment_toy
            lang: en
            dataset_path: json
            dataset_kwargs:
              data_files: {train: train.jsonl, test: test.jsonl}
            training_split: train
            test_split: test
            output_type: multiple_choice
            doc_to_text: "Review: {{text}}\nSentiment:"
            doc_to_target: label
            doc_to_choice: ["negative", "positive"]
            num_fewshot: 2
            metric_list:
              - metric: acc
              - metric: acc_norm
            """ + extra);
        return tmp["task.yaml"];
    }

    [Fact]
    public void Items_lay_out_shots_as_the_harness_does()
    {
        using var tmp = new TempDir();
        var task = new IclTask(TaskConfig.Load(WriteSentiment(tmp)).Single());
        var items = task.Items();
        Assert.Equal(3, items.Count);
        var item = items[0];
        Assert.Equal(["negative", "positive"], item.Choices);
        Assert.Equal(1, item.GoldIndex);
        // Two shots from the training split, each "text + delimiter + answer", joined by "\n\n", then the query.
        var parts = item.Context.Split("\n\n");
        Assert.Equal(3, parts.Length);
        Assert.Matches(@"^Review: .+\nSentiment: (negative|positive)$", parts[0]);
        Assert.Equal("Review: really good\nSentiment:", parts[2]);
        Assert.Equal(task.Items().Select(i => i.Context), items.Select(i => i.Context)); // seeded
        var requests = task.LoglikelihoodRequests(items).ToList();
        Assert.Equal(6, requests.Count);
        Assert.Equal(" positive", requests[1].Continuation);
        Assert.Equal(2, task.Items(shots: 0)[0].Context.Split("\n").Length);
    }

    [Fact]
    public async Task Acc_follows_the_log_likelihoods_and_acc_norm_divides_by_length()
    {
        using var tmp = new TempDir();
        var task = new IclTask(TaskConfig.Load(WriteSentiment(tmp)).Single());
        // The right choice scores -1, the wrong one -2: accuracy 1. Per byte, " negative" (9 bytes) at -2
        // beats " positive" (9 bytes) at -1? No: same length, so acc_norm agrees.
        var right = new ScriptedBackend((ctx, cont) => ctx.Contains("good") == (cont == " positive") ? -1 : -2);
        var results = await IclEvaluation.RunAsync([task], new RequestRunner(right));
        var r = results.Single();
        Assert.Equal(1.0, r.Metrics["acc"].Value);
        Assert.Equal(new Estimate(1, 1, 1, 3), r.Metrics["acc"]);
        Assert.Equal(1.0, r.Metrics["acc_norm"].Value);

        // With choices of different lengths, dividing by bytes can change the pick.
        File.WriteAllText(tmp["task.yaml"], File.ReadAllText(tmp["task.yaml"]).Replace("[\"negative\", \"positive\"]", "[\"no\", \"yes, definitely\"]"));
        var longer = new IclTask(TaskConfig.Load(tmp["task.yaml"]).Single());
        var lengthBiased = new ScriptedBackend((_, cont) => cont == " no" ? -3 : -4); // total prefers "no"; per character prefers the long one
        var biased = (await IclEvaluation.RunAsync([longer], new RequestRunner(lengthBiased))).Single();
        Assert.Equal(1 / 3.0, biased.Metrics["acc"].Value, 1e-12); // "no" is gold once
        Assert.Equal(2 / 3.0, biased.Metrics["acc_norm"].Value, 1e-12);
    }

    [Fact]
    public async Task Generation_tasks_filter_and_score_exact_match_f1_and_chrf()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["data.csv"], "question,answer\n\"2 + 3 = ?\",5\n\"4 + 4 = ?\",8\n\"1 + 6 = ?\",7\n");
        File.WriteAllText(tmp["task.yaml"], """
            task: sums
            dataset_path: data.csv
            output_type: generate_until
            doc_to_text: "Q: {{question}}\nA:"
            doc_to_target: "{{answer}}"
            generation_kwargs: {until: ["\n"], max_gen_toks: 8}
            filter_list:
              - name: number
                filter:
                  - function: regex
                    regex_pattern: "(-?\\d+)"
                  - function: take_first
            metric_list:
              - metric: exact_match
              - metric: f1
              - metric: chrf
            """);
        var task = new IclTask(TaskConfig.Load(tmp["task.yaml"]).Single());
        var answers = new Dictionary<string, string> { ["2 + 3"] = " The answer is 5.", ["4 + 4"] = " 8", ["1 + 6"] = " I think 9" };
        var backend = new ScriptedBackend(generate: p => answers.First(a => p.Contains(a.Key)).Value);
        var r = (await IclEvaluation.RunAsync([task], new RequestRunner(backend))).Single();
        Assert.Equal(["5", "8", "9"], r.Items.Select(i => i.Prediction));
        Assert.Equal(2 / 3.0, r.Metrics["exact_match"].Value, 1e-12);
        Assert.Equal(2 / 3.0, r.Metrics["f1"].Value, 1e-12);
        Assert.InRange(r.Metrics["chrf"].Value, 0, 100);
        Assert.True(r.Metrics["exact_match"].Low <= r.Metrics["exact_match"].Value && r.Metrics["exact_match"].Value <= r.Metrics["exact_match"].High);
        Assert.Equal(["\n"], task.GenerateRequestFor(task.Items()[0]).Options.StopStrings);
    }

    [Theory]
    [InlineData("#### (\\-?[0-9\\.\\,]+)", "0", "Half of 84 is 42.\n#### 42", "42")]          // GSM8K strict-match: the group, not "#### 42"
    [InlineData("(-?[$0-9.,]{2,})|(-?[0-9]+)", "-1", "3 apples, then 5 more: 8", "8")]         // flexible-extract: the last match's non-empty group
    [InlineData("(\\d+)", "0", "no digits here", "[invalid]")]
    public void Regex_filters_pick_matches_and_groups_as_the_harness_does(string pattern, string select, string text, string expected)
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["d.jsonl"], "{\"q\":\"x\",\"a\":\"1\"}\n");
        File.WriteAllText(tmp["t.yaml"], $"task: f\ndataset_path: d.jsonl\ndoc_to_text: q\ndoc_to_target: a\nfilter_list:\n  - name: x\n    filter:\n      - function: regex\n        regex_pattern: '{pattern}'\n        group_select: {select}\n      - function: take_first\n");
        var task = new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single());
        Assert.Equal(expected, task.Filter(text));
    }

    [Fact]
    public async Task A_template_target_that_renders_a_list_means_any_of_these_answers()
    {
        // triviaqa's doc_to_target is "{{answer.aliases}}": the harness reads the rendered list back with
        // ast.literal_eval, so every alias is a gold answer (it once scored 0.000 here against a perfect server).
        using var tmp = new TempDir();
        File.WriteAllLines(tmp["d.jsonl"],
        [
            new JsonObject { ["question"] = "Capital of France?", ["answer"] = new JsonObject { ["aliases"] = new JsonArray("Paris", "Paris, France", "City of Light") } }.ToJsonString(),
            new JsonObject { ["question"] = "Largest planet?", ["answer"] = new JsonObject { ["aliases"] = new JsonArray("Jupiter", "jupiter") } }.ToJsonString(),
        ]);
        File.WriteAllText(tmp["t.yaml"], """
            task: trivia_toy
            dataset_path: d.jsonl
            output_type: generate_until
            doc_to_text: "Question: {{question}}\nAnswer:"
            doc_to_target: "{{answer.aliases}}"
            generation_kwargs: {until: ["\n"]}
            metric_list:
              - metric: exact_match
            """);
        var task = new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single());
        Assert.Equal(["Paris", "Paris, France", "City of Light"], task.Items()[0].Golds);
        var answers = new Dictionary<string, string> { ["France"] = "City of Light", ["planet"] = "jupiter" };
        var backend = new ScriptedBackend(generate: p => answers.First(a => p.Contains(a.Key)).Value);
        var r = (await IclEvaluation.RunAsync([task], new RequestRunner(backend))).Single();
        Assert.Equal(1.0, r.Metrics["exact_match"].Value);
    }

    [Fact]
    public void Acc_norm_divides_by_characters_as_the_harness_does_and_acc_bytes_by_utf8_bytes()
    {
        // "ééé" is 3 characters and 6 bytes: per character it loses to "abcd", per byte it wins.
        double[] logprobs = [-3.3, -4.0];
        string[] choices = ["ééé", "abcd"];
        Assert.Equal(1, TaskMetrics.BestChoice(logprobs, choices, TaskMetrics.NormalizationOf("acc_norm")));
        Assert.Equal(0, TaskMetrics.BestChoice(logprobs, choices, TaskMetrics.NormalizationOf("acc_bytes")));
        Assert.Equal(0, TaskMetrics.BestChoice(logprobs, choices, TaskMetrics.NormalizationOf("acc")));
    }

    [Fact]
    public void A_template_variable_the_document_lacks_is_an_error_naming_it_as_in_the_harness()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["d.jsonl"], "{\"q\":\"2 + 2\",\"a\":\"4\"}\n");
        File.WriteAllText(tmp["t.yaml"], "task: strict\ndataset_path: d.jsonl\ndoc_to_text: \"{{q}} = {{question}}\"\ndoc_to_target: a\n");
        var e = Assert.Throws<AttuneException>(() => new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single()).Items());
        Assert.Contains("'question' is undefined", e.Message);
        // A test for definedness still works, as with jinja2's StrictUndefined.
        File.WriteAllText(tmp["t.yaml"], "task: strict\ndataset_path: d.jsonl\ndoc_to_text: \"{{q}}{% if question is defined %}?{% endif %} =\"\ndoc_to_target: a\n");
        Assert.Equal("2 + 2 =", new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single()).Items().Single().Context);
    }

    [Fact]
    public void Shots_are_drawn_per_item_also_from_a_separate_split()
    {
        var task = BuiltinSuite.Load("sentiment", "en");
        var shotParts = task.Items(limit: 20).Select(i => i.Context[..i.Context.LastIndexOf(task.Config.FewshotDelimiter, StringComparison.Ordinal)]).ToList();
        Assert.True(shotParts.Distinct().Count() > 10, $"only {shotParts.Distinct().Count()} distinct shot sets among 20 items");
    }

    [Fact]
    public void A_fixed_shot_set_gives_every_item_the_same_shots_and_another_set_others()
    {
        var task = BuiltinSuite.Load("sentiment", "en");
        string Shots(TaskItem i) => i.Context[..i.Context.LastIndexOf(task.Config.FewshotDelimiter, StringComparison.Ordinal)];
        var first = task.Items(limit: 20, shotSet: 0);
        var second = task.Items(limit: 20, shotSet: 1);
        Assert.Single(first.Select(Shots).Distinct()); // one prompt prefix for the whole set
        Assert.Single(second.Select(Shots).Distinct());
        Assert.NotEqual(Shots(first[0]), Shots(second[0]));
        Assert.Equal(first.Select(i => i.Context), task.Items(limit: 20, shotSet: 0).Select(i => i.Context)); // drawn by seed
        Assert.Equal(task.Items(limit: 20).Select(i => i.Doc), first.Select(i => i.Doc)); // the same items
    }

    [Fact]
    public void A_fixed_shot_set_from_the_evaluated_split_never_shows_a_document_its_own_answer()
    {
        using var tmp = new TempDir();
        File.WriteAllLines(tmp["d.jsonl"], Enumerable.Range(0, 12).Select(i => new JsonObject { ["q"] = $"item {i}", ["a"] = $"answer {i}" }.ToJsonString()));
        File.WriteAllText(tmp["t.yaml"], "task: own\ndataset_path: d.jsonl\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{a}}\"\nnum_fewshot: 3\n");
        var task = new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single());
        var items = task.Items(shotSet: 0);
        Assert.All(items, i => Assert.Equal(1, System.Text.RegularExpressions.Regex.Matches(i.Context, $"{task.EvalDocs[i.Doc]["q"]}\\b").Count)); // only as the query
        Assert.All(items, i => Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(i.Context, "answer").Count));
        Assert.True(items.Select(i => i.Context[..i.Context.LastIndexOf("\n\n", StringComparison.Ordinal)]).Distinct().Count() <= 4); // the set, or the set with the next shot
    }

    [Fact]
    public async Task Shot_sets_are_averaged_over_the_same_items()
    {
        var task = BuiltinSuite.Load("sentiment", "en");
        // A model that is right exactly when the prompt's first shot is positive: its accuracy depends on the shot set.
        var backend = new ScriptedBackend((ctx, cont) => (ctx.IndexOf("positive", StringComparison.Ordinal) is var p && p >= 0 && p < ctx.IndexOf('\n', ctx.IndexOf('\n') + 1)) == (cont == " positive") ? -1 : -2);
        var sets = new List<double>();
        for (int set = 0; set < 3; set++)
        {
            var items = task.Items(limit: 30, shotSet: set);
            sets.Add(task.ScoreChoices(items, await new RequestRunner(backend).LoglikelihoodAsync(task.LoglikelihoodRequests(items).ToList()), task.Config.NumFewshot).Metrics["acc"].Value);
        }
        var averaged = (await IclEvaluation.RunAsync([task], new RequestRunner(backend), limit: 30, shotSets: 3)).Single();
        Assert.Equal(sets.Average(), averaged.Metrics["acc"].Value, 1e-12);
        Assert.Equal(30, averaged.Items.Count); // items, not items × sets: the interval resamples documents
        Assert.InRange(averaged.Metrics["acc"].Low, 0, averaged.Metrics["acc"].Value);
        Assert.Contains("--shots-per-task", (await Assert.ThrowsAsync<AttuneException>(() => IclEvaluation.RunAsync([task], new RequestRunner(backend), shotSets: 0))).Message);
    }

    [Fact]
    public void Choices_can_come_from_a_template_that_renders_a_list()
    {
        using var tmp = new TempDir();
        File.WriteAllLines(tmp["d.jsonl"], [new JsonObject { ["q"] = "Capital of Spain?", ["options"] = new JsonArray("Lisboa", "Madrid", "l'Escala"), ["answer"] = "Madrid" }.ToJsonString()]);
        File.WriteAllText(tmp["t.yaml"], """
            task: capitals
            dataset_path: d.jsonl
            output_type: multiple_choice
            doc_to_text: "{{q}}"
            doc_to_target: "{{answer}}"
            doc_to_choice: "{{options}}"
            """);
        var item = new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single()).Items().Single();
        Assert.Equal(["Lisboa", "Madrid", "l'Escala"], item.Choices);
        Assert.Equal(1, item.GoldIndex);
    }

    [Theory]
    [InlineData("task: x\ndataset_path: d.jsonl\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\n", "doc_to_choice")]
    [InlineData("task: x\ndataset_path: d.jsonl\ndoc_to_target: a\n", "doc_to_text")]
    [InlineData("task: x\ndataset_path: d.jsonl\ndoc_to_text: q\ndoc_to_target: a\nmetric_list:\n  - metric: ter\n", "metric")]
    [InlineData("task: x\ndataset_path: csv\ndataset_kwargs:\n  data_files:\n    train: hf://datasets/org/set/train.csv\ndoc_to_text: q\ndoc_to_target: a\n", "a remote data file")]
    [InlineData("task: x\ndataset_path: d.jsonl\ndoc_to_text: !function utils.doc_to_text\ndoc_to_target: a\n", "!function")]
    [InlineData("task: x\ndataset_path: attune-test/absent\ntest_split: validation\ndoc_to_text: q\ndoc_to_target: a\n", "no \"validation\" split of attune-test/absent")]
    [InlineData("task: x\ndataset_path: d.jsonl\ndoc_to_text: q\ndoc_to_target: a\nnum_shots: 3\n", "num_shots")]
    [InlineData("task: x\ndataset_path: d.jsonl\ndoc_to_text: q\ndoc_to_target: a\noutput_type: multiple_choice\ndoc_to_choice: [a]\nmetric_list:\n  - metric: chrf\n", "is not a multiple_choice metric")]
    public void Bad_task_files_are_refused_naming_the_field(string yaml, string expected)
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["d.jsonl"], "{\"q\":\"hi\",\"a\":\"x\"}\n");
        File.WriteAllText(tmp["t.yaml"], yaml);
        var e = Assert.Throws<AttuneException>(() => TaskConfig.Load(tmp["t.yaml"]));
        Assert.Contains(expected, e.Message);
        Assert.Contains("t.yaml", e.Message);
    }

    [Fact]
    public void A_target_outside_the_choices_names_the_document()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["d.jsonl"], "{\"q\":\"a\",\"a\":\"yes\"}\n{\"q\":\"b\",\"a\":\"maybe\"}\n");
        File.WriteAllText(tmp["t.yaml"], "task: yn\ndataset_path: d.jsonl\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: a\ndoc_to_choice: [\"yes\", \"no\"]\n");
        var e = Assert.Throws<AttuneException>(() => new IclTask(TaskConfig.Load(tmp["t.yaml"]).Single()).Items());
        Assert.Contains("document 1", e.Message);
        Assert.Contains("\"maybe\" is not one of the choices", e.Message);
    }

    [Theory]
    [InlineData("Paris", "paris", "en", 1.0)]
    [InlineData("the cat sat", "a cat sat down", "en", 0.8)]  // {cat, sat} of {cat, sat} and {cat, sat, down}
    [InlineData("la maison bleue", "une maison bleue", "fr", 1.0)]
    [InlineData("los perros", "el perro", "es", 0.0)]
    [InlineData("", "", "en", 1.0)]
    public void F1_normalises_words_per_language(string prediction, string reference, string lang, double expected) =>
        Assert.Equal(expected, TaskMetrics.F1(prediction, reference, lang), 1e-12);

    [Fact]
    public void ChrF_is_100_for_a_match_0_for_nothing_shared_and_in_between_otherwise()
    {
        Assert.Equal(100, ChrF.Score(ChrF.Statistics("le chat noir", "le chat noir")), 1e-9);
        Assert.Equal(0, ChrF.Score(ChrF.Statistics("xyz", "abc")), 1e-6);
        double partial = ChrF.Score(ChrF.Statistics("le chat noir", "le chien noir"));
        Assert.InRange(partial, 30, 90);
        // Whitespace is not part of the n-grams.
        Assert.Equal(100, ChrF.Score(ChrF.Statistics("lechatnoir", "le chat noir")), 1e-9);
    }

    [Fact]
    public void Bootstrap_intervals_hold_the_estimate_and_are_reproducible()
    {
        var values = Enumerable.Range(0, 200).Select(i => i % 3 == 0 ? 1.0 : 0.0).ToList();
        var a = Bootstrap.Mean(values, seed: 7);
        Assert.Equal(values.Average(), a.Value, 1e-12);
        Assert.True(a.Low < a.Value && a.Value < a.High);
        // About ±1.96 standard errors around 1/3 with n = 200: se ≈ 0.033.
        Assert.InRange(a.High - a.Low, 0.10, 0.16);
        Assert.Equal(a, Bootstrap.Mean(values, seed: 7));
    }

    [Fact]
    public void Bleu_follows_sacrebleus_tokenizer_smoothing_and_brevity_penalty()
    {
        // 13a splits punctuation off words, but not a period or comma inside a number.
        Assert.Equal(["Hello", ",", "world", "!", "It", "costs", "3.5", "euros", "."], Bleu.Tokenize("Hello, world! It costs 3.5 euros."));
        Assert.Equal(100, Bleu.Score(Bleu.Statistics("The dog bit the man.", "The dog bit the man.")), 9);
        // One token off at the end: precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty: (0.8·0.75·0.667·0.5)^¼ = 0.2^¼.
        Assert.Equal(100 * Math.Pow(0.2, 0.25), Bleu.Score(Bleu.Statistics("a b c d e", "a b c d f")), 9);
        // 1-grams 3/4, 2-grams 1/3; no 3-gram (of 2) or 4-gram (of 1) matches: the first is smoothed to 1 / (2 · 2), the next to 1 / (4 · 1).
        Assert.Equal(100 * Math.Pow(0.75 * (1 / 3.0) * (1 / 4.0) * (1 / 4.0), 0.25), Bleu.Score(Bleu.Statistics("a b x c", "a b c d")), 9);
        // Too short for 3-grams: BLEU is 0, as sacrebleu gives without effective order; shorter than the reference: the brevity penalty.
        Assert.True(Bleu.Score(Bleu.Statistics("the cat", "the cat sat")) < 1e-9);
        var stats = Bleu.Statistics("a b c d", "a b c d e f");
        Assert.Equal(100 * Math.Exp(1 - 6 / 4.0), Bleu.Score(stats), 9);
    }
}
