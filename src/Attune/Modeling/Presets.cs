using System.Text.Json.Nodes;

namespace Attune.Modeling;

/// <summary>
/// Model shapes for <c>attune init</c>: the published hyper-parameters of common small checkpoints
/// (their config.json values), and tiny shapes of each architecture for tests and demos.
/// </summary>
public static class Presets
{
    public sealed record Preset(string Name, string Arch, JsonObject Config);

    static JsonObject Llama(int hidden, int inter, int layers, int heads, int kv, int vocab, double theta, int maxPos, bool tied,
        JsonObject? ropeScaling = null, double eps = 1e-5) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"), ["model_type"] = "llama",
        ["hidden_size"] = hidden, ["intermediate_size"] = inter, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = heads, ["num_key_value_heads"] = kv, ["head_dim"] = hidden / heads, ["vocab_size"] = vocab,
        ["rms_norm_eps"] = eps, ["rope_theta"] = theta, ["rope_scaling"] = ropeScaling, ["max_position_embeddings"] = maxPos,
        ["tie_word_embeddings"] = tied, ["attention_bias"] = false, ["mlp_bias"] = false, ["hidden_act"] = "silu",
        ["initializer_range"] = 0.02,
    };

    static JsonObject Qwen(string arch, int hidden, int inter, int layers, int heads, int kv, int headDim, int vocab, double theta, int maxPos, bool tied) => new()
    {
        ["architectures"] = new JsonArray(arch == "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM"), ["model_type"] = arch,
        ["hidden_size"] = hidden, ["intermediate_size"] = inter, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = heads, ["num_key_value_heads"] = kv, ["head_dim"] = headDim, ["vocab_size"] = vocab,
        ["rms_norm_eps"] = 1e-6, ["rope_theta"] = theta, ["rope_scaling"] = null, ["max_position_embeddings"] = maxPos,
        ["tie_word_embeddings"] = tied, ["use_sliding_window"] = false, ["attention_bias"] = arch == "qwen3" ? false : null,
        ["hidden_act"] = "silu", ["initializer_range"] = 0.02,
    };

    /// <summary>
    /// Gemma 2 or 3: head_dim and query_pre_attn_scalar given (llama.cpp scales queries by 1/√head_dim,
    /// so the tiny shapes keep the two equal), GeGLU, soft-caps (Gemma 2) or q/k norms and two RoPE bases (Gemma 3).
    /// </summary>
    static JsonObject Gemma(int version, int hidden, int inter, int layers, int heads, int kv, int headDim, int vocab, int window, int maxPos)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(version == 2 ? "Gemma2ForCausalLM" : "Gemma3ForCausalLM"),
            ["model_type"] = version == 2 ? "gemma2" : "gemma3_text",
            ["hidden_size"] = hidden, ["intermediate_size"] = inter, ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads, ["num_key_value_heads"] = kv, ["head_dim"] = headDim, ["vocab_size"] = vocab,
            ["rms_norm_eps"] = 1e-6, ["max_position_embeddings"] = maxPos, ["tie_word_embeddings"] = true,
            ["attention_bias"] = false, ["hidden_activation"] = "gelu_pytorch_tanh", ["initializer_range"] = 0.02,
            ["query_pre_attn_scalar"] = headDim, ["sliding_window"] = window, ["rope_scaling"] = null,
        };
        if (version == 2)
        {
            o["rope_theta"] = 10000.0;
            o["attn_logit_softcapping"] = 50.0;
            o["final_logit_softcapping"] = 30.0;
        }
        else
        {
            o["rope_theta"] = 1000000.0;
            o["rope_local_base_freq"] = 10000.0;
            o["sliding_window_pattern"] = 6;
            o["attn_logit_softcapping"] = null;
            o["final_logit_softcapping"] = null;
        }
        return o;
    }

    static JsonObject Olmo2(int hidden, int inter, int layers, int heads, int kv, int vocab, double theta, int maxPos, bool tied) => new()
    {
        ["architectures"] = new JsonArray("Olmo2ForCausalLM"), ["model_type"] = "olmo2",
        ["hidden_size"] = hidden, ["intermediate_size"] = inter, ["num_hidden_layers"] = layers,
        ["num_attention_heads"] = heads, ["num_key_value_heads"] = kv, ["vocab_size"] = vocab,
        ["rms_norm_eps"] = 1e-6, ["rope_theta"] = theta, ["rope_scaling"] = null, ["max_position_embeddings"] = maxPos,
        ["tie_word_embeddings"] = tied, ["attention_bias"] = false, ["hidden_act"] = "silu", ["initializer_range"] = 0.02,
    };

    public static readonly IReadOnlyList<Preset> All =
    [
        new("tiny", "llama", Llama(64, 176, 2, 4, 2, 512, 10000, 4096, tied: true)),
        new("tiny", "qwen2", Qwen("qwen2", 64, 176, 2, 4, 2, 16, 512, 1000000, 4096, tied: true)),
        new("tiny", "qwen3", Qwen("qwen3", 64, 176, 2, 4, 2, 32, 512, 1000000, 4096, tied: true)),
        // Windows of 8 positions, so short test prompts already cross them; Gemma 3 needs six layers for one global.
        new("tiny", "gemma2", Gemma(2, 64, 176, 2, 4, 2, 16, 512, window: 8, maxPos: 4096)),
        new("tiny", "gemma3", Gemma(3, 64, 176, 6, 4, 2, 16, 512, window: 8, maxPos: 4096)),
        new("tiny", "olmo2", Olmo2(64, 176, 2, 4, 2, 512, 500000, 4096, tied: false)),
        // The demo world's models: ~3M parameters, fast enough to pretrain on two cores in minutes.
        new("demo", "llama", Llama(192, 512, 6, 6, 2, 1024, 10000, 4096, tied: true)),
        new("smollm2-135m", "llama", Llama(576, 1536, 30, 9, 3, 49152, 100000, 8192, tied: true)),
        new("smollm2-360m", "llama", Llama(960, 2560, 32, 15, 5, 49152, 100000, 8192, tied: true)),
        new("qwen2.5-0.5b", "qwen2", Qwen("qwen2", 896, 4864, 24, 14, 2, 64, 151936, 1000000, 32768, tied: true)),
        new("qwen3-0.6b", "qwen3", Qwen("qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 1000000, 40960, tied: true)),
        new("gemma2-2b", "gemma2", Gemma(2, 2304, 9216, 26, 8, 4, 256, 256000, window: 4096, maxPos: 8192)),
        new("gemma3-1b", "gemma3", Gemma(3, 1152, 6912, 26, 4, 1, 256, 262144, window: 512, maxPos: 32768)),
        new("olmo2-1b", "olmo2", Olmo2(2048, 8192, 16, 16, 16, 100352, 500000, 4096, tied: false)),
        new("llama3.2-1b", "llama", Llama(2048, 8192, 16, 32, 8, 128256, 500000, 131072, tied: true,
            new JsonObject { ["factor"] = 32.0, ["high_freq_factor"] = 4.0, ["low_freq_factor"] = 1.0, ["original_max_position_embeddings"] = 8192, ["rope_type"] = "llama3" })),
    ];

    public static IEnumerable<string> Names => All.Select(p => p.Name).Distinct();
    public static IEnumerable<string> Archs => All.Select(p => p.Arch).Distinct();

    /// <summary>The preset of that name; for <c>tiny</c>, the variant of <paramref name="arch"/> (llama by default).</summary>
    public static Preset Find(string name, string? arch)
    {
        var matches = All.Where(p => p.Name == name).ToList();
        if (matches.Count == 0)
            throw new AttuneException(null, "--preset", $"unknown preset \"{name}\"; choose one of {string.Join(", ", Names)}");
        if (arch is not null && !Archs.Contains(arch))
            throw new AttuneException(null, "--arch", $"unknown architecture \"{arch}\"; choose one of {string.Join(", ", Archs)}");
        var preset = arch is null ? matches[0] : matches.FirstOrDefault(p => p.Arch == arch);
        return preset ?? throw new AttuneException(null, "--arch", $"preset \"{name}\" is a {matches[0].Arch} model, not {arch}");
    }
}
