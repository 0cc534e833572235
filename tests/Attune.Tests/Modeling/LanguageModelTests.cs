using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Text;

namespace Attune.Tests.Modeling;

public class LanguageModelTests
{
    /// <summary>A tiny initialised model shared by the tests of this class.</summary>
    public sealed class TinyModelFixture : IDisposable
    {
        readonly TempDir _tmp = new();
        public string Path { get; }
        public TinyModelFixture()
        {
            Path = _tmp["tiny"];
            ModelInitializer.Write(Path, Presets.Find("tiny", "llama").Config, seed: 7, DType.F32);
        }
        public void Dispose() => _tmp.Dispose();
    }

    [Fact]
    public void Init_writes_a_complete_checkpoint_that_is_the_same_for_the_same_seed()
    {
        using var tmp = new TempDir();
        var preset = Presets.Find("tiny", "qwen3");
        ModelInitializer.Write(tmp["a"], preset.Config, seed: 3, DType.BF16);
        ModelInitializer.Write(tmp["b"], preset.Config, seed: 3, DType.BF16);
        ModelInitializer.Write(tmp["c"], preset.Config, seed: 4, DType.BF16);
        Assert.Equal(File.ReadAllBytes(tmp["a/model.safetensors"]), File.ReadAllBytes(tmp["b/model.safetensors"]));
        Assert.NotEqual(File.ReadAllBytes(tmp["a/model.safetensors"]), File.ReadAllBytes(tmp["c/model.safetensors"]));
        using var ckpt = Checkpoint.Open(tmp["a"]);
        Assert.Equal(Architecture.Qwen3, ckpt.Config.Architecture);
        Assert.Equal(DType.BF16, ckpt.Weights.GetView(TensorLayout.Embedding).DType);
        // Norms start at one, matrices small and centred.
        Assert.All(ckpt.Weights.GetView("model.layers.0.self_attn.q_norm.weight").As<BFloat16>().ToArray(), v => Assert.Equal(1f, (float)v));
        var q = ckpt.Weights.GetView("model.layers.0.self_attn.q_proj.weight").As<BFloat16>().ToArray().Select(v => (double)(float)v).ToArray();
        Assert.InRange(Math.Sqrt(q.Average(v => v * v)), 0.018, 0.022);
        var tok = Tokenizer.Load(tmp["a"]);
        Assert.Equal(ckpt.Config.BosTokenId, tok.BosId);
        const string text = "¿Qué tal? Ça va très bien, thank you! 12345";
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
        var chat = tok.Encode("<|im_start|>user<|im_end|>");
        Assert.Equal(tok.TokenToId("<|im_start|>"), chat[0]);
        Assert.Equal(tok.TokenToId("<|im_end|>"), chat[^1]);
        Assert.Empty(Directory.GetDirectories(tmp.Path, ".*"));
    }

    [Fact]
    public void Init_refuses_a_non_empty_folder_and_unknown_presets()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["x"], "");
        Assert.Contains("not empty", Assert.Throws<AttuneException>(() => ModelInitializer.Write(tmp.Path, Presets.Find("tiny", null).Config, 0, DType.F32)).Message);
        Assert.Contains("unknown preset", Assert.Throws<AttuneException>(() => Presets.Find("gpt-5", null)).Message);
        Assert.Contains("is a llama model", Assert.Throws<AttuneException>(() => Presets.Find("smollm2-135m", "qwen2")).Message);
    }

    [Fact]
    public void Sampler_is_greedy_at_temperature_zero_and_reproducible_with_a_seed()
    {
        var logits = new float[] { 0.1f, 2.0f, 1.9f, -1f, 0.5f };
        Assert.Equal(1, new Sampler(new SamplingOptions()).Next(logits));
        Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 1, TopK = 1 }).Next(logits));
        Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 1, TopP = 0.01f }).Next(logits));
        // min_p = 0.95 keeps only tokens within 95% of the best: 1 and 2 (e^-0.1 ≈ 0.905 < 0.95) → just 1.
        Assert.Equal(1, new Sampler(new SamplingOptions { Temperature = 1, MinP = 0.95f }).Next(logits));
        // A strong repetition penalty moves greedy decoding off a repeated token.
        Assert.Equal(2, new Sampler(new SamplingOptions { RepetitionPenalty = 2f }).Next(logits, [1]));
        int[] Draw(ulong seed) { var s = new Sampler(new SamplingOptions { Temperature = 1.5f, Seed = seed }); return Enumerable.Range(0, 50).Select(_ => s.Next(logits)).ToArray(); }
        Assert.Equal(Draw(5), Draw(5));
        Assert.NotEqual(Draw(5), Draw(6));
        Assert.True(Draw(5).Distinct().Count() > 2);
        // With top-k 2 only the two best appear.
        var k2 = new Sampler(new SamplingOptions { Temperature = 5, TopK = 2, Seed = 1 });
        Assert.All(Enumerable.Range(0, 100).Select(_ => k2.Next(logits)), id => Assert.Contains(id, new[] { 1, 2 }));
    }

    [Theory]
    [InlineData(0)] // nothing cut: the draw goes over the ids in order
    [InlineData(4)] // top-k keeping all four: the draw goes over them sorted
    public void Sampler_draws_tokens_at_their_probabilities(int topK)
    {
        // p ∝ 1, 2, 3, 4 at temperature 1.
        var logits = new[] { 0f, MathF.Log(2), MathF.Log(3), MathF.Log(4) };
        var sampler = new Sampler(new SamplingOptions { Temperature = 1, TopK = topK, Seed = 9 });
        var counts = new int[4];
        const int draws = 40_000;
        for (int i = 0; i < draws; i++) counts[sampler.Next(logits)]++;
        for (int id = 0; id < 4; id++)
            Assert.InRange(counts[id] / (double)draws, (id + 1) / 10.0 - 0.01, (id + 1) / 10.0 + 0.01); // ±4 standard errors
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f, 1f, "--temperature")]
    [InlineData(0f, -2, 1f, 0f, 1f, "--top-k")]
    [InlineData(0f, 0, 0f, 0f, 1f, "--top-p")]
    [InlineData(0f, 0, 1.5f, 0f, 1f, "--top-p")]
    [InlineData(0f, 0, 1f, 1f, 1f, "--min-p")]
    [InlineData(0f, 0, 1f, 0f, 0f, "--repetition-penalty")]
    public void Invalid_sampling_parameters_name_the_option(float t, int k, float p, float minP, float rep, string option)
    {
        var e = Assert.Throws<AttuneException>(() => new SamplingOptions { Temperature = t, TopK = k, TopP = p, MinP = minP, RepetitionPenalty = rep }.Validate());
        Assert.StartsWith(option, e.Message);
    }

    public class WithModel(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
    {
        [Fact]
        public void Greedy_generation_follows_the_argmax_of_the_reference_model()
        {
            using var lm = LanguageModel.Load(fixture.Path);
            var prompt = lm.Tokenizer.Encode("The museum opens at", addSpecialTokens: true);
            var result = lm.Generate(prompt, new GenerationOptions { MaxNewTokens = 8 });
            var reference = new ReferenceTransformer(lm.Transformer.Weights);
            var seq = prompt.ToList();
            foreach (var token in result.Tokens)
            {
                var logits = reference.Logits(seq)[^1];
                Assert.Equal(Array.IndexOf(logits, logits.Max()), token);
                seq.Add(token);
            }
            Assert.True(result.Tokens.Count == 8 || result.Finish == FinishReason.Stop);
        }

        [Fact]
        public void Stop_strings_cut_the_text_and_streaming_never_shows_them()
        {
            using var lm = LanguageModel.Load(fixture.Path);
            var prompt = lm.Tokenizer.Encode("Hello", addSpecialTokens: true);
            var free = lm.Generate(prompt, new GenerationOptions { MaxNewTokens = 12, Sampling = new SamplingOptions { Temperature = 1, Seed = 2 } });
            Assert.True(free.Text.Length > 4);
            var stop = free.Text.Substring(free.Text.Length / 2, 2);
            var streamed = new System.Text.StringBuilder();
            var cut = lm.Generate(prompt, new GenerationOptions { MaxNewTokens = 12, StopStrings = [stop], Sampling = new SamplingOptions { Temperature = 1, Seed = 2 } },
                t => streamed.Append(t));
            Assert.Equal(FinishReason.Stop, cut.Finish);
            Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
            Assert.Equal(cut.Text, streamed.ToString());
            var byId = lm.Generate(prompt, new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [free.Tokens[2]], Sampling = new SamplingOptions { Temperature = 1, Seed = 2 } });
            Assert.Equal(free.Tokens.Take(free.Tokens.ToList().IndexOf(free.Tokens[2])), byId.Tokens);
        }

        [Fact]
        public void Score_is_the_sum_of_reference_log_probabilities()
        {
            using var lm = LanguageModel.Load(fixture.Path);
            var context = lm.Tokenizer.Encode("Elle a compté les pommes", addSpecialTokens: false);
            var continuation = lm.Tokenizer.Encode(" deux fois", addSpecialTokens: false);
            var r = lm.Score(context, continuation);
            var all = context.Concat(continuation).ToList();
            var logits = new ReferenceTransformer(lm.Transformer.Weights).Logits(all);
            double expected = 0;
            bool greedy = true;
            for (int i = 0; i < continuation.Length; i++)
            {
                var row = logits[context.Length - 1 + i];
                double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
                expected += row[continuation[i]] - lse;
                greedy &= Array.IndexOf(row, max) == continuation[i];
            }
            Assert.Equal(expected, r.LogProb, 3);
            Assert.Equal(greedy, r.IsGreedy);
            // A continuation produced greedily is reported as greedy.
            var gen = lm.Generate(context, new GenerationOptions { MaxNewTokens = 3 });
            Assert.True(lm.Score(context, gen.Tokens.ToArray()).IsGreedy);
        }

        [Fact]
        public void Perplexity_over_one_window_is_exp_of_the_mean_negative_log_likelihood()
        {
            using var lm = LanguageModel.Load(fixture.Path);
            const string text = "Una buena pregunta suele ser más útil que una respuesta rápida.";
            var ids = lm.Tokenizer.Encode(text, addSpecialTokens: true);
            var logits = new ReferenceTransformer(lm.Transformer.Weights).Logits(ids);
            double nll = 0;
            for (int i = 0; i + 1 < ids.Length; i++)
            {
                var row = logits[i];
                double max = row.Max();
                nll -= row[ids[i + 1]] - max - Math.Log(row.Sum(v => Math.Exp(v - max)));
            }
            var r = lm.Perplexity(text);
            Assert.Equal(ids.Length - 1, r.Tokens);
            Assert.Equal(Math.Exp(nll / (ids.Length - 1)), r.Perplexity, 3);
            // Overlapping windows score every token exactly once.
            Assert.Equal(ids.Length - 1, lm.Perplexity(text, window: 6).Tokens);
        }

        [Fact]
        public void Prompts_over_the_context_window_are_clear_errors()
        {
            using var lm = LanguageModel.Load(fixture.Path);
            var e = Assert.Throws<AttuneException>(() => lm.Generate(new int[5000], new GenerationOptions()));
            Assert.Contains("context window of 4096", e.Message);
        }
    }
}
