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
