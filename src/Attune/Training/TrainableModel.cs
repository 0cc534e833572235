using System.Numerics.Tensors;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Training;

/// <summary>
/// A Llama-family model held as f32 master weights for training, with one forward that keeps each
/// layer's activations and the backward that walks them in reverse, op by op (the backward of every
/// op sits beside its forward). One sequence at a time; gradients accumulate until cleared, so
/// micro-batches add up. Parameters use the Hugging Face names.
/// </summary>
public sealed class TrainableModel
{
    public ModelConfig Config { get; }
    public Dictionary<string, float[]> Parameters { get; }
    public Dictionary<string, float[]> Gradients { get; }
    readonly Rope _rope;
    readonly CausalAttention _attention;

    TrainableModel(ModelConfig c, Dictionary<string, float[]> parameters)
    {
        Config = c;
        Parameters = parameters;
        Gradients = parameters.ToDictionary(p => p.Key, p => new float[p.Value.Length]);
        _rope = new Rope(c);
        _attention = new CausalAttention(c.NumHeads, c.NumKvHeads, c.HeadDim, c.SlidingWindow);
    }

    /// <summary>Every tensor of a checkpoint, converted to f32 (the checkpoint may be f32, f16 or bf16).</summary>
    public static TrainableModel FromCheckpoint(Checkpoint ckpt)
    {
        var parameters = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in TensorLayout.Expected(ckpt.Config))
        {
            if (t.Optional && (ckpt.Config.TieWordEmbeddings || !ckpt.Weights.Contains(t.Name))) continue;
            var v = ckpt.Weights.GetView(t.Name);
            var f = new float[v.ElementCount];
            DTypes.ToSingle(v.DType, v.Bytes, f);
            parameters[t.Name] = f;
        }
        return new TrainableModel(ckpt.Config, parameters);
    }

    /// <summary>
    /// Writes the weights as a checkpoint folder's files into <paramref name="dir"/> (the caller publishes the
    /// folder atomically): config.json and generation_config.json from <paramref name="source"/> with
    /// <c>torch_dtype</c> set, its tokenizer files, and the weights in <paramref name="dtype"/>.
    /// </summary>
    public void WriteCheckpointFiles(string dir, Checkpoint source, DType dtype, long maxShardBytes = ShardedSafeTensorsWriter.DefaultMaxShardBytes)
    {
        source.CopyConfigTo(dir, dtype);
        source.CopyTokenizerFilesTo(dir);
        var specs = TensorLayout.Expected(Config).Where(t => Parameters.ContainsKey(t.Name)).Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList();
        using var writer = new ShardedSafeTensorsWriter(dir, specs, new Dictionary<string, string> { ["format"] = "pt" }, maxShardBytes);
        foreach (var spec in specs) writer.Write(spec.Name, DTypes.FromSingle(dtype, Parameters[spec.Name]));
        writer.Commit();
    }

    public void ZeroGradients()
    {
        foreach (var g in Gradients.Values) Array.Clear(g);
    }

    string L(int i, string s) => TensorLayout.Layer(i, s);
    float[] P(string n) => Parameters[n];
    float[] G(string n) => Gradients[n];
    float[]? OptP(string n) => Parameters.GetValueOrDefault(n);
    string Head => Config.TieWordEmbeddings ? TensorLayout.Embedding : TensorLayout.LmHead;

    static void Linear(ReadOnlySpan<float> x, int t, float[] w, float[]? b, int rows, int cols, Span<float> y)
    {
        for (int i = 0; i < t; i++)
            for (int r = 0; r < rows; r++)
                y[i * rows + r] = TensorPrimitives.Dot(x.Slice(i * cols, cols), w.AsSpan(r * cols, cols)) + (b?[r] ?? 0);
    }

    unsafe void Norm(float[] input, float[] weight, float[] output, int t, int n)
    {
        fixed (float* x = input, w = weight, y = output)
            for (int i = 0; i < t; i++) Ops.RmsNorm(x + i * n, w, y + i * n, n, (float)Config.RmsNormEps);
    }

    void NormBackward(float[] input, string weight, float[] dy, float[] dx, int t, int n)
    {
        for (int i = 0; i < t; i++)
            Ops.RmsNormBackward(input.AsSpan(i * n, n), P(weight), dy.AsSpan(i * n, n), (float)Config.RmsNormEps, dx.AsSpan(i * n, n), G(weight));
    }

    /// <summary>What one layer's forward keeps for its backward.</summary>
    sealed class LayerState
    {
        public float[] X = [], A = [], QPre = [], KPre = [], Q = [], K = [], V = [], Probs = [], Att = [], XMid = [], B = [], Gate = [], Up = [], H = [];
    }

    /// <summary>
    /// Mean cross-entropy of predicting <paramref name="targets"/> (ignored where <see cref="CrossEntropy.Ignore"/>)
    /// from <paramref name="tokens"/>; adds the gradients of (mean loss × <paramref name="lossScale"/>).
    /// </summary>
    public unsafe double ForwardBackward(int[] tokens, int[] targets, float lossScale = 1f)
    {
        var c = Config;
        int t = tokens.Length, h = c.HiddenSize, hd = c.HeadDim, qw = c.NumHeads * hd, kw = c.NumKvHeads * hd, ff = c.IntermediateSize, vocab = c.VocabSize;
        _rope.Reserve(t);
        int counted = targets.Count(x => x != CrossEntropy.Ignore);
        if (counted == 0) return 0;

        // Forward.
        var x = new float[t * h];
        var embed = P(TensorLayout.Embedding);
        for (int i = 0; i < t; i++) embed.AsSpan(tokens[i] * h, h).CopyTo(x.AsSpan(i * h, h));
        var states = new LayerState[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var s = states[l] = new LayerState { X = x };
            s.A = new float[t * h];
            Norm(x, P(L(l, "input_layernorm.weight")), s.A, t, h);
            s.QPre = new float[t * qw]; s.KPre = new float[t * kw]; s.V = new float[t * kw];
            Linear(s.A, t, P(L(l, "self_attn.q_proj.weight")), OptP(L(l, "self_attn.q_proj.bias")), qw, h, s.QPre);
            Linear(s.A, t, P(L(l, "self_attn.k_proj.weight")), OptP(L(l, "self_attn.k_proj.bias")), kw, h, s.KPre);
            Linear(s.A, t, P(L(l, "self_attn.v_proj.weight")), OptP(L(l, "self_attn.v_proj.bias")), kw, h, s.V);
            s.Q = (float[])s.QPre.Clone();
            s.K = (float[])s.KPre.Clone();
            if (OptP(L(l, "self_attn.q_norm.weight")) is { } qn)
            {
                Norm(s.QPre, qn, s.Q, t * c.NumHeads, hd);
                Norm(s.KPre, P(L(l, "self_attn.k_norm.weight")), s.K, t * c.NumKvHeads, hd);
            }
            fixed (float* q = s.Q, k = s.K)
                for (int i = 0; i < t; i++)
                {
                    _rope.Apply(q + i * qw, c.NumHeads, i);
                    _rope.Apply(k + i * kw, c.NumKvHeads, i);
                }
            s.Att = new float[t * qw];
            s.Probs = new float[c.NumHeads * t * t];
            _attention.Forward(s.Q, s.K, s.V, t, s.Att, s.Probs);
            var o = new float[t * h];
            Linear(s.Att, t, P(L(l, "self_attn.o_proj.weight")), OptP(L(l, "self_attn.o_proj.bias")), h, qw, o);
            s.XMid = new float[t * h];
            TensorPrimitives.Add(x, o, s.XMid);
            s.B = new float[t * h];
            Norm(s.XMid, P(L(l, "post_attention_layernorm.weight")), s.B, t, h);
            s.Gate = new float[t * ff]; s.Up = new float[t * ff];
            Linear(s.B, t, P(L(l, "mlp.gate_proj.weight")), OptP(L(l, "mlp.gate_proj.bias")), ff, h, s.Gate);
            Linear(s.B, t, P(L(l, "mlp.up_proj.weight")), OptP(L(l, "mlp.up_proj.bias")), ff, h, s.Up);
            s.H = (float[])s.Gate.Clone();
            Ops.SiluMul(s.H, s.Up, new float[t * ff]);
            var d = new float[t * h];
            Linear(s.H, t, P(L(l, "mlp.down_proj.weight")), OptP(L(l, "mlp.down_proj.bias")), h, ff, d);
            x = new float[t * h];
            TensorPrimitives.Add(s.XMid, d, x);
        }
        var f = new float[t * h];
        Norm(x, P(TensorLayout.FinalNorm), f, t, h);
        var logits = new float[t * vocab];
        Linear(f, t, P(Head), null, vocab, h, logits);
        double loss = CrossEntropy.Forward(logits, vocab, targets) / counted;

        // Backward, in reverse.
        var dLogits = new float[t * vocab];
        CrossEntropy.Backward(logits, vocab, targets, lossScale / counted, dLogits);
        var df = new float[t * h];
        MatMul.Backward(P(Head), vocab, h, f, dLogits, t, df, G(Head));
        var dx = new float[t * h];
        NormBackward(x, TensorLayout.FinalNorm, df, dx, t, h);
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            var s = states[l];
            // MLP: x = xMid + down(silu(gate(b)) · up(b)), b = norm(xMid).
            var dH = new float[t * ff];
            MatMul.Backward(P(L(l, "mlp.down_proj.weight")), h, ff, s.H, dx, t, dH, G(L(l, "mlp.down_proj.weight")), GradOrEmpty(L(l, "mlp.down_proj.bias")));
            var dGate = new float[t * ff]; var dUp = new float[t * ff];
            Ops.SiluMulBackward(s.Gate, s.Up, dH, dGate, dUp);
            var dB = new float[t * h]; var dB2 = new float[t * h];
            MatMul.Backward(P(L(l, "mlp.gate_proj.weight")), ff, h, s.B, dGate, t, dB, G(L(l, "mlp.gate_proj.weight")), GradOrEmpty(L(l, "mlp.gate_proj.bias")));
            MatMul.Backward(P(L(l, "mlp.up_proj.weight")), ff, h, s.B, dUp, t, dB2, G(L(l, "mlp.up_proj.weight")), GradOrEmpty(L(l, "mlp.up_proj.bias")));
            TensorPrimitives.Add(dB, dB2, dB);
            var dXMid = new float[t * h];
            NormBackward(s.XMid, L(l, "post_attention_layernorm.weight"), dB, dXMid, t, h);
            TensorPrimitives.Add(dXMid, dx, dXMid); // the residual path
            // Attention: xMid = x + o(attention(rope(q(a)), rope(k(a)), v(a))), a = norm(x).
            var dAtt = new float[t * qw];
            MatMul.Backward(P(L(l, "self_attn.o_proj.weight")), h, qw, s.Att, dXMid, t, dAtt, G(L(l, "self_attn.o_proj.weight")), GradOrEmpty(L(l, "self_attn.o_proj.bias")));
            var dQ = new float[t * qw]; var dK = new float[t * kw]; var dV = new float[t * kw];
            _attention.Backward(s.Q, s.K, s.V, s.Probs, dAtt, t, dQ, dK, dV);
            fixed (float* q = dQ, k = dK)
                for (int i = 0; i < t; i++)
                {
                    _rope.ApplyBackward(q + i * qw, c.NumHeads, i);
                    _rope.ApplyBackward(k + i * kw, c.NumKvHeads, i);
                }
            if (OptP(L(l, "self_attn.q_norm.weight")) is not null)
            {
                var dQPre = new float[t * qw]; var dKPre = new float[t * kw];
                NormBackward(s.QPre, L(l, "self_attn.q_norm.weight"), dQ, dQPre, t * c.NumHeads, hd);
                NormBackward(s.KPre, L(l, "self_attn.k_norm.weight"), dK, dKPre, t * c.NumKvHeads, hd);
                (dQ, dK) = (dQPre, dKPre);
            }
            var dA = new float[t * h]; var tmp = new float[t * h];
            MatMul.Backward(P(L(l, "self_attn.q_proj.weight")), qw, h, s.A, dQ, t, tmp, G(L(l, "self_attn.q_proj.weight")), GradOrEmpty(L(l, "self_attn.q_proj.bias")));
            TensorPrimitives.Add(dA, tmp, dA);
            MatMul.Backward(P(L(l, "self_attn.k_proj.weight")), kw, h, s.A, dK, t, tmp, G(L(l, "self_attn.k_proj.weight")), GradOrEmpty(L(l, "self_attn.k_proj.bias")));
            TensorPrimitives.Add(dA, tmp, dA);
            MatMul.Backward(P(L(l, "self_attn.v_proj.weight")), kw, h, s.A, dV, t, tmp, G(L(l, "self_attn.v_proj.weight")), GradOrEmpty(L(l, "self_attn.v_proj.bias")));
            TensorPrimitives.Add(dA, tmp, dA);
            var dX = new float[t * h];
            NormBackward(s.X, L(l, "input_layernorm.weight"), dA, dX, t, h);
            TensorPrimitives.Add(dX, dXMid, dX);
            dx = dX;
        }
        // Embedding rows get the gradient of their positions (scatter-add; with tied heads this adds to the head's).
        var dEmbed = G(TensorLayout.Embedding);
        for (int i = 0; i < t; i++)
        {
            var row = dEmbed.AsSpan(tokens[i] * h, h);
            TensorPrimitives.Add(row, dx.AsSpan(i * h, h), row);
        }
        return loss;
    }

    Span<float> GradOrEmpty(string name) => Gradients.TryGetValue(name, out var g) ? g : default;
}
