using System.Text.Json.Nodes;
using Attune.Formats;

namespace Attune.Tests.Formats;

public class ModelConfigTests
{
    static ModelConfig Parse(string json) => ModelConfig.Parse(JsonNode.Parse(json)!.AsObject(), "config.json");

    // The published SmolLM2-135M-Instruct config (hyper-parameters only).
    const string SmolLm2 = """
    {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
     "eos_token_id": 2, "head_dim": 64, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
     "intermediate_size": 1536, "is_llama_config": true, "max_position_embeddings": 8192, "mlp_bias": false,
     "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
     "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null,
     "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 49152}
    """;

    [Fact]
    public void SmolLM2_config_reads_every_hyper_parameter()
    {
        var c = Parse(SmolLm2);
        Assert.Equal(Architecture.Llama, c.Architecture);
        Assert.Equal((576, 30, 9, 3, 64, 1536, 49152), (c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.IntermediateSize, c.VocabSize));
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal(100000, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.QkvBias);
        Assert.False(c.MlpBias);
        Assert.Equal(8192, c.MaxPositionEmbeddings);
        Assert.Equal(1, c.BosTokenId);
        Assert.Equal([2], c.EosTokenIds);
        Assert.Equal("bfloat16", c.TorchDtype);
    }

    [Fact]
    public void Llama3_rope_scaling_and_eos_list_are_read()
    {
        var c = Parse("""
        {"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
         "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "rope_theta": 500000.0,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": true}
        """);
        Assert.Equal(new RopeScaling("llama3", 32, 1, 4, 8192), c.RopeScaling);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        Assert.Equal(64, c.HeadDim);
    }

    [Fact]
    public void Qwen2_has_qkv_bias_and_qwen3_has_explicit_head_dim()
    {
        var q2 = Parse("""
        {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
         "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "rope_theta": 1000000.0,
         "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 32768}
        """);
        Assert.True(q2.QkvBias);
        Assert.False(q2.OutputBias);
        Assert.Null(q2.SlidingWindow);
        Assert.Equal(64, q2.HeadDim);

        var q3 = Parse("""
        {"architectures": ["Qwen3ForCausalLM"], "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
         "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "attention_bias": false}
        """);
        Assert.Equal(Architecture.Qwen3, q3.Architecture);
        Assert.Equal(128, q3.HeadDim);
        Assert.False(q3.QkvBias);
        Assert.False(q3.TieWordEmbeddings);
    }

    // Hyper-parameters of the published Gemma 2 2B, Gemma 3 1B and OLMo 2 1B configs (as transformers writes them).
    const string Gemma2 = """
    {"architectures": ["Gemma2ForCausalLM"], "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "head_dim": 256,
     "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "intermediate_size": 9216,
     "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8, "num_hidden_layers": 26,
     "num_key_value_heads": 4, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
     "vocab_size": 256000, "bos_token_id": 2, "eos_token_id": [1, 107]}
    """;

    const string Gemma3 = """
    {"architectures": ["Gemma3ForCausalLM"], "attn_logit_softcapping": null, "final_logit_softcapping": null, "head_dim": 256,
     "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "intermediate_size": 6912, "max_position_embeddings": 32768,
     "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
     "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": null,
     "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6, "vocab_size": 262144}
    """;

    const string Olmo2 = """
    {"architectures": ["Olmo2ForCausalLM"], "attention_bias": false, "hidden_act": "silu", "hidden_size": 2048,
     "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "olmo2", "num_attention_heads": 16,
     "num_hidden_layers": 16, "num_key_value_heads": 16, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 500000,
     "tie_word_embeddings": false, "vocab_size": 100352}
    """;

    [Fact]
    public void Gemma2_gemma3_and_olmo2_configs_read_their_family_fields()
    {
        var g2 = Parse(Gemma2);
        Assert.Equal(Architecture.Gemma2, g2.Architecture);
        Assert.Equal(Activation.GeluTanh, g2.Activation);
        Assert.True(g2.TieWordEmbeddings); // Gemma's default
        Assert.Equal((50.0, 30.0), (g2.AttnLogitSoftcap!.Value, g2.FinalLogitSoftcap!.Value));
        Assert.Equal(1 / 16.0, g2.AttentionScale, 12);
        Assert.Equal(48f, g2.EmbeddingScale!.Value, 4);
        Assert.True(g2.NormPlusOne);
        Assert.Equal(QkNorm.None, g2.QkNorm);
        // Layer 0 local, then alternating.
        Assert.Equal([4096, null, 4096, null], Enumerable.Range(0, 4).Select(g2.WindowOf));

        var g3 = Parse(Gemma3);
        Assert.Equal(Architecture.Gemma3, g3.Architecture);
        Assert.Null(g3.AttnLogitSoftcap);
        Assert.Null(g3.FinalLogitSoftcap);
        Assert.Equal(QkNorm.PerHead, g3.QkNorm);
        Assert.Equal((1_000_000.0, 10_000.0), (g3.RopeTheta, g3.RopeLocalTheta!.Value));
        // Five local layers, then one global.
        Assert.Equal([5, 11, 17, 23], Enumerable.Range(0, 26).Where(l => g3.WindowOf(l) is null));
        Assert.Equal(256, Parse(Gemma3.Replace("\"head_dim\": 256,", "")).HeadDim); // Gemma's default is 256, not hidden/heads

        var o2 = Parse(Olmo2);
        Assert.Equal(Architecture.Olmo2, o2.Architecture);
        Assert.Equal(QkNorm.Whole, o2.QkNorm);
        Assert.Equal(128, o2.HeadDim);
        Assert.False(o2.NormPlusOne);
        Assert.Null(o2.EmbeddingScale);
        Assert.Null(o2.WindowOf(0));
        Assert.Equal(TensorLayout.Norms(o2), new TensorLayout.LayerNorms(null, "post_attention_layernorm.weight", null, "post_feedforward_layernorm.weight"));
        Assert.Equal([2048L], TensorLayout.Expected(o2).Single(t => t.Name == "model.layers.0.self_attn.q_norm.weight").Shape);

        // layer_types, when given, decides; a wrong one is named.
        var typed = Parse(Gemma2.Replace("\"num_hidden_layers\": 26", "\"num_hidden_layers\": 2, \"layer_types\": [\"full_attention\", \"sliding_attention\"]"));
        Assert.Equal([null, 4096], Enumerable.Range(0, 2).Select(typed.WindowOf));
        Assert.Contains("layer_types[1]", Assert.Throws<AttuneException>(() =>
            Parse(Gemma2.Replace("\"num_hidden_layers\": 26", "\"num_hidden_layers\": 2, \"layer_types\": [\"full_attention\", \"local\"]"))).Message);
        Assert.Contains("hidden_activation", Assert.Throws<AttuneException>(() =>
            Parse(Gemma2.Replace("\"hidden_activation\": \"gelu_pytorch_tanh\"", "\"hidden_activation\": \"relu\""))).Message);
    }

    [Fact]
    public void Mistral_sliding_window_is_kept()
    {
        var m = Parse("""
        {"architectures": ["MistralForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 100, "sliding_window": 4096}
        """);
        Assert.Equal(4096, m.SlidingWindow);
    }

    [Fact]
    public void Unknown_architecture_lists_the_supported_ones()
    {
        var e = Assert.Throws<AttuneException>(() => Parse("""{"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 8}"""));
        Assert.Contains("architectures", e.Message);
        Assert.Contains("GPTNeoXForCausalLM", e.Message);
        foreach (var a in ModelConfig.SupportedArchitectures.Keys) Assert.Contains(a, e.Message);
        Assert.Contains("llamacpp:", e.Message);
    }

    [Theory]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10}""", "hidden_size")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": "big", "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10}""", "hidden_size")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 10}""", "num_key_value_heads")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": 10, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10}""", "hidden_size")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10, "rope_scaling": {"rope_type": "yarn", "factor": 4}}""", "rope_scaling.rope_type")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10, "rms_norm_eps": -1}""", "rms_norm_eps")]
    [InlineData("""{"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 0, "num_attention_heads": 2, "vocab_size": 10}""", "num_hidden_layers")]
    public void Bad_fields_are_named_in_the_error(string json, string field)
    {
        var e = Assert.Throws<AttuneException>(() => Parse(json));
        Assert.StartsWith($"config.json: {field}", e.Message);
    }

    [Fact]
    public void Invalid_json_file_names_the_file()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["config.json"], "{\"architectures\": [");
        var e = Assert.Throws<AttuneException>(() => ModelConfig.Load(tmp["config.json"]));
        Assert.StartsWith(tmp["config.json"], e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }
}
