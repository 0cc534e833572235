using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Attune.Evaluation;
using Attune.Evaluation.Tasks;
using Attune.Modeling;
using Attune.Models;
using Attune.Prompting;
using Parquet.Serialization;

namespace Attune.Tests.Evaluation;

/// <summary>
/// The eleven real task folders of lm-evaluation-harness in ../shared/peers/lm-eval-tasks, run by name and unchanged,
/// on a few rows written in each data set's real schema into a temporary --data-dir laid out as the Hub lays it out
/// (Parquet for hellaswag, lambada, paws-x, winogrande and xnli). Each test pins the first document's rendered context,
/// its continuations and its few-shot prefix to what the harness builds. The expected strings were derived by reading
/// the harness's code (api/task.py: fewshot_context, build_qa_turn, multiple_input_context, construct_requests;
/// api/samplers.py: the seeded sampler draws Python's random.Random(1234).sample, and first_n), not by running Attune.
/// The few-shot indices below are what random.Random(1234).sample(range(n), k) returns in CPython: n=2,k=1 → [1];
/// n=3,k=1 → [1]. Then a scripted model that gives the gold continuation (or answer) the best score scores 1.0.
/// </summary>
public class HarnessFolderTests
{
    static readonly string HarnessTasks = Path.Combine(Repo.Root, "..", "shared", "peers", "lm-eval-tasks");

    /// <summary>A model that scores a continuation −1 (and greedy) when the test calls it gold, −5 otherwise; and generates the test's answer.</summary>
    sealed class GoldBackend(Func<string, string, bool>? gold = null, Func<string, string>? generate = null) : IModelBackend
    {
        /// <summary>ChatML, as SmolLM2-Instruct and Qwen2.5-Instruct write it.</summary>
        static readonly Attune.Text.Templates.ChatTemplate ChatMl = new(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
        public string RenderChat(IReadOnlyList<ChatMessage> conversation, string? templateName, bool continueFinalMessage) =>
            ChatPrompt.RenderTaskChat(ChatMl, conversation, continueFinalMessage);
        public List<(string Context, string Continuation)> Scored { get; } = [];
        public List<string> Prompts { get; } = [];
        public string Identity => "gold";
        public Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default)
        {
            lock (Scored) Scored.Add((context, continuation));
            bool g = gold!(context, continuation);
            return Task.FromResult(new ScoreResult(g ? -1 : -5, g, 1));
        }
        public Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default)
        {
            lock (Prompts) Prompts.Add(prompt);
            return Task.FromResult(new GeneratedText(generate!(prompt), FinishReason.Stop, 1));
        }
        public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
            throw new InvalidOperationException("harness tasks complete raw prompts");
        public void Dispose() { }
    }

    static void WriteJsonl(string path, params JsonObject[] rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, rows.Select(r => r.ToJsonString()));
    }

    static void WriteText(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    static void WriteParquet<T>(string path, List<T> rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ParquetSerializer.SerializeAsync(rows, path).GetAwaiter().GetResult();
    }

    static IclTask Named(TempDir tmp, string name) =>
        TaskList.Resolve(name, [HarnessTasks], data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) }).Single();

    static async Task<TaskResult> Run(IclTask task, IModelBackend backend, int? shots = null) =>
        (await IclEvaluation.RunAsync([task], new RequestRunner(backend), shots)).Single();

    // ---- hellaswag: process_docs hook, Parquet, harness-sampled shot ----

    sealed class HellaSwagRow
    {
        [JsonPropertyName("ind")] public long Ind { get; set; }
        [JsonPropertyName("activity_label")] public string ActivityLabel { get; set; } = "";
        [JsonPropertyName("ctx_a")] public string CtxA { get; set; } = "";
        [JsonPropertyName("ctx_b")] public string CtxB { get; set; } = "";
        [JsonPropertyName("ctx")] public string Ctx { get; set; } = "";
        [JsonPropertyName("endings")] public List<string> Endings { get; set; } = [];
        [JsonPropertyName("source_id")] public string SourceId { get; set; } = "";
        [JsonPropertyName("split")] public string Split { get; set; } = "";
        [JsonPropertyName("split_type")] public string SplitType { get; set; } = "";
        [JsonPropertyName("label")] public string Label { get; set; } = "";
    }

    [Fact]
    public async Task Hellaswag_runs_its_process_docs_hook_on_parquet()
    {
        using var tmp = new TempDir();
        HellaSwagRow Row(string activity, string a, string b, string[] endings, string label) => new()
        { ActivityLabel = activity, CtxA = a, CtxB = b, Ctx = a + " " + b, Endings = [.. endings], SourceId = "wikihow~1", Split = "val", SplitType = "indomain", Label = label };
        WriteParquet(tmp["data/Rowan/hellaswag/data/validation-00000-of-00001.parquet"], [
            Row("Baking cookies", "A woman puts dough on a tray.", "she", [" slides the tray into the oven [title] Wait.", "eats the tray.", "[step] Sings  loudly."], "0"),
            Row("Home", "A man opens a door.", "HE walks", ["in.", "through  the wall."], "1"),
        ]);
        WriteParquet(tmp["data/Rowan/hellaswag/data/train-00000-of-00001.parquet"], [
            Row("Running", "A runner ties a shoe.", "then", ["runs off.", "flies."], "0"),
            Row("Swimming", "A girl jumps in a pool.", "she", ["swims a lap.", "burns."], "0"),
        ]);
        var task = Named(tmp, "hellaswag");
        var item = task.Items(shots: 1)[0];
        // The hook: query = activity + ": " + ctx_a + " " + ctx_b.capitalize(); endings stripped, " [title]" → ". ", [tags] dropped, double spaces once.
        // One shot from the train split: Random(1234).sample(range(2), 1) = [1]; its answer is choices[gold].
        Assert.Equal("Swimming: A girl jumps in a pool. She swims a lap.\n\nBaking cookies: A woman puts dough on a tray. She", item.Context);
        Assert.Equal(["slides the tray into the oven. Wait.", "eats the tray.", " Sings loudly."], item.Choices); // stripped before the tag goes
        // As datasets.map does, the mapped fields are added to the document's own.
        Assert.Equal("Baking cookies", (string)task.EvalDocs[0]["activity_label"]!);
        Assert.Equal(0, (int)task.EvalDocs[0]["gold"]!);
        var backend = new GoldBackend((ctx, cont) => (ctx.EndsWith("She", StringComparison.Ordinal) && cont == " slides the tray into the oven. Wait.") || (ctx.EndsWith("He walks", StringComparison.Ordinal) && cont == " through the wall."));
        var result = await Run(task, backend, shots: 1);
        Assert.Contains((item.Context, " slides the tray into the oven. Wait."), backend.Scored);
        Assert.Equal(1.0, result.Metrics["acc"].Value);
        Assert.Equal(1.0, result.Metrics["acc_norm"].Value);
    }

    // ---- winogrande: doc_to_text/doc_to_target/doc_to_choice hooks, multiple inputs ----

    sealed class WinograndeRow
    {
        [JsonPropertyName("sentence")] public string Sentence { get; set; } = "";
        [JsonPropertyName("option1")] public string Option1 { get; set; } = "";
        [JsonPropertyName("option2")] public string Option2 { get; set; } = "";
        [JsonPropertyName("answer")] public string Answer { get; set; } = "";
    }

    [Fact]
    public async Task Winogrande_scores_one_continuation_after_each_filled_context()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/allenai/winogrande/winogrande_xl/validation-00000-of-00001.parquet"], [
            new WinograndeRow { Sentence = "The trophy does not fit in the case because the _ is too big.", Option1 = "trophy", Option2 = "case", Answer = "1" },
            new WinograndeRow { Sentence = "Anna thanked Beth because _ had helped her.", Option1 = "Anna", Option2 = "Beth", Answer = "2" },
        ]);
        WriteParquet(tmp["data/allenai/winogrande/winogrande_xl/train-00000-of-00001.parquet"], [
            new WinograndeRow { Sentence = "Tom lent Sam money since _ was rich.", Option1 = "Tom", Option2 = "Sam", Answer = "1" },
            new WinograndeRow { Sentence = "The cup fell off the shelf as _ was tilted.", Option1 = "cup", Option2 = "shelf", Answer = "2" },
        ]);
        var task = Named(tmp, "winogrande");
        Assert.True(task.MultipleInput);
        var item = task.Items(shots: 1)[0];
        // The shot (train doc 1) shows the sentence filled with its right option, the delimiter and the rest of the sentence.
        const string shot = "The cup fell off the shelf as shelf was tilted.\n\n";
        Assert.Equal([shot + "The trophy does not fit in the case because the trophy", shot + "The trophy does not fit in the case because the case"], item.Contexts);
        Assert.Equal("is too big.", item.GoldText);
        Assert.Equal(0, item.GoldIndex);
        Assert.Equal([new LoglikelihoodRequest(item.Contexts![0], " is too big."), new LoglikelihoodRequest(item.Contexts[1], " is too big.")], task.LoglikelihoodRequests(item));
        var backend = new GoldBackend((ctx, _) => ctx.EndsWith("because the trophy", StringComparison.Ordinal) || ctx.EndsWith("because Beth", StringComparison.Ordinal));
        Assert.Equal(1.0, (await Run(task, backend, shots: 1)).Metrics["acc"].Value);
    }

    // ---- paws-x (French): process_docs hook, empty context, template list of choices, no delimiter ----

    sealed class PawsRow
    {
        [JsonPropertyName("id")] public long Id { get; set; }
        [JsonPropertyName("sentence1")] public string Sentence1 { get; set; } = "";
        [JsonPropertyName("sentence2")] public string Sentence2 { get; set; } = "";
        [JsonPropertyName("label")] public long Label { get; set; }
    }

    [Fact]
    public async Task Paws_fr_detokenizes_and_scores_whole_sentences_after_an_empty_context()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/google-research-datasets/paws-x/fr/test-00000-of-00001.parquet"], [
            new PawsRow { Id = 1, Sentence1 = "Le chat dort sur le canapé .", Sentence2 = "Le chat dort sur le sofa .", Label = 1 },
            new PawsRow { Id = 2, Sentence1 = "", Sentence2 = "Une phrase seule .", Label = 0 }, // dropped by the hook: an empty sentence
            new PawsRow { Id = 3, Sentence1 = "Il pleut ( beaucoup ) ici ,", Sentence2 = "Il fait beau .", Label = 0 },
        ]);
        var task = Named(tmp, "paws_fr");
        Assert.Equal(2, task.EvalDocs.Count);
        var item = task.Items()[0];
        Assert.Equal("", item.Context);
        Assert.Equal(["Le chat dort sur le canapé, n'est-ce pas? Non, le chat dort sur le sofa.", "Le chat dort sur le canapé, n'est-ce pas? Oui, le chat dort sur le sofa."], item.Choices);
        Assert.Equal(1, item.GoldIndex);
        Assert.Equal(["Il pleut (beaucoup) ici, n'est-ce pas? Non, il fait beau.", "Il pleut (beaucoup) ici, n'est-ce pas? Oui, il fait beau."], task.Items()[1].Choices);
        // target_delimiter is "": each continuation is the choice itself.
        Assert.Equal(item.Choices!.Select(c => new LoglikelihoodRequest("", c)), task.LoglikelihoodRequests(item));
        var backend = new GoldBackend((_, cont) => cont.Contains("Oui, le chat") || cont.Contains("Non, il fait"));
        Assert.Equal(1.0, (await Run(task, backend)).Metrics["acc"].Value);
    }

    // ---- lambada: loglikelihood output, perplexity and acc ----

    sealed class LambadaRow
    {
        [JsonPropertyName("text")] public string Text { get; set; } = "";
    }

    [Fact]
    public async Task Lambada_scores_the_last_word_after_the_rest()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/EleutherAI/lambada_openai/default/test/0000.parquet"], [
            new LambadaRow { Text = "She opened the door and saw her old friend Maria" },
            new LambadaRow { Text = "He played the song on his guitar" },
        ]);
        var task = Named(tmp, "lambada_openai");
        var item = task.Items()[0];
        Assert.Equal("She opened the door and saw her old friend", item.Context);
        // The continuation is doc_to_target as it is (its own leading space), no target delimiter added.
        Assert.Equal([new LoglikelihoodRequest("She opened the door and saw her old friend", " Maria")], task.LoglikelihoodRequests(item));
        var backend = new GoldBackend((_, cont) => cont is " Maria" or " guitar");
        var result = await Run(task, backend);
        Assert.Equal(1.0, result.Metrics["acc"].Value);
        Assert.Equal(Math.Exp(1), result.Metrics["perplexity"].Value, 1e-9); // exp(−mean log-likelihood) with every target at −1
    }

    // ---- xnli (French): group member, template choices, Parquet ----

    sealed class XnliRow
    {
        [JsonPropertyName("premise")] public string Premise { get; set; } = "";
        [JsonPropertyName("hypothesis")] public string Hypothesis { get; set; } = "";
        [JsonPropertyName("label")] public long Label { get; set; }
    }

    [Fact]
    public async Task Xnli_fr_builds_three_statements_and_runs_as_a_group_member()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/facebook/xnli/fr/validation-00000-of-00001.parquet"], [
            new XnliRow { Premise = "Il pleut", Hypothesis = "le sol est mouillé", Label = 0 },
            new XnliRow { Premise = "Le ciel est bleu", Hypothesis = "il fait nuit", Label = 2 },
        ]);
        // No test_split in the task: the harness evaluates the validation split.
        var task = Named(tmp, "xnli_fr");
        var item = task.Items()[0];
        Assert.Equal("", item.Context);
        Assert.Equal(["Il pleut, correct? Oui, le sol est mouillé", "Il pleut, correct? Aussi, le sol est mouillé", "Il pleut, correct? Non, le sol est mouillé"], item.Choices);
        Assert.Equal(" Il pleut, correct? Oui, le sol est mouillé", task.LoglikelihoodRequests(item).First().Continuation); // the default target delimiter " "
        var backend = new GoldBackend((_, cont) => cont.Contains("Oui, le sol") || cont.Contains("Non, il fait"));
        Assert.Equal(1.0, (await Run(task, backend)).Metrics["acc"].Value);
    }

    // ---- piqa: JSON Lines, list-template choices, integer target field ----

    [Fact]
    public async Task Piqa_reads_json_lines_and_an_integer_label()
    {
        using var tmp = new TempDir();
        WriteJsonl(tmp["data/baber/piqa/validation.jsonl"],
            new JsonObject { ["goal"] = "Keep bread fresh", ["sol1"] = "Store it in a sealed bag.", ["sol2"] = "Leave it in the sun.", ["label"] = 0 },
            new JsonObject { ["goal"] = "Cool soup", ["sol1"] = "Boil it longer.", ["sol2"] = "Let it sit.", ["label"] = 1 });
        WriteJsonl(tmp["data/baber/piqa/train.jsonl"],
            new JsonObject { ["goal"] = "Dry a towel", ["sol1"] = "Hang it up.", ["sol2"] = "Bury it.", ["label"] = 0 },
            new JsonObject { ["goal"] = "Open a jar", ["sol1"] = "Freeze it.", ["sol2"] = "Run the lid under hot water.", ["label"] = 1 });
        var task = Named(tmp, "piqa");
        var item = task.Items(shots: 1)[0];
        // Random(1234).sample(range(2), 1) = [1]: the second training example.
        Assert.Equal("Question: Open a jar\nAnswer: Run the lid under hot water.\n\nQuestion: Keep bread fresh\nAnswer:", item.Context);
        Assert.Equal([" Store it in a sealed bag.", " Leave it in the sun."], task.LoglikelihoodRequests(item).Select(r => r.Continuation));
        var backend = new GoldBackend((_, cont) => cont is " Store it in a sealed bag." or " Let it sit.");
        Assert.Equal(1.0, (await Run(task, backend, shots: 1)).Metrics["acc"].Value);
    }

    // ---- xstorycloze (Spanish): arithmetic in the target template ----

    [Fact]
    public async Task Xstorycloze_es_joins_the_story_and_reads_the_right_ending()
    {
        using var tmp = new TempDir();
        JsonObject Story(string[] s, string q1, string q2, int right) => new()
        {
            ["story_id"] = "s", ["input_sentence_1"] = s[0], ["input_sentence_2"] = s[1], ["input_sentence_3"] = s[2], ["input_sentence_4"] = s[3],
            ["sentence_quiz1"] = q1, ["sentence_quiz2"] = q2, ["answer_right_ending"] = right,
        };
        WriteJsonl(tmp["data/juletxara/xstory_cloze/es/eval.jsonl"],
            Story(["Ana tenía hambre.", "Abrió la nevera.", "Estaba vacía.", "Fue al mercado."], "Compró comida.", "Se durmió en el techo.", 1),
            Story(["Luis corrió.", "Se cansó.", "Se sentó.", "Bebió agua."], "Voló a la luna.", "Descansó un rato.", 2));
        WriteJsonl(tmp["data/juletxara/xstory_cloze/es/train.jsonl"],
            Story(["Uno.", "Dos.", "Tres.", "Cuatro."], "Cinco.", "Nada.", 1));
        var task = Named(tmp, "xstorycloze_es");
        var item = task.Items()[0];
        Assert.Equal("Ana tenía hambre. Abrió la nevera. Estaba vacía. Fue al mercado.", item.Context);
        Assert.Equal(["Compró comida.", "Se durmió en el techo."], item.Choices);
        Assert.Equal(0, item.GoldIndex);
        var backend = new GoldBackend((_, cont) => cont is " Compró comida." or " Descansó un rato.");
        Assert.Equal(1.0, (await Run(task, backend)).Metrics["acc"].Value);
    }

    // ---- belebele (French): first_n shots from the evaluated split, the document itself left out; a data set card's configs ----

    [Fact]
    public async Task Belebele_fra_takes_first_n_shots_from_the_test_split_and_reads_the_card()
    {
        using var tmp = new TempDir();
        // The real repository declares each language's file in README.md (configs → data_files), not by split name.
        WriteText(tmp["data/facebook/belebele/README.md"], "---\nconfigs:\n- config_name: fra_Latn\n  data_files:\n  - split: test\n    path: data/fra_Latn.jsonl\n---\n# Belebele\n");
        JsonObject Row(string passage, string question, string[] answers, string correct) => new()
        {
            ["link"] = "x", ["question_number"] = 1, ["flores_passage"] = passage, ["question"] = question,
            ["mc_answer1"] = answers[0], ["mc_answer2"] = answers[1], ["mc_answer3"] = answers[2], ["mc_answer4"] = answers[3],
            ["correct_answer_num"] = correct, ["dialect"] = "fra_Latn", ["ds"] = "2023",
        };
        WriteJsonl(tmp["data/facebook/belebele/data/fra_Latn.jsonl"],
            Row("Paris est la capitale.", " Quelle ville ? ", ["Lyon", "Nice", "Paris", "Lille"], "3"),
            Row("Le Rhône coule vers le sud.", "Quel fleuve ?", ["Le Rhône", "La Seine", "La Loire", "Le Rhin"], "1"));
        var task = Named(tmp, "belebele_fra_Latn");
        var item = task.Items(shots: 1)[0];
        const string shot = "P: Le Rhône coule vers le sud.\nQ: Quel fleuve ?\nA: Le Rhône\nB: La Seine\nC: La Loire\nD: Le Rhin\nAnswer: A\n\n";
        Assert.Equal(shot + "P: Paris est la capitale.\nQ: Quelle ville ?\nA: Lyon\nB: Nice\nC: Paris\nD: Lille\nAnswer:", item.Context);
        Assert.Equal([" A", " B", " C", " D"], task.LoglikelihoodRequests(item).Select(r => r.Continuation));
        Assert.Equal(2, item.GoldIndex);
        Assert.StartsWith("P: Paris est la capitale.", task.Items(shots: 1)[1].Context); // the second document's shot is the first
        var backend = new GoldBackend((ctx, cont) => (ctx.EndsWith("D: Lille\nAnswer:", StringComparison.Ordinal) && cont == " C") || (ctx.EndsWith("D: Le Rhin\nAnswer:", StringComparison.Ordinal) && cont == " A"));
        Assert.Equal(1.0, (await Run(task, backend, shots: 1)).Metrics["acc"].Value);
    }

    // ---- gsm8k: two filter pipelines, each reported ----

    [Fact]
    public async Task Gsm8k_reports_strict_and_flexible_extraction()
    {
        using var tmp = new TempDir();
        WriteJsonl(tmp["data/openai/gsm8k/main/test.jsonl"],
            new JsonObject { ["question"] = "Tom has 3 apples and buys 4 more. How many?", ["answer"] = "3 + 4 = 7\n#### 7" },
            new JsonObject { ["question"] = "A box holds 6 eggs. How many in 3 boxes?", ["answer"] = "6 * 3 = 18\n#### 18" });
        WriteJsonl(tmp["data/openai/gsm8k/main/train.jsonl"],
            new JsonObject { ["question"] = "Q one?", ["answer"] = "1 + 1 = 2\n#### 2" },
            new JsonObject { ["question"] = "Q two?", ["answer"] = "2 + 2 = 4\n#### 4" },
            new JsonObject { ["question"] = "Q three?", ["answer"] = "3 + 3 = 6\n#### 6" });
        var task = Named(tmp, "gsm8k");
        var item = task.Items(shots: 1)[0];
        // Random(1234).sample(range(3), 1) = [1].
        Assert.Equal("Question: Q two?\nAnswer: 2 + 2 = 4\n#### 4\n\nQuestion: Tom has 3 apples and buys 4 more. How many?\nAnswer:", item.Context);
        Assert.Equal(["Question:", "</s>", "<|im_end|>"], task.GenerateRequestFor(item).Options.StopStrings);
        var backend = new GoldBackend(generate: p => p.EndsWith("How many?\nAnswer:", StringComparison.Ordinal) ? " 3 + 4 = 7\n#### 7" : " That is 6 * 3 = 18 eggs.");
        var result = await Run(task, backend, shots: 1);
        Assert.Equal(1.0, result.Metrics["exact_match,flexible-extract"].Value);
        Assert.Equal(0.5, result.Metrics["exact_match,strict-match"].Value); // the second answer has no "#### "
        Assert.Equal(new Dictionary<string, string> { ["strict-match"] = "[invalid]", ["flexible-extract"] = "18" }, result.Items[1].Filtered);
    }

    // ---- mgsm (French, direct): Jinja conditionals, an empty target delimiter, two pipelines ----

    [Fact]
    public async Task Mgsm_direct_fr_renders_its_conditional_prompt()
    {
        using var tmp = new TempDir();
        WriteJsonl(tmp["data/juletxara/mgsm/fr/test.jsonl"],
            new JsonObject { ["question"] = "Marie a 5 pommes et en mange 2. Combien en reste-t-il ?", ["answer"] = null, ["answer_number"] = 3, ["equation_solution"] = null });
        WriteJsonl(tmp["data/juletxara/mgsm/fr/train.jsonl"],
            new JsonObject { ["question"] = "Question : Combien font 2 et 2 ?", ["answer"] = "Étape par étape : 2 + 2 = 4.", ["answer_number"] = 4, ["equation_solution"] = "2 + 2 = 4" },
            new JsonObject { ["question"] = "Question : Combien font 3 et 3 ?", ["answer"] = "Étape par étape : 3 + 3 = 6.", ["answer_number"] = 6, ["equation_solution"] = "3 + 3 = 6" });
        var task = Named(tmp, "mgsm_direct_fr");
        var item = task.Items(shots: 1)[0];
        // A shot has an answer, so its question is used as it is; the test document has none, so "Question : " is added. No target delimiter.
        Assert.Equal("Question : Combien font 3 et 3 ?\nRéponse :6\n\nQuestion : Marie a 5 pommes et en mange 2. Combien en reste-t-il ?\nRéponse :", item.Context);
        Assert.Equal(["Question :", "</s>", "<|im_end|>"], task.GenerateRequestFor(item).Options.StopStrings);
        var result = await Run(task, new GoldBackend(generate: _ => " 3"), shots: 1);
        Assert.Equal(1.0, result.Metrics["exact_match,remove_whitespace"].Value);
        Assert.Equal(1.0, result.Metrics["exact_match,flexible-extract"].Value);
    }

    // ---- arc_challenge_chat: gen_prefix after the question; literal "\n" of a single-quoted YAML string ----

    [Fact]
    public async Task Arc_challenge_chat_ends_its_prompt_with_the_gen_prefix()
    {
        using var tmp = new TempDir();
        JsonObject Row(string q, string[] texts, string key) => new()
        {
            ["id"] = "q", ["question"] = q, ["answerKey"] = key,
            ["choices"] = new JsonObject { ["text"] = new JsonArray(texts.Select(t => (JsonNode)t).ToArray()), ["label"] = new JsonArray("A", "B", "C", "D") },
        };
        WriteJsonl(tmp["data/allenai/ai2_arc/ARC-Challenge/test.jsonl"],
            Row(" Which gas do plants take in? ", ["oxygen", "carbon dioxide", "helium", "neon"], "B"),
            Row("Which is a metal?", ["wood", "glass", "iron", "paper"], "3"));
        WriteJsonl(tmp["data/allenai/ai2_arc/ARC-Challenge/train.jsonl"], Row("x?", ["a", "b", "c", "d"], "A"));
        var task = Named(tmp, "arc_challenge_chat");
        var item = task.Items()[0];
        // The YAML string is single-quoted, so its \n stay a backslash and an n, as Jinja renders them in the harness.
        Assert.Equal("Given the following question and four candidate answers (A, B, C and D), choose the best answer.\\nQuestion: Which gas do plants take in?"
            + "\\nA. oxygen\\nB. carbon dioxide\\nC. helium\\nD. neon\\nYour response should end with \"The best answer is [the_answer_letter]\" where the [the_answer_letter] is one of A, B, C or D."
            + " The best answer is", item.Context);
        Assert.Equal("B", item.GoldText);
        Assert.Equal("C", task.Items()[1].GoldText); // a numeric key indexes ABCD
        var result = await Run(task, new GoldBackend(generate: p => p.Contains("helium") ? " B" : " C"));
        Assert.Equal(1.0, result.Metrics["exact_match"].Value);
    }

    // ---- chat templates, multi-turn shots and a system instruction, as the harness applies them ----

    static IclTask Piqa(TempDir tmp)
    {
        WriteJsonl(tmp["data/baber/piqa/validation.jsonl"],
            new JsonObject { ["goal"] = "Keep bread fresh", ["sol1"] = "Store it in a sealed bag.", ["sol2"] = "Leave it in the sun.", ["label"] = 0 });
        WriteJsonl(tmp["data/baber/piqa/train.jsonl"],
            new JsonObject { ["goal"] = "Dry a towel", ["sol1"] = "Hang it up.", ["sol2"] = "Bury it.", ["label"] = 0 },
            new JsonObject { ["goal"] = "Open a jar", ["sol1"] = "Freeze it.", ["sol2"] = "Run the lid under hot water.", ["label"] = 1 });
        return Named(tmp, "piqa");
    }

    [Fact]
    public void A_chat_template_takes_the_shots_as_turns_or_as_one_message()
    {
        using var tmp = new TempDir();
        var task = Piqa(tmp);
        var backend = new GoldBackend();
        var item = task.Items(shots: 1, prompting: TaskPrompting.For(backend, "", fewshotAsMultiturn: null, "Be brief."))[0];
        // Multi-turn by default under a chat template: every delimiter dropped, the system instruction its own message.
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQuestion: Open a jar\nAnswer:<|im_end|>\n<|im_start|>assistant\nRun the lid under hot water.<|im_end|>\n"
            + "<|im_start|>user\nQuestion: Keep bread fresh\nAnswer:<|im_end|>\n<|im_start|>assistant\n", item.Context);
        // The assistant's turn starts the answer: no target delimiter before a choice.
        Assert.Equal(["Store it in a sealed bag.", "Leave it in the sun."], task.LoglikelihoodRequests(item).Select(r => r.Continuation));

        var single = task.Items(shots: 1, prompting: TaskPrompting.For(backend, "", fewshotAsMultiturn: false, null))[0];
        Assert.Equal("<|im_start|>user\nQuestion: Open a jar\nAnswer: Run the lid under hot water.\n\nQuestion: Keep bread fresh\nAnswer:<|im_end|>\n<|im_start|>assistant\n", single.Context);

        // Without a chat template the system instruction is put before the prompt as it is, as the harness joins its messages.
        var plain = task.Items(shots: 1, prompting: TaskPrompting.For(backend, null, null, "Be brief."))[0];
        Assert.Equal("Be brief.Question: Open a jar\nAnswer: Run the lid under hot water.\n\nQuestion: Keep bread fresh\nAnswer:", plain.Context);
        Assert.Equal([" Store it in a sealed bag.", " Leave it in the sun."], task.LoglikelihoodRequests(plain).Select(r => r.Continuation));
        Assert.Contains("needs --apply-chat-template", Assert.Throws<AttuneException>(() => TaskPrompting.For(backend, null, true, null)).Message);
    }

    [Fact]
    public void A_template_that_refuses_the_system_role_gets_the_prompt_without_it()
    {
        // Gemma's manner: a system message raises; the harness renders again without it.
        var strict = new Attune.Text.Templates.ChatTemplate("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
            + "<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}");
        var text = ChatPrompt.RenderTaskChat(strict, [ChatMessage.System("Be brief."), ChatMessage.User("2+2?")], continueFinalMessage: false);
        Assert.Equal("<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n", text);
        Assert.ThrowsAny<AttuneException>(() => ChatPrompt.RenderChat(strict, [ChatMessage.System("Be brief."), ChatMessage.User("2+2?")], continueFinalMessage: false));
    }

    [Fact]
    public void Under_a_chat_template_a_gen_prefix_is_the_open_assistant_turn()
    {
        using var tmp = new TempDir();
        WriteJsonl(tmp["data/allenai/ai2_arc/ARC-Challenge/test.jsonl"], new JsonObject
        {
            ["id"] = "q", ["question"] = "Which is a metal?", ["answerKey"] = "C",
            ["choices"] = new JsonObject { ["text"] = new JsonArray("wood", "glass", "iron", "paper"), ["label"] = new JsonArray("A", "B", "C", "D") },
        });
        var task = Named(tmp, "arc_challenge_chat");
        var item = task.Items(prompting: TaskPrompting.For(new GoldBackend(), "", null, null))[0];
        Assert.StartsWith("<|im_start|>user\nGiven the following question", item.Context);
        // The final assistant message is continued (no generation prompt after it), and the prompt carries its own special tokens.
        Assert.EndsWith("one of A, B, C or D.<|im_end|>\n<|im_start|>assistant\nThe best answer is", item.Context);
        Assert.True(task.GenerateRequestFor(item).Templated);
    }

    // ---- output in the harness's shape: results with groups, and per-document samples ----

    [Fact]
    public async Task Results_and_samples_take_the_harness_shape_with_a_size_weighted_group()
    {
        using var tmp = new TempDir();
        WriteParquet(tmp["data/facebook/xnli/fr/validation-00000-of-00001.parquet"], [
            new XnliRow { Premise = "A", Hypothesis = "a", Label = 0 }, new XnliRow { Premise = "B", Hypothesis = "b", Label = 0 }, new XnliRow { Premise = "C", Hypothesis = "c", Label = 0 },
        ]);
        WriteParquet(tmp["data/google-research-datasets/paws-x/fr/test-00000-of-00001.parquet"], [
            new PawsRow { Id = 1, Sentence1 = "Un .", Sentence2 = "Deux .", Label = 1 }, new PawsRow { Id = 2, Sentence1 = "Trois .", Sentence2 = "Quatre .", Label = 1 },
        ]);
        WriteText(tmp["tasks/fr_pair.yaml"], "group: fr_pair\ngroup_alias: French pair\ntask:\n  - xnli_fr\n  - paws_fr\naggregate_metric_list:\n  - metric: acc\nmetadata:\n  version: 2.0\n");
        var groups = new List<TaskGroup>();
        var tasks = TaskList.Resolve("fr_pair", [HarnessTasks, tmp["tasks"]], groups, new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) });
        // xnli: every "Oui" right (3 of 3); paws: "Oui" right for "Un" only (1 of 2).
        var backend = new GoldBackend((_, cont) => cont.Contains(", correct? Oui,") || cont.Contains("Un, n'est-ce pas? Oui"));
        var results = await IclEvaluation.RunAsync(tasks, new RequestRunner(backend));
        var json = HarnessResults.Build(tasks, results, groups, "org/model", limit: null);

        var xnli = json["results"]!["xnli_fr"]!;
        Assert.Equal(1.0, (double)xnli["acc,none"]!);
        Assert.Equal(0.0, (double)xnli["acc_stderr,none"]!);
        Assert.Equal(0.5, (double)json["results"]!["paws_fr"]!["acc,none"]!);
        Assert.Equal(0.5, (double)json["results"]!["paws_fr"]!["acc_stderr,none"]!, 1e-12); // √(0.5 / 2), the sample (n − 1) form
        var group = json["groups"]!["fr_pair"]!;
        Assert.Equal("French pair", (string)group["alias"]!);
        Assert.Equal(0.8, (double)group["acc,none"]!, 1e-12); // (3·1 + 2·0.5) / 5: weighted by size, the harness's default
        Assert.Equal(Math.Sqrt(1.0 / 30), (double)group["acc_stderr,none"]!, 1e-12); // pooled: √((2·0·3 + 1·0.25·2) / (5 − 2) / 5)
        Assert.Equal(5, (int)group["sample_count"]!["acc,none"]!);
        Assert.Equal(["xnli_fr", "paws_fr"], json["group_subtasks"]!["fr_pair"]!.AsArray().Select(x => (string)x!));
        Assert.Equal("2.0", (string)json["versions"]!["fr_pair"]!);
        Assert.Equal(1.0, (double)json["versions"]!["xnli_fr"]!);
        Assert.Equal(0, (int)json["n-shot"]!["fr_pair"]!);
        Assert.Equal(3, (int)json["n-samples"]!["xnli_fr"]!["original"]!);
        Assert.True((bool)json["higher_is_better"]!["paws_fr"]!["acc"]!);
        Assert.Equal("org__model", (string)json["model_name_sanitized"]!);

        var sample = HarnessResults.Samples(tasks[1], results[1]).First();
        Assert.Equal(0, (int)sample["doc_id"]!);
        Assert.Equal("1", (string)sample["target"]!);
        Assert.Equal("", (string)sample["arguments"]!["gen_args_1"]!["arg_0"]!);
        Assert.Equal("Un, n'est-ce pas? Oui, deux.", (string)sample["arguments"]!["gen_args_1"]!["arg_1"]!);
        Assert.Equal(["-5", "False"], sample["filtered_resps"]![0]!.AsArray().Select(x => (string)x!));
        Assert.Equal("none", (string)sample["filter"]!);
        Assert.Equal(1.0, (double)sample["acc"]!);
        Assert.Equal(64, ((string)sample["doc_hash"]!).Length);

        // Where --output-path puts them: DIR/<model>/results_<date>.json with the samples beside it, or FILE_<date>.json.
        var written = HarnessResults.Write(tmp["out"], logSamples: true, tasks, results, groups, "org/model", limit: null);
        Assert.Equal(tmp["out/org__model"], Path.GetDirectoryName(written));
        Assert.StartsWith("results_", Path.GetFileName(written));
        Assert.Equal(0.8, (double)JsonNode.Parse(File.ReadAllText(written))!["groups"]!["fr_pair"]!["acc,none"]!, 1e-12);
        var samples = Directory.GetFiles(tmp["out/org__model"], "samples_paws_fr_*.jsonl").Single();
        Assert.Equal(2, File.ReadAllLines(samples).Length);
        Assert.StartsWith(tmp["flat/run_"], HarnessResults.Write(tmp["flat/run.json"], logSamples: false, tasks, results, groups, "org/model", limit: null));
    }

    // ---- hooks a module makes in a loop (Global-MMLU's per-subject filters) ----

    [Fact]
    public async Task Hooks_made_in_a_loop_are_found_by_their_family()
    {
        using var tmp = new TempDir();
        // A module in Global-MMLU's manner: one filter, bound to each subject with functools.partial, put into globals().
        WriteText(tmp["tasks/global_mmlu/full/fr/utils.py"], string.Join("\n",
            "from functools import partial", "TOPICS = [\"virology\", \"anatomy\"]",
            "def process_docs(dataset, subject):", "    return dataset.filter(lambda x: x[\"subject\"] == subject)",
            "globals().update({f\"process_{t}\": partial(process_docs, subject=t) for t in TOPICS})", ""));
        WriteText(tmp["tasks/global_mmlu/full/fr/virology.yaml"], string.Join("\n",
            "task: gm_fr_virology", "dataset_path: CohereForAI/Global-MMLU", "dataset_name: fr", "test_split: test", "output_type: multiple_choice",
            "process_docs: !function utils.process_virology", "doc_to_text: \"{{question}}\"", "doc_to_choice: [A, B]", "doc_to_target: answer", ""));
        WriteJsonl(tmp["data/CohereForAI/Global-MMLU/fr/test.jsonl"],
            new JsonObject { ["subject"] = "anatomy", ["question"] = "Os ?", ["answer"] = "A" },
            new JsonObject { ["subject"] = "virology", ["question"] = "Virus ?", ["answer"] = "B" });
        var data = new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) };
        var task = TaskList.Resolve("gm_fr_virology", [tmp["tasks"]], data: data).Single();
        Assert.Equal(["Virus ?"], task.EvalDocs.Select(d => (string)d["question"]!));
        Assert.Equal(1.0, (await Run(task, new GoldBackend((_, cont) => cont == " B"))).Metrics["acc"].Value);
        // A name the module does not make is still refused.
        File.WriteAllText(tmp["tasks/global_mmlu/full/fr/virology.yaml"], File.ReadAllText(tmp["tasks/global_mmlu/full/fr/virology.yaml"]).Replace("process_virology", "process_astrology"));
        Assert.Contains("defines no process_astrology", Assert.Throws<AttuneException>(() => TaskList.Resolve("gm_fr_virology", [tmp["tasks"]], data: data)).Message);
    }

    // ---- a metric hook with its aggregation hook (the French bench's ROUGE-1) ----

    [Fact]
    public async Task Rouge1_hooks_score_each_pair_and_average()
    {
        using var tmp = new TempDir();
        WriteText(tmp["tasks/french_bench/utils.py"], "def rouge1(items):\n    return items\n\ndef rouge1_agg(items):\n    return 0\n");
        WriteText(tmp["tasks/french_bench/titles.yaml"], string.Join("\n",
            "task: fr_titles", "dataset_path: orange/titles", "test_split: test", "output_type: generate_until", "doc_to_text: \"{{text}}\"", "doc_to_target: title",
            "metric_list:", "  - metric: !function utils.rouge1", "    aggregation: !function utils.rouge1_agg", "    higher_is_better: true", ""));
        WriteJsonl(tmp["data/orange/titles/test.jsonl"],
            new JsonObject { ["text"] = "a", ["title"] = "Le chat dort." }, new JsonObject { ["text"] = "b", ["title"] = "Un été chaud" });
        var task = TaskList.Resolve("fr_titles", [tmp["tasks"]], data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) }).Single();
        var result = await Run(task, new GoldBackend(generate: p => p == "a" ? "le chat mange" : "un été froid"));
        // rouge_score's tokens: lower case, anything but a–z and 0–9 separates ("été" is the token "t"): 2 of 3 unigrams shared both times.
        Assert.Equal([2 / 3.0, 2 / 3.0], result.Items.Select(i => i.Scores["rouge1"]));
        Assert.Equal(2 / 3.0, result.Metrics["rouge1"].Value, 12);

        // is_included: right when the gold answer is inside the generation.
        File.AppendAllText(tmp["tasks/french_bench/utils.py"], "\ndef is_included(items):\n    return items[0] in items[1]\n");
        WriteText(tmp["tasks/french_bench/trivia.yaml"], string.Join("\n",
            "task: fr_trivia", "dataset_path: orange/titles", "test_split: test", "output_type: generate_until", "doc_to_text: \"{{text}}\"", "doc_to_target: title",
            "metric_list:", "  - metric: !function utils.is_included", "    aggregation: mean", ""));
        var trivia = TaskList.Resolve("fr_trivia", [tmp["tasks"]], data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) }).Single();
        var included = await Run(trivia, new GoldBackend(generate: p => p == "a" ? "Réponse : Le chat dort. Oui." : "un été"));
        Assert.Equal([1.0, 0.0], included.Items.Select(i => i.Scores["is_included"]));

        // The Spanish bench's XL-Sum documents: runs of spaces collapsed in text and summary.
        WriteText(tmp["tasks/spanish_bench/utils.py"], "def process_xlsum(dataset):\n    return dataset\n");
        WriteText(tmp["tasks/spanish_bench/xlsum.yaml"], string.Join("\n",
            "task: es_xlsum", "dataset_path: csebuetnlp/xlsum", "dataset_name: spanish", "test_split: test", "output_type: generate_until",
            "process_docs: !function utils.process_xlsum", "doc_to_text: \"{{text}}\"", "doc_to_target: summary", ""));
        WriteJsonl(tmp["data/csebuetnlp/xlsum/spanish/test.jsonl"], new JsonObject { ["text"] = "Un   texto  largo", ["summary"] = "Un  resumen" });
        var xlsum = TaskList.Resolve("es_xlsum", [tmp["tasks"]], data: new DataSources { DataDirs = [tmp["data"]], Cache = new HubCache(tmp["no-cache"]) }).Single();
        Assert.Equal(("Un texto largo", "Un resumen"), ((string)xlsum.EvalDocs[0]["text"]!, (string)xlsum.EvalDocs[0]["summary"]!));
    }

    // ---- hooks that are not there, and the wrong kind ----

    [Fact]
    public void An_unknown_hook_is_one_line_naming_the_function_and_its_file()
    {
        using var tmp = new TempDir();
        WriteText(tmp["tasks/mytask/utils.py"], "def process_docs(dataset):\n    return dataset\n\ndef my_text(doc):\n    return doc['q']\n");
        WriteText(tmp["tasks/mytask/mytask.yaml"], "task: mine\ndataset_path: d.jsonl\noutput_type: generate_until\ndoc_to_text: !function utils.my_text\ndoc_to_target: a\n");
        WriteJsonl(tmp["tasks/mytask/d.jsonl"], new JsonObject { ["q"] = "x", ["a"] = "y" });
        var e = Assert.Throws<AttuneException>(() => TaskList.Resolve(tmp["tasks/mytask/mytask.yaml"]));
        Assert.Contains("!function utils.my_text", e.Message);
        Assert.Contains("mytask/utils.py", e.Message);
        Assert.Contains("no built-in equivalent", e.Message);
        Assert.DoesNotContain("\n", e.Message);

        WriteText(tmp["tasks/mytask/mytask.yaml"], "task: mine\ndataset_path: d.jsonl\noutput_type: generate_until\ndoc_to_text: !function helpers.my_text\ndoc_to_target: a\n");
        Assert.Contains("helpers.py not found", Assert.Throws<AttuneException>(() => TaskList.Resolve(tmp["tasks/mytask/mytask.yaml"])).Message);
    }
}
