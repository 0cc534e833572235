namespace Attune.Formats;

/// <summary>A tensor that an architecture needs, with the shape its config implies.</summary>
public sealed record ExpectedTensor(string Name, long[] Shape, bool Optional = false);

/// <summary>
/// The Hugging Face tensor names and shapes of each supported architecture, as a table: what
/// differs between families (biases, q/k norms, tied head) is data here, not code elsewhere.
/// Linear weights are stored <c>[out_features, in_features]</c>.
/// </summary>
public static class TensorLayout
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    public static string Layer(int i, string suffix) => $"model.layers.{i}.{suffix}";

    /// <summary>
    /// The RMSNorms around a layer's two blocks, as per-layer name suffixes (null: the family has none there).
    /// The same Hugging Face name means different things by family: <c>post_attention_layernorm</c> is the
    /// MLP's input norm in Llama and Qwen, and the norm of the attention's output in Gemma and OLMo 2.
    /// </summary>
    public sealed record LayerNorms(string? AttnInput, string? AttnOutput, string? MlpInput, string? MlpOutput);

    static readonly LayerNorms PreNorms = new("input_layernorm.weight", null, "post_attention_layernorm.weight", null);
    static readonly LayerNorms GemmaNorms = new("input_layernorm.weight", "post_attention_layernorm.weight",
        "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight");
    static readonly LayerNorms PostNorms = new(null, "post_attention_layernorm.weight", null, "post_feedforward_layernorm.weight");

    public static LayerNorms Norms(ModelConfig c) => c.Architecture switch
    {
        Architecture.Gemma2 or Architecture.Gemma3 => GemmaNorms,
        Architecture.Olmo2 => PostNorms,
        _ => PreNorms,
    };

    /// <summary>Length of the q and k norm weights: one head's width, or the whole projection's (null: none).</summary>
    public static (long Q, long K)? QkNormLengths(ModelConfig c) => c.QkNorm switch
    {
        QkNorm.PerHead => (c.HeadDim, c.HeadDim),
        QkNorm.Whole => ((long)c.NumHeads * c.HeadDim, (long)c.NumKvHeads * c.HeadDim),
        _ => null,
    };

    /// <summary>A per-layer tensor: name suffix, shape, and when the architecture has it.</summary>
    sealed record LayerTensor(string Suffix, Func<ModelConfig, long[]> Shape, Func<ModelConfig, bool> Present);

    static readonly LayerTensor[] PerLayer =
    [
        new("input_layernorm.weight", c => [c.HiddenSize], c => Norms(c).AttnInput is not null),
        new("self_attn.q_proj.weight", c => [c.NumHeads * c.HeadDim, c.HiddenSize], _ => true),
        new("self_attn.k_proj.weight", c => [c.NumKvHeads * c.HeadDim, c.HiddenSize], _ => true),
        new("self_attn.v_proj.weight", c => [c.NumKvHeads * c.HeadDim, c.HiddenSize], _ => true),
        new("self_attn.q_proj.bias", c => [c.NumHeads * c.HeadDim], c => c.QkvBias),
        new("self_attn.k_proj.bias", c => [c.NumKvHeads * c.HeadDim], c => c.QkvBias),
        new("self_attn.v_proj.bias", c => [c.NumKvHeads * c.HeadDim], c => c.QkvBias),
        new("self_attn.q_norm.weight", c => [QkNormLengths(c)!.Value.Q], c => c.QkNorm != QkNorm.None),
        new("self_attn.k_norm.weight", c => [QkNormLengths(c)!.Value.K], c => c.QkNorm != QkNorm.None),
        new("self_attn.o_proj.weight", c => [c.HiddenSize, c.NumHeads * c.HeadDim], _ => true),
        new("self_attn.o_proj.bias", c => [c.HiddenSize], c => c.OutputBias),
        new("post_attention_layernorm.weight", c => [c.HiddenSize], _ => true),
        new("pre_feedforward_layernorm.weight", c => [c.HiddenSize], c => Norms(c).MlpInput == "pre_feedforward_layernorm.weight"),
        new("mlp.gate_proj.weight", c => [c.IntermediateSize, c.HiddenSize], _ => true),
        new("mlp.up_proj.weight", c => [c.IntermediateSize, c.HiddenSize], _ => true),
        new("mlp.down_proj.weight", c => [c.HiddenSize, c.IntermediateSize], _ => true),
        new("mlp.gate_proj.bias", c => [c.IntermediateSize], c => c.MlpBias),
        new("mlp.up_proj.bias", c => [c.IntermediateSize], c => c.MlpBias),
        new("mlp.down_proj.bias", c => [c.HiddenSize], c => c.MlpBias),
        new("post_feedforward_layernorm.weight", c => [c.HiddenSize], c => Norms(c).MlpOutput is not null),
    ];

    /// <summary>Every tensor the config implies, in the order Hugging Face writes them.</summary>
    public static IReadOnlyList<ExpectedTensor> Expected(ModelConfig c)
    {
        var list = new List<ExpectedTensor> { new(Embedding, [c.VocabSize, c.HiddenSize]) };
        for (int i = 0; i < c.NumLayers; i++)
            foreach (var t in PerLayer)
                if (t.Present(c)) list.Add(new(Layer(i, t.Suffix), t.Shape(c)));
        list.Add(new(FinalNorm, [c.HiddenSize]));
        // A tied model may omit lm_head (it reuses the embedding) or carry a copy of it.
        list.Add(new(LmHead, [c.VocabSize, c.HiddenSize], Optional: c.TieWordEmbeddings));
        return list;
    }
}
