using System.Text.Json.Nodes;
using Attune.Text;
using Attune.Training;

namespace Attune.Tests.Cli;

/// <summary><c>attune train pretrain</c> end to end, in-process, on a tiny model that <c>attune init</c> makes.</summary>
// Bit-exact comparisons between runs: kept out of the way of tests that switch the process-wide SIMD level.
[Collection("Simd")]
public class TrainCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run("", args);

    const string Text = "The museum opens at nine. Le musée ouvre à neuf heures. El museo abre a las nueve. ";

    static double Perplexity(string model, string file)
    {
        var (code, output, err) = Run("perplexity", "--model", model, "--file", file);
        Assert.True(code == 0, err);
        return JsonNode.Parse(output)!["perplexity"]!.GetValue<double>();
    }

    [Fact]
    public void Packing_predicts_every_token_of_the_joined_documents_once()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "2", "--out", tmp["m"]).Code);
        var tokenizer = Tokenizer.Load(tmp["m"]);
        string[] docs = [Text, "", "bonjour", string.Concat(Enumerable.Repeat(Text, 3))];
        var examples = PretrainData.Pack(docs, tokenizer, blockSize: 16, endOfText: 7);
        var stream = docs.Where(d => d.Length > 0).SelectMany(d => tokenizer.Encode(d).Append(7)).ToList();
        Assert.All(examples, e => Assert.True(e.Tokens.Length <= 16 && e.Tokens[1..].SequenceEqual(e.Targets[..^1])));
        Assert.Equal(stream[1..], examples.SelectMany(e => e.Targets));
        Assert.Equal(stream[..^1], examples.SelectMany(e => e.Tokens));
    }

    [Fact]
    public void Pretraining_lowers_perplexity_and_resumes_and_refuses_bad_data()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "2", "--out", tmp["m"]).Code);
        File.WriteAllText(tmp["train.txt"], string.Concat(Enumerable.Repeat(Text, 12)));
        File.WriteAllText(tmp["more.jsonl"], "{\"text\": \"Le musée ferme à six heures.\"}\n\n{\"text\": \"The museum closes at six.\"}\n");
        double before = Perplexity(tmp["m"], tmp["train.txt"]);

        string[] train = ["train", "pretrain", "--model", tmp["m"], "--data", tmp["train.txt"], "--data", tmp["more.jsonl"], "--out", tmp["run"],
            "--steps", "30", "--batch-size", "2", "--lr", "3e-3", "--warmup", "3", "--block-size", "32", "--save-every", "10"];
        var (code, output, err) = Run(train);
        Assert.True(code == 0, err);
        Assert.Equal(30, JsonNode.Parse(output)!["steps"]!.GetValue<int>());
        double after = Perplexity(tmp["run"], tmp["train.txt"]);
        Assert.True(after < before * 0.5, $"perplexity {before:F1} → {after:F1}");
        Assert.Equal(30, File.ReadAllLines(tmp["run/metrics.jsonl"]).Length);
        Assert.True(Directory.Exists(tmp["run/checkpoint-30"]));

        // A second run into the same folder needs --resume; resuming a finished run changes nothing.
        (code, _, err) = Run(train);
        Assert.Equal(2, code);
        Assert.Contains("--resume", err);
        var weights = File.ReadAllBytes(tmp["run/model.safetensors"]);
        (code, _, err) = Run([.. train, "--resume"]);
        Assert.True(code == 0, err);
        Assert.Equal(weights, File.ReadAllBytes(tmp["run/model.safetensors"]));

        File.WriteAllText(tmp["bad.jsonl"], "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n");
        (code, _, err) = Run("train", "pretrain", "--model", tmp["m"], "--data", tmp["bad.jsonl"], "--out", tmp["bad"]);
        Assert.Equal(2, code);
        Assert.Contains("bad.jsonl: line 2", err);
        Assert.False(Directory.Exists(tmp["bad"]));

        // Asked to, the run skips bad lines and counts them.
        File.WriteAllText(tmp["bad.jsonl"], "{\"text\": \"fine, and long enough to train on\"}\n{\"txt\": \"typo\"}\nnot json\n");
        (code, output, err) = Run("train", "pretrain", "--model", tmp["m"], "--data", tmp["bad.jsonl"], "--out", tmp["bad"], "--steps", "2", "--skip-bad");
        Assert.True(code == 0, err);
        Assert.Equal(2, JsonNode.Parse(output)!["skipped"]!.GetValue<int>());
        Assert.Contains("skipped 2 bad data line(s); first: ", err);
        Assert.Contains("line 2", err);
    }

    const string Sft = """
        {"messages":[{"role":"user","content":"What is the capital of France?"},{"role":"assistant","content":"Paris."}]}
        {"messages":[{"role":"user","content":"Quelle est la capitale de l'Espagne ?"},{"role":"assistant","content":"Madrid."}]}
        {"messages":[{"role":"user","content":"Say hello."},{"role":"assistant","content":"Hello!"}]}
        {"prompt":"2+2=","completion":" 4"}
        """;

    [Fact]
    public void Sft_masks_everything_but_the_replies_and_their_end_token()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "2", "--out", tmp["m"]).Code);
        File.WriteAllText(tmp["sft.jsonl"], Sft);
        var tokenizer = Tokenizer.Load(tmp["m"]);
        int imEnd = tokenizer.Encode("<|im_end|>", addSpecialTokens: false).Single(), endOfText = tokenizer.Encode("<|endoftext|>", addSpecialTokens: false).Single();
        var examples = SftData.Load(tmp["sft.jsonl"], tokenizer, new HashSet<int> { endOfText, imEnd }, endOfText, 128);
        string Trained(TrainingExample e) => tokenizer.Decode(e.Targets.Where(t => t != Attune.Modeling.CrossEntropy.Ignore).ToArray(), skipSpecialTokens: false);
        Assert.Equal("Paris.<|im_end|>\n", Trained(examples[0]));
        Assert.Equal(" 4<|endoftext|>", Trained(examples[3]));

        File.WriteAllText(tmp["empty.jsonl"], "{\"prompt\": \"a\", \"completion\": \"\"}\n");
        var e = Assert.Throws<AttuneException>(() => SftData.Load(tmp["empty.jsonl"], tokenizer, new HashSet<int> { endOfText }, endOfText, 128));
        Assert.Contains("line 1", e.Message);
        e = Assert.Throws<AttuneException>(() => SftData.Load(tmp["sft.jsonl"], tokenizer, new HashSet<int> { endOfText }, endOfText, 8));
        Assert.Contains("longer than the block size", e.Message);
    }

    [Fact]
    public void Sft_teaches_a_tiny_model_the_answers_through_its_chat_template_and_to_stop()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "2", "--out", tmp["m"]).Code);
        File.WriteAllText(tmp["sft.jsonl"], Sft);
        var (code, _, err) = Run("train", "sft", "--model", tmp["m"], "--data", tmp["sft.jsonl"], "--out", tmp["run"],
            "--steps", "60", "--batch-size", "4", "--lr", "3e-3", "--save-every", "0");
        Assert.True(code == 0, err);
        foreach (var (question, answer) in new[] { ("What is the capital of France?", "Paris."), ("Say hello.", "Hello!") })
        {
            (code, var text, err) = Run("generate", "--model", tmp["run"], "--mode", "chat", "--prompt", question, "--max-tokens", "12");
            Assert.True(code == 0, err);
            Assert.Equal(answer, text.Trim()); // nothing after the answer: generation stopped on the end-of-turn token
        }
    }

    [Fact]
    public void Sft_takes_the_trained_span_from_generation_blocks_when_the_template_has_them()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "2", "--out", tmp["m"]).Code);
        // The same ChatML layout, but only the reply text (not its end-of-turn marker) inside {% generation %}.
        var config = JsonNode.Parse(File.ReadAllText(tmp["m/tokenizer_config.json"]))!.AsObject();
        config["chat_template"] = "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}";
        File.WriteAllText(tmp["m/tokenizer_config.json"], config.ToJsonString());
        File.WriteAllText(tmp["sft.jsonl"], Sft.Split('\n')[0]);
        var tokenizer = Tokenizer.Load(tmp["m"]);
        int imEnd = tokenizer.Encode("<|im_end|>", addSpecialTokens: false).Single();
        var example = Assert.Single(SftData.Load(tmp["sft.jsonl"], tokenizer, new HashSet<int> { imEnd }, imEnd, 128));
        var trained = example.Targets.Where(t => t != Attune.Modeling.CrossEntropy.Ignore).ToArray();
        // The span covers "Paris." only; the end-of-turn token is added to it because it must be learnt.
        Assert.Equal("Paris.<|im_end|>", tokenizer.Decode(trained));
        Assert.Equal(tokenizer.Encode("Paris.", addSpecialTokens: false).Length + 1, trained.Length);
        // The template's own end-of-turn token is the one trained: nothing is inserted into the rendering.
        var rendered = tokenizer.Encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nParis.<|im_end|>\n", addSpecialTokens: false);
        Assert.Equal(rendered[..^1], example.Tokens);
    }

    [Fact]
    public void A_lora_run_resumed_from_its_adapter_checkpoint_equals_an_uninterrupted_one()
    {
        using var tmp = new TempDir();
        Assert.Equal(0, Run("init", "--preset", "tiny", "--seed", "4", "--out", tmp["m"]).Code);
        File.WriteAllText(tmp["t.txt"], string.Concat(Enumerable.Repeat(Text, 6)));
        string[] Args(string outDir, string steps) => ["train", "pretrain", "--model", tmp["m"], "--data", tmp["t.txt"], "--out", tmp[outDir],
            "--steps", steps, "--block-size", "32", "--save-every", "2", "--lora-rank", "4", "--lora-targets", "all-linear", "--lr", "3e-3", "--schedule", "constant"]; // the same learning rate whatever --steps
        var (code, _, err) = Run(Args("whole", "4"));
        Assert.True(code == 0, err);
        (code, _, err) = Run(Args("split", "2"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(tmp["split/checkpoint-2/adapter_model.safetensors"]));
        Assert.False(File.Exists(tmp["split/checkpoint-2/model.safetensors"])); // adapter checkpoints stay small
        (code, _, err) = Run([.. Args("split", "4"), "--resume"]);
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(tmp["whole/model.safetensors"]), File.ReadAllBytes(tmp["split/model.safetensors"]));
        Assert.Equal(File.ReadAllBytes(tmp["whole/adapter_model.safetensors"]), File.ReadAllBytes(tmp["split/adapter_model.safetensors"]));
        // Resuming the adapter checkpoint as a full run is refused with the reason.
        (code, _, err) = Run([.. Args("split", "6")[..^8], "--resume"]);
        Assert.Equal(2, code);
        Assert.Contains("LoRA", err);
    }
}
