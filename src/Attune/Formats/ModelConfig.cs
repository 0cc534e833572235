using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Formats;

/// <summary>The decoder-only families Attune runs; each is a Hugging Face <c>architectures</c> entry.</summary>
public enum Architecture
{
    Llama,   // LlamaForCausalLM (Llama 1/2/3, SmolLM, SmolLM2)
    Mistral, // MistralForCausalLM
    Qwen2,   // Qwen2ForCausalLM: q/k/v projections carry a bias
    Qwen3,   // Qwen3ForCausalLM: RMSNorm on q and k per head
    Gemma2,  // Gemma2ForCausalLM: scaled embeddings, (1 + w) norms before and after each block, GeGLU, soft-capping, local/global layers
    Gemma3,  // Gemma3ForCausalLM (text): Gemma 2's block with per-head q/k norms instead of soft-capping, 5 local : 1 global, two RoPE bases
    Olmo2,   // Olmo2ForCausalLM: norms after attention and MLP only, RMSNorm over the whole q and k projections
}

/// <summary>The MLP's gate activation (config.json's <c>hidden_act</c> / <c>hidden_activation</c>).</summary>
public enum Activation
{
    Silu,     // SwiGLU: silu(gate) · up
    GeluTanh, // GeGLU with the tanh approximation of GELU (gelu_pytorch_tanh)
}

/// <summary>Where q and k are RMS-normalised before RoPE.</summary>
public enum QkNorm
{
    None,
    PerHead, // each head's d values (Qwen3, Gemma 3)
    Whole,   // the whole projection, all heads together (OLMo 2)
}

/// <summary><c>rope_scaling</c> from config.json. Only the <c>llama3</c> type changes the frequencies here.</summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor,
    double HighFreqFactor,
    int OriginalMaxPositionEmbeddings);

/// <summary>
/// The hyper-parameters of a checkpoint, read from its own config.json with the defaults that
/// transformers applies to each architecture when a field is absent.
/// </summary>
public sealed record ModelConfig
{
    public static readonly IReadOnlyDictionary<string, Architecture> SupportedArchitectures =
        new Dictionary<string, Architecture>(StringComparer.Ordinal)
        {
            ["LlamaForCausalLM"] = Architecture.Llama,
            ["MistralForCausalLM"] = Architecture.Mistral,
            ["Qwen2ForCausalLM"] = Architecture.Qwen2,
            ["Qwen3ForCausalLM"] = Architecture.Qwen3,
            ["Gemma2ForCausalLM"] = Architecture.Gemma2,
            ["Gemma3ForCausalLM"] = Architecture.Gemma3,
            ["Olmo2ForCausalLM"] = Architecture.Olmo2,
        };

    /// <summary>The architectures whose blocks are Gemma's: scaled embeddings, (1 + w) norms, GeGLU.</summary>
    public bool IsGemma => Architecture is Architecture.Gemma2 or Architecture.Gemma3;

    public required Architecture Architecture { get; init; }
    public required string ArchitectureName { get; init; }
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int IntermediateSize { get; init; }
    public required int VocabSize { get; init; }
    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public RopeScaling? RopeScaling { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on q/k/v projections (Qwen2 always; Llama/Qwen3 when attention_bias).</summary>
    public required bool QkvBias { get; init; }
    /// <summary>Bias on the attention output projection (Llama's attention_bias covers o_proj too).</summary>
    public required bool OutputBias { get; init; }
    public required bool MlpBias { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    /// <summary>The window of the layers that attend locally (all layers, unless <see cref="SlidingLayers"/> says which).</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Per layer, whether it attends within <see cref="SlidingWindow"/> (config.json's <c>layer_types</c>); null: every layer does.</summary>
    public IReadOnlyList<bool>? SlidingLayers { get; init; }
    /// <summary>RoPE base of the sliding-window layers when it differs from the global one (Gemma 3's <c>rope_local_base_freq</c>).</summary>
    public double? RopeLocalTheta { get; init; }
    public Activation Activation { get; init; } = Activation.Silu;
    public QkNorm QkNorm { get; init; } = QkNorm.None;
    /// <summary>Multiplies the q·k products: 1/√head_dim, or 1/√query_pre_attn_scalar (Gemma).</summary>
    public required double AttentionScale { get; init; }
    /// <summary>Attention scores become cap·tanh(s/cap) before the softmax (Gemma 2).</summary>
    public double? AttnLogitSoftcap { get; init; }
    /// <summary>Output logits become cap·tanh(z/cap) (Gemma 2).</summary>
    public double? FinalLogitSoftcap { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public string? TorchDtype { get; init; }

    /// <summary>The sliding window of <paramref name="layer"/>, or null when it attends to every earlier position.</summary>
    public int? WindowOf(int layer) => SlidingLayers is null || SlidingLayers[layer] ? SlidingWindow : null;

    /// <summary>The embedding rows are multiplied by √hidden_size, in f32 (Gemma).</summary>
    public float? EmbeddingScale => IsGemma ? MathF.Sqrt(HiddenSize) : null;

    /// <summary>RMSNorm weights are stored as w and applied as 1 + w (Gemma).</summary>
    public bool NormPlusOne => IsGemma;

    /// <summary>Reads and checks a config.json.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        JsonNode? root;
        try { root = JsonNode.Parse(Utf8Input.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON: {e.Message}"); }
        if (root is not JsonObject obj) throw new AttuneException(path, "not a JSON object");
        return Parse(obj, path);
    }

    public static ModelConfig Parse(JsonObject o, string source)
    {
        var reader = new FieldReader(o, source);
        var archName = reader.Architecture();
        var arch = SupportedArchitectures[archName];
        int hidden = reader.RequiredInt("hidden_size", min: 1);
        int layers = reader.RequiredInt("num_hidden_layers", min: 1);
        int heads = reader.RequiredInt("num_attention_heads", min: 1);
        int kvHeads = reader.OptionalInt("num_key_value_heads", min: 1) ?? heads;
        if (heads % kvHeads != 0)
            throw new AttuneException(source, "num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        bool gemma = arch is Architecture.Gemma2 or Architecture.Gemma3;
        int? headDimField = reader.OptionalInt("head_dim", min: 1);
        if (headDimField is null && !gemma && hidden % heads != 0)
            throw new AttuneException(source, "hidden_size", $"{hidden} is not a multiple of num_attention_heads {heads} and head_dim is not given");
        // Gemma's configurations default head_dim (and the query scale) to 256, not hidden / heads.
        int headDim = headDimField ?? (gemma ? 256 : hidden / heads);
        bool attentionBias = reader.OptionalBool("attention_bias") ?? false;
        string defaultType = arch switch
        {
            Architecture.Llama => "llama",
            Architecture.Mistral => "mistral",
            Architecture.Qwen2 => "qwen2",
            Architecture.Qwen3 => "qwen3",
            Architecture.Gemma2 => "gemma2",
            Architecture.Gemma3 => "gemma3_text",
            _ => "olmo2",
        };
        var activationName = reader.OptionalString("hidden_activation") ?? reader.OptionalString("hidden_act") ?? (gemma ? "gelu_pytorch_tanh" : "silu");
        var activation = activationName switch
        {
            "silu" or "swish" => Activation.Silu,
            "gelu_pytorch_tanh" or "gelu_new" or "gelu_fast" => Activation.GeluTanh,
            _ => throw new AttuneException(source, reader.Has("hidden_activation") ? "hidden_activation" : "hidden_act",
                $"\"{activationName}\" is not supported (silu, gelu_pytorch_tanh)"),
        };
        int layerCount = layers;
        int? window = arch switch
        {
            Architecture.Gemma2 or Architecture.Gemma3 => reader.OptionalInt("sliding_window", min: 1) ?? 4096,
            Architecture.Mistral or Architecture.Qwen2 or Architecture.Qwen3
                when reader.OptionalBool("use_sliding_window") ?? arch == Architecture.Mistral => reader.OptionalInt("sliding_window", min: 1),
            _ => null,
        };
        IReadOnlyList<bool>? slidingLayers = gemma
            ? reader.LayerTypes(layerCount) ?? Enumerable.Range(0, layerCount)
                .Select(i => (i + 1) % (arch == Architecture.Gemma2 ? 2 : reader.OptionalInt("sliding_window_pattern", min: 1) ?? 6) != 0).ToList()
            : window is null ? null : reader.LayerTypes(layerCount);
        return new ModelConfig
        {
            Architecture = arch,
            ArchitectureName = archName,
            ModelType = reader.OptionalString("model_type") ?? defaultType,
            HiddenSize = hidden,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            IntermediateSize = reader.RequiredInt("intermediate_size", min: 1),
            VocabSize = reader.RequiredInt("vocab_size", min: 1),
            RmsNormEps = reader.OptionalDouble("rms_norm_eps", positive: true) ?? 1e-6,
            RopeTheta = reader.OptionalDouble("rope_theta", positive: true) ?? (arch == Architecture.Gemma3 ? 1_000_000.0 : 10000.0),
            RopeLocalTheta = arch == Architecture.Gemma3 ? reader.OptionalDouble("rope_local_base_freq", positive: true) ?? 10000.0 : null,
            RopeScaling = reader.RopeScaling(),
            TieWordEmbeddings = reader.OptionalBool("tie_word_embeddings") ?? gemma,
            QkvBias = arch == Architecture.Qwen2 || attentionBias,
            OutputBias = arch is Architecture.Llama or Architecture.Mistral or Architecture.Gemma2 or Architecture.Gemma3 or Architecture.Olmo2 && attentionBias,
            MlpBias = reader.OptionalBool("mlp_bias") ?? false,
            MaxPositionEmbeddings = reader.OptionalInt("max_position_embeddings", min: 1) ?? 2048,
            SlidingWindow = window,
            SlidingLayers = slidingLayers,
            Activation = activation,
            QkNorm = arch switch
            {
                Architecture.Qwen3 or Architecture.Gemma3 => QkNorm.PerHead,
                Architecture.Olmo2 => QkNorm.Whole,
                _ => QkNorm.None,
            },
            AttentionScale = 1 / Math.Sqrt(gemma ? reader.OptionalDouble("query_pre_attn_scalar", positive: true) ?? 256 : headDim),
            AttnLogitSoftcap = arch == Architecture.Gemma2 ? reader.OptionalDoubleOrNull("attn_logit_softcapping", 50.0)
                : arch == Architecture.Gemma3 ? reader.OptionalDoubleOrNull("attn_logit_softcapping", null) : null,
            FinalLogitSoftcap = arch == Architecture.Gemma2 ? reader.OptionalDoubleOrNull("final_logit_softcapping", 30.0)
                : arch == Architecture.Gemma3 ? reader.OptionalDoubleOrNull("final_logit_softcapping", null) : null,
            BosTokenId = reader.OptionalInt("bos_token_id", min: 0),
            EosTokenIds = reader.IntOrIntList("eos_token_id"),
            TorchDtype = reader.OptionalString("torch_dtype") ?? reader.OptionalString("dtype"),
        };
    }

    /// <summary>Reads typed fields with errors that name the field.</summary>
    sealed class FieldReader(JsonObject o, string source)
    {
        public string Architecture()
        {
            var supported = string.Join(", ", SupportedArchitectures.Keys);
            if (o["architectures"] is not JsonArray arr || arr.Count == 0)
                throw new AttuneException(source, "architectures", $"missing; Attune supports {supported}");
            var names = arr.Select(a => a is JsonValue v && v.TryGetValue<string>(out var s) ? s : null).ToList();
            var known = names.FirstOrDefault(n => n is not null && SupportedArchitectures.ContainsKey(n));
            return known ?? throw new AttuneException(source, "architectures",
                $"unsupported [{string.Join(", ", names.Select(n => n ?? "?"))}]; Attune's engine runs {supported}; "
                + "for evaluation, llama.cpp runs the others from a GGUF file (--model llamacpp:FILE.gguf)");
        }

        JsonNode? Get(string name) => o.TryGetPropertyValue(name, out var n) ? n : null;

        public bool Has(string name) => o.ContainsKey(name);

        /// <summary>A positive number that may be absent (the default) or JSON null (none).</summary>
        public double? OptionalDoubleOrNull(string name, double? absent) =>
            !o.TryGetPropertyValue(name, out var n) ? absent : n is null ? null : OptionalDouble(name, positive: true);

        /// <summary><c>layer_types</c>: one "sliding_attention" or "full_attention" per layer, or null when absent.</summary>
        public IReadOnlyList<bool>? LayerTypes(int layers)
        {
            var n = Get("layer_types");
            if (n is null) return null;
            if (n is not JsonArray arr || arr.Count != layers)
                throw new AttuneException(source, "layer_types", $"must be a list of {layers} layer types (one per layer)");
            return arr.Select((x, i) => (x as JsonValue)?.TryGetValue<string>(out var s) == true ? s switch
            {
                "sliding_attention" => true,
                "full_attention" => false,
                _ => throw new AttuneException(source, $"layer_types[{i}]", $"\"{s}\" is not sliding_attention or full_attention"),
            } : throw new AttuneException(source, $"layer_types[{i}]", "must be a string")).ToList();
        }

        public int RequiredInt(string name, int min) =>
            OptionalInt(name, min) ?? throw new AttuneException(source, name, "missing (an integer is required)");

        public int? OptionalInt(string name, int min)
        {
            var n = Get(name);
            if (n is null) return null;
            if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i))
            {
                if (i < min) throw new AttuneException(source, name, $"{i} is below {min}");
                return i;
            }
            throw new AttuneException(source, name, $"must be an integer, got {n.ToJsonString()}");
        }

        public double? OptionalDouble(string name, bool positive)
        {
            var n = Get(name);
            if (n is null) return null;
            // A number built in memory may hold an int, which TryGetValue<double> refuses; its JSON text always parses.
            if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number
                && double.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d))
            {
                if (positive && !(d > 0)) throw new AttuneException(source, name, $"must be positive, got {d}");
                return d;
            }
            throw new AttuneException(source, name, $"must be a number, got {n.ToJsonString()}");
        }

        public bool? OptionalBool(string name)
        {
            var n = Get(name);
            if (n is null) return null;
            if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
            throw new AttuneException(source, name, $"must be true or false, got {n.ToJsonString()}");
        }

        public string? OptionalString(string name)
        {
            var n = Get(name);
            if (n is null) return null;
            if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
            throw new AttuneException(source, name, $"must be a string, got {n.ToJsonString()}");
        }

        public IReadOnlyList<int> IntOrIntList(string name)
        {
            var n = Get(name);
            if (n is null) return [];
            if (n is JsonValue) return [OptionalInt(name, 0)!.Value];
            if (n is JsonArray arr)
                return arr.Select((x, i) => x is JsonValue v && v.TryGetValue<int>(out var id) && id >= 0 ? id
                    : throw new AttuneException(source, $"{name}[{i}]", "must be a non-negative integer")).ToList();
            throw new AttuneException(source, name, "must be an integer or a list of integers");
        }

        public RopeScaling? RopeScaling()
        {
            var n = Get("rope_scaling");
            if (n is null) return null;
            if (n is not JsonObject rs) throw new AttuneException(source, "rope_scaling", "must be an object or null");
            var inner = new FieldReader(rs, source);
            var type = inner.OptionalString("rope_type") ?? inner.OptionalString("type")
                ?? throw new AttuneException(source, "rope_scaling.rope_type", "missing");
            if (type == "default") return null;
            if (type != "llama3" && type != "linear")
                throw new AttuneException(source, "rope_scaling.rope_type", $"\"{type}\" is not supported (llama3, linear, default)");
            double factor = inner.OptionalDouble("factor", positive: true)
                ?? throw new AttuneException(source, "rope_scaling.factor", "missing");
            if (type == "linear") return new RopeScaling(type, factor, 0, 0, 0);
            return new RopeScaling(type, factor,
                inner.OptionalDouble("low_freq_factor", positive: true) ?? throw new AttuneException(source, "rope_scaling.low_freq_factor", "missing"),
                inner.OptionalDouble("high_freq_factor", positive: true) ?? throw new AttuneException(source, "rope_scaling.high_freq_factor", "missing"),
                inner.OptionalInt("original_max_position_embeddings", min: 1) ?? throw new AttuneException(source, "rope_scaling.original_max_position_embeddings", "missing"));
        }
    }
}
