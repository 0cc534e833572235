using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Tests.Modeling;

/// <summary>The optimized forward pass against the double-precision reference on random models.</summary>
[Collection("Simd")]
public class TransformerTests : IDisposable
{
    readonly SimdLevel _saved = Simd.Level;
    public void Dispose() => Simd.Level = _saved;

    public const string Qwen2Untied = """
    {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 40, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
     "max_position_embeddings": 64, "tie_word_embeddings": false}
    """;

    public const string Qwen3 = """
    {"architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 48, "rms_norm_eps": 1e-6,
     "rope_theta": 1000000.0, "max_position_embeddings": 64, "tie_word_embeddings": true}
    """;

    public const string MistralWindow = """
    {"architectures": ["MistralForCausalLM"], "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40, "sliding_window": 3, "max_position_embeddings": 64}
    """;

    public const string Llama3Scaled = """
    {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 40, "rope_theta": 500000.0, "max_position_embeddings": 256,
     "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16, "rope_type": "llama3"},
     "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true}
    """;

    /// <summary>Soft-caps small enough to bite on random weights; a query scale other than 1/√head_dim.</summary>
    public const string Gemma2 = """
    {"architectures": ["Gemma2ForCausalLM"], "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 40, "query_pre_attn_scalar": 12,
     "sliding_window": 3, "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0, "max_position_embeddings": 512}
    """;

    /// <summary>Local and global layers named by layer_types, each with its own RoPE base.</summary>
    public const string Gemma3 = """
    {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 32, "intermediate_size": 48,
     "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 40,
     "query_pre_attn_scalar": 16, "sliding_window": 4, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
     "layer_types": ["sliding_attention", "full_attention", "sliding_attention"], "max_position_embeddings": 512}
    """;

    public const string Olmo2 = """
    {"architectures": ["Olmo2ForCausalLM"], "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40, "rope_theta": 500000.0,
     "max_position_embeddings": 512, "tie_word_embeddings": false}
    """;

    /// <summary>Heads of 64 dimensions: a prompt's blocks of four rows mix their values together (MixFour).</summary>
    public const string WideHeads = """
    {"architectures": ["LlamaForCausalLM"], "hidden_size": 128, "intermediate_size": 96, "num_hidden_layers": 2,
     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 40, "max_position_embeddings": 512}
    """;

    public static TheoryData<string, string, DType> Models() => new()
    {
        { "llama-64-dim-heads", WideHeads, DType.BF16 },
        { "gemma2-softcap-window", Gemma2, DType.F32 },
        { "gemma3-local-global", Gemma3, DType.BF16 },
        { "olmo2-post-norms", Olmo2, DType.F32 },
        { "llama-gqa-tied", TinyModels.LlamaConfig, DType.F32 },
        { "llama-gqa-tied", TinyModels.LlamaConfig, DType.BF16 },
        { "llama-gqa-tied", TinyModels.LlamaConfig, DType.F16 },
        { "qwen2-bias-untied", Qwen2Untied, DType.F32 },
        { "qwen3-qk-norm", Qwen3, DType.BF16 },
        { "mistral-window", MistralWindow, DType.F32 },
        { "llama3-rope-scaling-biases", Llama3Scaled, DType.F16 },
    };

    static double MaxRelativeError(ReadOnlySpan<float> got, double[] expected)
    {
        double scale = expected.Max(Math.Abs), err = 0;
        for (int i = 0; i < expected.Length; i++) err = Math.Max(err, Math.Abs(got[i] - expected[i]));
        return err / scale;
    }

    /// <summary>A tiny model of <paramref name="config"/> written to <paramref name="tmp"/> and opened; <paramref name="maxPositions"/> lengthens its context.</summary>
    static ModelWeights Open(TempDir tmp, string config, DType dtype, int? maxPositions = null)
    {
        if (maxPositions is { } n) config = System.Text.RegularExpressions.Regex.Replace(config, "\"max_position_embeddings\": \\d+", $"\"max_position_embeddings\": {n}");
        TinyModels.Write(tmp.Path, config, dtype);
        return ModelWeights.FromCheckpoint(Checkpoint.Open(tmp.Path), ownCheckpoint: true);
    }

    static int[] Tokens(int n, int vocab, int seed) { var r = new Random(seed); return Enumerable.Range(0, n).Select(_ => r.Next(vocab)).ToArray(); }

    [Theory]
    [MemberData(nameof(Models))]
    public void Prefill_logits_match_the_double_reference(string name, string config, DType dtype)
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype);
        var tokens = Tokens(11, weights.Config.VocabSize, 4);
        var expected = new ReferenceTransformer(weights).Logits(tokens);
        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512 })
        {
            Simd.Level = level;
            var model = new Transformer(weights);
            var logits = model.Forward(model.NewCache(16), tokens, allLogits: true);
            for (int p = 0; p < tokens.Length; p++)
            {
                double err = MaxRelativeError(logits.Row(p), expected[p]);
                Assert.True(err < 1e-4, $"{name} {dtype} {level} position {p}: relative error {err:E2}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Long_prompts_in_two_pieces_match_the_double_reference(string name, string config, DType dtype)
    {
        // 300 positions: the packed products of the linear layers and of attention (a second piece that
        // starts mid-sequence, and more query rows than one attention pass takes).
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype, maxPositions: 512);
        var tokens = Tokens(300, weights.Config.VocabSize, 7);
        var expected = new ReferenceTransformer(weights).Logits(tokens);
        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512 })
        {
            Simd.Level = level;
            var model = new Transformer(weights);
            var cache = model.NewCache(300);
            var first = model.Forward(cache, tokens.AsSpan(0, 40), allLogits: true);
            for (int p = 0; p < 40; p++)
                Assert.True(MaxRelativeError(first.Row(p), expected[p]) < 1e-4, $"{name} {dtype} {level} position {p}");
            var rest = model.Forward(cache, tokens.AsSpan(40), allLogits: true);
            for (int p = 40; p < tokens.Length; p++)
            {
                double err = MaxRelativeError(rest.Row(p - 40), expected[p]);
                Assert.True(err < 1e-4, $"{name} {dtype} {level} position {p}: relative error {err:E2}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Decoding_token_by_token_matches_the_reference(string name, string config, DType dtype)
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype);
        var tokens = Tokens(9, weights.Config.VocabSize, 8);
        var expected = new ReferenceTransformer(weights).Logits(tokens);
        var model = new Transformer(weights);
        var cache = model.NewCache(2); // grows as needed
        var prompt = model.Forward(cache, tokens.AsSpan(0, 4));
        Assert.True(MaxRelativeError(prompt.Row(0), expected[3]) < 1e-4, $"{name} prompt");
        for (int p = 4; p < tokens.Length; p++)
        {
            var step = model.Forward(cache, tokens.AsSpan(p, 1));
            double err = MaxRelativeError(step.Row(0), expected[p]);
            Assert.True(err < 1e-4, $"{name} {dtype} step {p}: {err:E2}");
        }
        Assert.Equal(tokens.Length, cache.Length);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A_bf16_cache_gives_the_reference_with_its_keys_and_values_rounded_to_bf16(string name, string config, DType dtype)
    {
        // Scores and outputs accumulate in f32 from the widened bf16 keys and values, so the reference that rounds them as it
        // stores them is met to the f32 paths' tolerance at most positions. (Against the unrounded reference these random
        // models move by 0.2–6% of the largest logit: their attention is sharp enough to amplify a 2^-9 change in a key.)
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype, maxPositions: 512);
        var tokens = Tokens(300, weights.Config.VocabSize, 9);
        var expected = new ReferenceTransformer(weights) { Bf16KvCache = true }.Logits(tokens);
        foreach (var level in new[] { SimdLevel.Scalar, SimdLevel.V256, SimdLevel.V512 })
        {
            Simd.Level = level;
            var model = new Transformer(weights) { KvCacheBf16 = true };
            var cache = model.NewCache(4); // grows as needed
            Assert.True(cache.Bf16);
            // A short prompt (blocks of four rows through the row kernels), a long piece from mid-sequence (the widened
            // products), then single steps (a decode row's heads of one KV group together).
            var errors = new List<double>();
            var first = model.Forward(cache, tokens.AsSpan(0, 20), allLogits: true);
            for (int p = 0; p < 20; p++) errors.Add(MaxRelativeError(first.Row(p), expected[p]));
            var rest = model.Forward(cache, tokens.AsSpan(20, 270), allLogits: true);
            for (int p = 20; p < 290; p++) errors.Add(MaxRelativeError(rest.Row(p - 20), expected[p]));
            for (int p = 290; p < tokens.Length; p++) errors.Add(MaxRelativeError(model.Forward(cache, tokens.AsSpan(p, 1)).Row(0), expected[p]));
            // A key computed in f32 here and in double there can fall on either side of a bf16 rounding midpoint and be stored
            // one bf16 step apart (about one element in 30,000 here): the positions that attend to it move by up to ~2e-3.
            Assert.True(errors.Max() < 5e-3, $"{name} {dtype} {level}: largest relative error {errors.Max():E2}");
            Assert.True(errors.Count(e => e < 1e-4) >= 0.8 * errors.Count, $"{name} {dtype} {level}: {errors.Count(e => e >= 1e-4)} of {errors.Count} positions beyond 1e-4");
            Assert.Equal(new KvCache(weights.Config, cache.Capacity).Bytes / 2, cache.Bytes);
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A_long_prompt_prefilled_in_pieces_gives_the_logits_of_one_pass(string name, string config, DType dtype)
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype, maxPositions: 1024);
        var model = new Transformer(weights);
        int[] before = Tokens(37, weights.Config.VocabSize, 3);
        foreach (int length in new[] { 255, 256, 300, 511, 700 })
        {
            var tokens = Tokens(length, weights.Config.VocabSize, length);
            // One pass (ForwardMany never splits), then the same prompt through Forward, in pieces from 256 tokens on; both
            // after the same 37 cached tokens.
            var whole = model.NewCache(8);
            model.Forward(whole, before);
            var expected = model.ForwardMany([whole], tokens, [length]).Row(0).ToArray();
            var pieces = model.NewCache(8);
            model.Forward(pieces, before);
            var got = model.Forward(pieces, tokens).Row(0).ToArray();
            Assert.True(expected.AsSpan().SequenceEqual(got), $"{name} {dtype}: {length} tokens");
            Assert.Equal(37 + length, pieces.Length);
        }
    }

    [Fact]
    public void A_batch_of_sequences_decodes_as_each_would_alone_and_forks_share_a_prefix()
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, Qwen3, DType.F32);
        var reference = new ReferenceTransformer(weights);
        var model = new Transformer(weights);
        int[] prefix = [3, 1, 4, 1, 5];
        var shared = model.NewCache(8);
        model.Forward(shared, prefix);
        // Three continuations from one computed prefix, decoded together.
        int[][] next = [[9, 2], [6, 5], [3, 5]];
        var caches = next.Select(_ => shared.Fork(8)).ToArray();
        var last = new float[3][];
        for (int step = 0; step < 2; step++)
        {
            var logits = model.ForwardBatch(caches, next.Select(n => n[step]).ToArray());
            for (int s = 0; s < 3; s++) last[s] = logits.Row(s).ToArray();
        }
        for (int s = 0; s < 3; s++)
        {
            var expected = reference.Logits([.. prefix, .. next[s]]);
            Assert.True(MaxRelativeError(last[s], expected[^1]) < 1e-4, $"sequence {s}");
        }
        Assert.Equal(prefix.Length, shared.Length);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Sequences_run_together_give_what_each_gives_alone(string name, string config, DType dtype)
    {
        // A ragged batch: one sequence long enough for the packed product alone, two short ones, one after a
        // forked prefix; together they pass the product's threshold, which none of the short ones does alone.
        using var tmp = new TempDir();
        using var weights = Open(tmp, config, dtype);
        var reference = new ReferenceTransformer(weights);
        var model = new Transformer(weights);
        int[] prefix = Tokens(6, weights.Config.VocabSize, 4);
        var shared = model.NewCache(8);
        model.Forward(shared, prefix);
        int[][] pieces = [Tokens(40, weights.Config.VocabSize, 5), Tokens(3, weights.Config.VocabSize, 6), Tokens(7, weights.Config.VocabSize, 7)];
        KvCache[] caches = [model.NewCache(40), model.NewCache(3), shared.Fork(16)];
        int[] lengths = [.. pieces.Select(p => p.Length)];
        int[] all = [.. pieces.SelectMany(p => p)];
        int[] rows = [0, 39, 40, 42, 43, 49]; // the first and last row of each
        var logits = model.ForwardMany(caches, all, lengths, rows);
        int[][] whole = [pieces[0], pieces[1], [.. prefix, .. pieces[2]]];
        for (int i = 0; i < rows.Length; i++)
        {
            int s = i / 2, within = rows[i] - lengths.Take(s).Sum() + (s == 2 ? prefix.Length : 0);
            var expected = reference.Logits(whole[s])[within];
            Assert.True(MaxRelativeError(logits.Row(i), expected) < 1e-4, $"{name} {dtype}: sequence {s}, row {rows[i]}");
        }
        Assert.Equal([40, 3, 13], caches.Select(c => c.Length));
        Assert.Equal(6, shared.Length);
        Assert.Throws<ArgumentException>(() => model.ForwardMany([caches[1], caches[1]], [1, 2], [1, 1]));
        Assert.Throws<ArgumentException>(() => model.ForwardMany([model.NewCache(2)], [1, 2], [1]));
    }

    [Fact]
    public void Results_are_identical_across_thread_counts()
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, TinyModels.LlamaConfig, DType.BF16);
        var tokens = Tokens(10, 32, 1);
        float[] Run(int threads)
        {
            using var pool = new WorkerPool(threads);
            var model = new Transformer(weights, pool);
            return model.Forward(model.NewCache(10), tokens, allLogits: true).Row(9).ToArray();
        }
        Assert.Equal(Run(1), Run(2));
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_and_overlong_sequences_are_clear_errors()
    {
        using var tmp = new TempDir();
        using var weights = Open(tmp, TinyModels.LlamaConfig, DType.F32);
        var model = new Transformer(weights);
        Assert.Contains("outside the model's vocabulary", Assert.Throws<AttuneException>(() => model.Forward(model.NewCache(4), [1, 99])).Message);
        Assert.Contains("context window of 128", Assert.Throws<AttuneException>(() => model.Forward(model.NewCache(4), new int[129])).Message);
    }
}
