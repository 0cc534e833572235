using Attune.Checkpoints;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// The weights of one decoder layer: matrices read in place, small vectors as f32. Norm weights are the
/// multipliers the engine applies (Gemma's stored w already turned into 1 + w); a family without a norm
/// at some place has null there.
/// </summary>
public sealed class LayerWeights
{
    /// <summary>RMSNorm of the attention's input (none in OLMo 2).</summary>
    public float[]? AttnNorm { get; init; }
    /// <summary>RMSNorm of the attention's output, before the residual add (Gemma, OLMo 2).</summary>
    public float[]? AttnPostNorm { get; init; }
    public required WeightMatrix Q { get; init; }
    public required WeightMatrix K { get; init; }
    public required WeightMatrix V { get; init; }
    public required WeightMatrix O { get; init; }
    public float[]? QBias { get; init; }
    public float[]? KBias { get; init; }
    public float[]? VBias { get; init; }
    public float[]? OBias { get; init; }
    /// <summary>RMSNorm weights for q and k: one head's width (Qwen3, Gemma 3) or the whole projection's (OLMo 2).</summary>
    public float[]? QNorm { get; init; }
    public float[]? KNorm { get; init; }
    /// <summary>RMSNorm of the MLP's input (none in OLMo 2).</summary>
    public float[]? FfnNorm { get; init; }
    /// <summary>RMSNorm of the MLP's output, before the residual add (Gemma, OLMo 2).</summary>
    public float[]? FfnPostNorm { get; init; }
    public required WeightMatrix Gate { get; init; }
    public required WeightMatrix Up { get; init; }
    public required WeightMatrix Down { get; init; }
    public float[]? GateBias { get; init; }
    public float[]? UpBias { get; init; }
    public float[]? DownBias { get; init; }
}

/// <summary>
/// A model's weights as the engine reads them: views over a memory-mapped checkpoint (nothing
/// copied but the small vectors, converted to f32), or over memory this object owns.
/// </summary>
public sealed unsafe class ModelWeights : IDisposable
{
    readonly IDisposable? _owner;

    public ModelConfig Config { get; }
    public required WeightMatrix Embedding { get; init; }
    /// <summary>The output projection; the embedding itself when the model ties them.</summary>
    public required WeightMatrix LmHead { get; init; }
    public required float[] FinalNorm { get; init; }
    public required LayerWeights[] Layers { get; init; }
    /// <summary>q and k are stored for interleaved rotary pairs (GGUF <c>llama</c> files).</summary>
    public bool RopeInterleaved { get; init; }
    /// <summary>Per-frequency rotary divisors (GGUF <c>rope_freqs.weight</c>), used instead of the config's scaling.</summary>
    public float[]? RopeFactors { get; init; }

    public ModelWeights(ModelConfig config, IDisposable? owner)
    {
        Config = config;
        _owner = owner;
    }

    /// <summary>Bytes of the matrices (what a decode step streams from memory).</summary>
    public long MatrixBytes =>
        (LmHead.Data == Embedding.Data ? Embedding.ByteLength : Embedding.ByteLength + LmHead.ByteLength)
        + Layers.Sum(l => l.Q.ByteLength + l.K.ByteLength + l.V.ByteLength + l.O.ByteLength + l.Gate.ByteLength + l.Up.ByteLength + l.Down.ByteLength);

    /// <summary>Elements of the matrices, the embedding once when the head is tied to it (the N of the usual 2·N FLOPs per token).</summary>
    public long MatrixParameters =>
        (LmHead.Data == Embedding.Data ? Elements(Embedding) : Elements(Embedding) + Elements(LmHead))
        + Layers.Sum(l => Elements(l.Q) + Elements(l.K) + Elements(l.V) + Elements(l.O) + Elements(l.Gate) + Elements(l.Up) + Elements(l.Down));

    static long Elements(WeightMatrix w) => (long)w.Rows * w.Cols;

    /// <summary>A stored tensor the engine can read in place: its first byte, dtype and shape.</summary>
    public readonly unsafe record struct StoredTensor(nint Data, DType DType, long[] Shape, long ByteLength);

    /// <summary>Views over a checked checkpoint folder's tensors.</summary>
    public static unsafe ModelWeights FromCheckpoint(Checkpoint ckpt, bool ownCheckpoint = false) =>
        FromTensors(ckpt.Config, name =>
        {
            var v = ckpt.Weights.GetView(name);
            return new StoredTensor((nint)v.Pointer, v.DType, v.Shape.ToArray(), v.ByteLength);
        }, ckpt.Weights.Contains, ownCheckpoint ? ckpt : null);

    /// <summary>
    /// Weights over any store of Hugging Face–named tensors (a checkpoint's memory map, or memory
    /// built by a merge); <paramref name="owner"/> is disposed with the weights.
    /// </summary>
    public static unsafe ModelWeights FromTensors(ModelConfig c, Func<string, StoredTensor> get, Func<string, bool> contains, IDisposable? owner)
    {
        WeightMatrix M(string name)
        {
            var t = get(name);
            return new WeightMatrix((byte*)t.Data, WeightTypes.FromDType(t.DType), (int)t.Shape[0], (int)t.Shape[1]);
        }
        float[] F(string name)
        {
            var t = get(name);
            var a = GC.AllocateUninitializedArray<float>((int)(t.ByteLength / t.DType.SizeOf()), pinned: true);
            DTypes.ToSingle(t.DType, new ReadOnlySpan<byte>((void*)t.Data, (int)t.ByteLength), a);
            return a;
        }
        // Gemma stores w and multiplies by 1 + w.
        float[] Norm(string name) => c.NormPlusOne ? F(name).Select(w => 1 + w).ToArray() : F(name);
        float[]? OptNorm(string? suffix, int i) => suffix is null ? null : Norm(L(i, suffix));
        string L(int i, string s) => TensorLayout.Layer(i, s);
        var norms = TensorLayout.Norms(c);
        bool qkNorm = c.QkNorm != QkNorm.None;

        var layers = new LayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
            layers[i] = new LayerWeights
            {
                AttnNorm = OptNorm(norms.AttnInput, i),
                AttnPostNorm = OptNorm(norms.AttnOutput, i),
                Q = M(L(i, "self_attn.q_proj.weight")),
                K = M(L(i, "self_attn.k_proj.weight")),
                V = M(L(i, "self_attn.v_proj.weight")),
                O = M(L(i, "self_attn.o_proj.weight")),
                QBias = c.QkvBias ? F(L(i, "self_attn.q_proj.bias")) : null,
                KBias = c.QkvBias ? F(L(i, "self_attn.k_proj.bias")) : null,
                VBias = c.QkvBias ? F(L(i, "self_attn.v_proj.bias")) : null,
                OBias = c.OutputBias ? F(L(i, "self_attn.o_proj.bias")) : null,
                QNorm = qkNorm ? Norm(L(i, "self_attn.q_norm.weight")) : null,
                KNorm = qkNorm ? Norm(L(i, "self_attn.k_norm.weight")) : null,
                FfnNorm = OptNorm(norms.MlpInput, i),
                FfnPostNorm = OptNorm(norms.MlpOutput, i),
                Gate = M(L(i, "mlp.gate_proj.weight")),
                Up = M(L(i, "mlp.up_proj.weight")),
                Down = M(L(i, "mlp.down_proj.weight")),
                GateBias = c.MlpBias ? F(L(i, "mlp.gate_proj.bias")) : null,
                UpBias = c.MlpBias ? F(L(i, "mlp.up_proj.bias")) : null,
                DownBias = c.MlpBias ? F(L(i, "mlp.down_proj.bias")) : null,
            };
        var embedding = M(TensorLayout.Embedding);
        return new ModelWeights(c, owner)
        {
            Embedding = embedding,
            // Tied models use the embedding even when a copy of it is stored as lm_head.
            LmHead = c.TieWordEmbeddings ? embedding : M(TensorLayout.LmHead),
            FinalNorm = Norm(TensorLayout.FinalNorm),
            Layers = layers,
        };
    }

    /// <summary>Views over a GGUF file's tensors, read in place (F32, F16, BF16 and Q8_0).</summary>
    public static ModelWeights FromGguf(GgufFile g, ModelConfig c, bool ownFile = false)
    {
        var problems = new List<string>();
        WeightMatrix M(string hf, long rows, long cols)
        {
            try { return g.Matrix(GgufConverter.GgufName(hf, c), rows, cols); }
            catch (AttuneException e) { problems.Add(e.Problem.Length > 0 ? $"{GgufConverter.GgufName(hf, c)}: {e.Problem}" : e.Message); return default; }
        }
        float[] F(string hf, long n)
        {
            try { return g.Floats(GgufConverter.GgufName(hf, c), n); }
            catch (AttuneException e) { problems.Add($"{GgufConverter.GgufName(hf, c)}: {e.Problem}"); return []; }
        }
        // llama.cpp's files hold Gemma's norms as 1 + w already (its converter adds the one).
        float[]? OptF(string hf, long n, bool present) => present ? F(hf, n) : null;
        float[]? OptNorm(string? suffix, int i) => suffix is null ? null : F(L(i, suffix), c.HiddenSize);
        string L(int i, string s) => TensorLayout.Layer(i, s);
        int h = c.HiddenSize, q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        var norms = TensorLayout.Norms(c);
        var qk = TensorLayout.QkNormLengths(c);
        var layers = new LayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
            layers[i] = new LayerWeights
            {
                AttnNorm = OptNorm(norms.AttnInput, i),
                AttnPostNorm = OptNorm(norms.AttnOutput, i),
                Q = M(L(i, "self_attn.q_proj.weight"), q, h),
                K = M(L(i, "self_attn.k_proj.weight"), kv, h),
                V = M(L(i, "self_attn.v_proj.weight"), kv, h),
                O = M(L(i, "self_attn.o_proj.weight"), h, q),
                QBias = OptF(L(i, "self_attn.q_proj.bias"), q, c.QkvBias),
                KBias = OptF(L(i, "self_attn.k_proj.bias"), kv, c.QkvBias),
                VBias = OptF(L(i, "self_attn.v_proj.bias"), kv, c.QkvBias),
                OBias = OptF(L(i, "self_attn.o_proj.bias"), h, c.OutputBias),
                QNorm = qk is { } qn ? F(L(i, "self_attn.q_norm.weight"), qn.Q) : null,
                KNorm = qk is { } kn ? F(L(i, "self_attn.k_norm.weight"), kn.K) : null,
                FfnNorm = OptNorm(norms.MlpInput, i),
                FfnPostNorm = OptNorm(norms.MlpOutput, i),
                Gate = M(L(i, "mlp.gate_proj.weight"), ff, h),
                Up = M(L(i, "mlp.up_proj.weight"), ff, h),
                Down = M(L(i, "mlp.down_proj.weight"), h, ff),
                GateBias = OptF(L(i, "mlp.gate_proj.bias"), ff, c.MlpBias),
                UpBias = OptF(L(i, "mlp.up_proj.bias"), ff, c.MlpBias),
                DownBias = OptF(L(i, "mlp.down_proj.bias"), h, c.MlpBias),
            };
        var embedding = M(TensorLayout.Embedding, c.VocabSize, h);
        var lmHead = g.Contains("output.weight") ? M(TensorLayout.LmHead, c.VocabSize, h) : embedding;
        var finalNorm = F(TensorLayout.FinalNorm, h);
        float[]? factors = g.Contains("rope_freqs.weight") ? g.Floats("rope_freqs.weight", c.HeadDim / 2) : null;
        if (problems.Count > 0)
            throw new AttuneException(g.Path, $"{problems.Count} problem(s) with the tensors: {string.Join("; ", problems.Take(8))}");
        return new ModelWeights(c, ownFile ? g : null)
        {
            Embedding = embedding,
            LmHead = lmHead,
            FinalNorm = finalNorm,
            Layers = layers,
            RopeInterleaved = GgufConverter.RopeInterleaved(g.String("general.architecture")),
            RopeFactors = factors,
        };
    }

    public void Dispose() => _owner?.Dispose();
}
