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

    public static readonly IReadOnlyList<Preset> All =
    [
        new("tiny", "llama", Llama(64, 176, 2, 4, 2, 512, 10000, 4096, tied: true)),
        new("tiny", "qwen2", Qwen("qwen2", 64, 176, 2, 4, 2, 16, 512, 1000000, 4096, tied: true)),
        new("tiny", "qwen3", Qwen("qwen3", 64, 176, 2, 4, 2, 32, 512, 1000000, 4096, tied: true)),
        // The demo world's models: ~3M parameters, fast enough to pretrain on two cores in minutes.
        new("demo", "llama", Llama(192, 512, 6, 6, 2, 1024, 10000, 4096, tied: true)),
        new("smollm2-135m", "llama", Llama(576, 1536, 30, 9, 3, 49152, 100000, 8192, tied: true)),
        new("smollm2-360m", "llama", Llama(960, 2560, 32, 15, 5, 49152, 100000, 8192, tied: true)),
        new("qwen2.5-0.5b", "qwen2", Qwen("qwen2", 896, 4864, 24, 14, 2, 64, 151936, 1000000, 32768, tied: true)),
        new("qwen3-0.6b", "qwen3", Qwen("qwen3", 1024, 3072, 28, 16, 8, 128, 151936, 1000000, 40960, tied: true)),
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
