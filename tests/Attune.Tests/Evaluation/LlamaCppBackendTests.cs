using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Evaluation;
using Attune.Evaluation.LlamaCpp;
using Attune.Formats;
using Attune.Modeling;
using Attune.Models;
using Attune.Prompting;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Evaluation;

/// <summary>
/// <c>--model llamacpp:FILE.gguf</c> on an architecture Attune's engine does not run: a tiny Llama rewritten as
/// llama.cpp's <c>exaone</c> (the same block with half-rotation RoPE, so q and k go back to Hugging Face's row
/// order and the attune.config key is dropped). The engine refuses that file in one line naming llamacpp:; the
/// llama.cpp backend scores and generates what the engine computes for the original Llama folder (llama.cpp's
/// f16 KV cache is the only difference).
/// </summary>
[Collection("Simd")]
public class LlamaCppBackendTests
{
    static (string Folder, string Other) Make(TempDir tmp)
    {
        var config = (JsonObject)Presets.Find("tiny", "llama").Config.DeepClone();
        config["initializer_range"] = 0.1; // wide logit gaps: greedy choices do not hang on the cache's rounding
        var c = ModelInitializer.Write(tmp["llama"], config, seed: 5, DType.F32);
        GgufConverter.ToGguf(tmp["llama"], tmp["llama.gguf"], GgmlType.F32);
        using var g = GgufFile.Open(tmp["llama.gguf"]);
        var meta = g.Metadata.Where(m => m.Key != GgufConverter.ConfigKey)
            .Select(m => (Key: m.Key.StartsWith("llama.", StringComparison.Ordinal) ? "exaone." + m.Key["llama.".Length..] : m.Key,
                Value: m.Key == "general.architecture" ? GgufValue.Str("exaone") : m.Value)).ToList();
        var specs = g.Tensors.Select(t => new GgufTensorSpec(t.Name, t.Type, t.Ne)).ToList();
        using (var w = new GgufWriter(tmp["other.gguf"], meta, specs))
        {
            foreach (var t in g.Tensors)
            {
                var bytes = g.Bytes(t).ToArray();
                bool q = t.Name.EndsWith("attn_q.weight", StringComparison.Ordinal), k = t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal);
                if (q || k)
                {
                    var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan()).ToArray();
                    values = GgufConverter.PermuteRows(values, q ? c.NumHeads : c.NumKvHeads, c.HeadDim, (int)t.Ne[0], inverse: true);
                    bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
                }
                w.Write(t.Name, bytes);
            }
            w.Commit();
        }
        return (tmp["llama"], tmp["other.gguf"]);
    }

    [Fact]
    public async Task An_architecture_the_engine_does_not_run_is_scored_and_generated_through_llama_cpp()
    {
        using var tmp = new TempDir();
        var (folder, other) = Make(tmp);
        var e = Assert.Throws<AttuneException>(() => LanguageModel.Load(other));
        Assert.Contains("exaone", e.Message);
        Assert.Contains("llamacpp:", e.Message);

        var reference = ModelReference.Parse("llamacpp:" + other);
        Assert.IsType<ModelReference.LlamaCpp>(reference);
        using var backend = ModelBackends.Open(reference);
        Assert.IsType<LlamaCppBackend>(backend);
        using var local = new LocalBackend(LanguageModel.Load(folder));

        // One context with five choices (more than the sequences beside the context's), one sharing its start, an empty one.
        var requests = new List<LoglikelihoodRequest>();
        foreach (var choice in new[] { " Paris", " Lyon", " Marseille", " Lille", " Nice" })
            requests.Add(new("Question: the capital of France?\nAnswer:", choice));
        requests.Add(new("Question: the capital of Spain?\nAnswer:", " Madrid"));
        requests.Add(new("", "Le musée ouvre à neuf heures."));
        var ours = await local.LoglikelihoodManyAsync(requests);
        var theirs = await backend.LoglikelihoodManyAsync(requests);
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(ours[i].Tokens, theirs[i].Tokens);
            Assert.True(Math.Abs(ours[i].LogProb - theirs[i].LogProb) <= 5e-3 * ours[i].Tokens, $"request {i}: {ours[i].LogProb} vs {theirs[i].LogProb}");
            Assert.Equal(ours[i].IsGreedy, theirs[i].IsGreedy);
        }
        var one = await backend.LoglikelihoodAsync(requests[1].Context, requests[1].Continuation);
        Assert.True(Math.Abs(theirs[1].LogProb - one.LogProb) < 1e-4, $"{theirs[1].LogProb} alone {one.LogProb}"); // llama.cpp sums in another order in another batch

        // Six greedy generations over four sequences: the same text as the engine's; a prompt's top tokens when asked.
        var options = new GenerationOptions { MaxNewTokens = 12, Sampling = new SamplingOptions { Temperature = 0 } };
        var prompts = new[] { "Once upon a time", "Il était une fois", "Había una vez", "1, 2, 3,", "The weather today", "Bonjour" }
            .Select(p => GenerateRequest.Raw(p, options)).ToList();
        prompts[0] = GenerateRequest.Raw("Once upon a time", options with { TopLogprobs = 3 });
        var ourText = await local.GenerateManyAsync(prompts);
        var theirText = await backend.GenerateManyAsync(prompts);
        for (int i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(ourText[i].Text, theirText[i].Text);
            Assert.Equal(ourText[i].Finish, theirText[i].Finish);
        }
        Assert.Equal(3, theirText[0].TopLogprobs!.Count);
        Assert.Equal(ourText[0].TopLogprobs!.Select(t => t.Token), theirText[0].TopLogprobs!.Select(t => t.Token));

        // Chat through the GGUF's own template: the same prompt the folder's template renders.
        var conversation = new[] { ChatMessage.User("¿Qué hora es?") };
        Assert.Equal(local.RenderChat(conversation, null, false), backend.RenderChat(conversation, null, false));
        var reply = await backend.ChatAsync(conversation, options);
        Assert.Equal((await local.ChatAsync(conversation, options)).Text, reply.Text);
    }

    [Fact]
    public async Task Whole_texts_are_scored_in_rolling_windows_as_the_engine_scores_them()
    {
        using var tmp = new TempDir();
        var (folder, other) = Make(tmp);
        using var backend = LlamaCppBackend.Open(other, "test", width: 2, window: 24);
        using var lm = LanguageModel.Load(folder);
        const string text = "Le musée ouvre à neuf heures et ferme à dix-huit heures, sauf le lundi, quand il reste fermé toute la journée pour l'entretien des salles.";
        Assert.True(lm.Tokenizer.Encode(text, addSpecialTokens: false).Length > 48, "the text spans several windows");
        var theirs = (await backend.LoglikelihoodRollingManyAsync([new RollingRequest(text), new RollingRequest("Bonjour")]))[0];
        var ours = lm.ScoreRolling(text, maxLength: 24);
        Assert.Equal(ours.Tokens, theirs.Tokens);
        Assert.True(Math.Abs(ours.LogProb - theirs.LogProb) <= 5e-3 * ours.Tokens, $"{ours.LogProb} vs {theirs.LogProb}");
        Assert.Throws<ArgumentOutOfRangeException>(() => LlamaCppBackend.Open(other, "test", width: 1));
        Assert.Contains("--apply-chat-template", Assert.Throws<AttuneException>(() => backend.RenderChat([ChatMessage.User("hi")], "tool_use", false)).Message);
        backend.Dispose(); // and again at the end of the using: a second Dispose does nothing
    }

    [Fact]
    public void A_sweep_arm_run_by_llama_cpp_answers_as_the_same_model_in_the_engine()
    {
        using var tmp = new TempDir();
        var (folder, other) = Make(tmp);
        var (code, _, err) = CliRunner.Run("", "sweep", "--arm", $"engine={folder}", "--arm", $"llamacpp=llamacpp:{other}", "--langs", "es",
            "--icl", "builtin:nli,builtin:symbols", "--icl-limit", "4", "--if", "builtin", "--if-limit", "2", "--max-tokens", "10", "--store", tmp["s.db"]);
        Assert.True(code == 0, err);
        using var store = new Attune.Experiments.ResultsStore(tmp["s.db"]);
        var cells = store.Cells(withItems: true);
        Assert.Equal(["icl", "if"], cells.Where(c => c.Arm == "llamacpp").Select(c => c.Suite).Order());
        foreach (var cell in cells.Where(c => c.Arm == "llamacpp"))
        {
            Assert.Contains("llamacpp:", cell.ModelIdentity);
            var twin = cells.Single(c => c.Arm == "engine" && c.Suite == cell.Suite && c.Language == cell.Language);
            Assert.Equal(twin.Items.Select(i => i["prediction"]?.ToJsonString() ?? i["response"]?.ToJsonString()),
                cell.Items.Select(i => i["prediction"]?.ToJsonString() ?? i["response"]?.ToJsonString()));
        }
    }

    [Fact]
    public void Commands_that_need_the_engine_refuse_a_llamacpp_model_and_score_runs_on_it()
    {
        using var tmp = new TempDir();
        var (_, other) = Make(tmp);
        var score = CliRunner.Run("""{"context": "Hello", "continuation": " world"}""" + "\n", "score", "--model", "llamacpp:" + other);
        Assert.True(score.Code == 0, score.Err);
        Assert.Contains("\"logprob\"", score.Out);
        var generate = CliRunner.Run("", "generate", "--model", "llamacpp:" + other, "--prompt", "Hi", "--max-tokens", "4", "--temperature", "0");
        Assert.True(generate.Code == 0, generate.Err);
        var perplexity = CliRunner.Run("", "perplexity", "--model", "llamacpp:" + other, "--file", other);
        Assert.NotEqual(0, perplexity.Code);
        Assert.Contains("llama.cpp", perplexity.Err);
        Assert.DoesNotContain("   at ", perplexity.Err);
        var missing = CliRunner.Run("", "generate", "--model", "llamacpp:" + tmp["none.gguf"], "--prompt", "Hi");
        Assert.NotEqual(0, missing.Code);
        Assert.Contains("file not found", missing.Err);
    }
}
