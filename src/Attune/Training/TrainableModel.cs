using System.Numerics.Tensors;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Training;

/// <summary>
/// A decoder (every family the engine runs) held as f32 master weights for training, with a forward that keeps each layer's
/// activations and the backward that walks them in reverse, op by op (the backward of every op sits beside
/// its forward). A micro-batch of sequences is laid end to end, so every linear layer is one matrix product
/// over all its tokens (<see cref="Gemm"/>, split over the pool); attention keeps sequences apart.
/// Parameters use the Hugging Face names; only the trainable ones have gradients (all of them, or only the
/// LoRA adapters when <see cref="AddLora"/> froze the base). Gradients accumulate until cleared, so
/// micro-batches add up.
/// </summary>
public sealed class TrainableModel
{
    public ModelConfig Config { get; }
    /// <summary>Every weight of the model, and the LoRA adapters' A and B (PEFT's names) once added.</summary>
    public Dictionary<string, float[]> Parameters { get; }
    /// <summary>Gradients of the trainable parameters only.</summary>
    public Dictionary<string, float[]> Gradients { get; private set; }
    public LoraConfig? Lora { get; private set; }
    /// <summary>The pool the products run on (null: the calling thread only).</summary>
    public WorkerPool? Pool { get; set; } = WorkerPool.Shared;

    readonly Rope _rope, _localRope;
    readonly CausalAttention _attention, _localAttention;
    readonly TensorLayout.LayerNorms _norms;
    readonly Dictionary<string, LoraAdapter> _adapters = new(StringComparer.Ordinal);

    TrainableModel(ModelConfig c, Dictionary<string, float[]> parameters)
    {
        Config = c;
        Parameters = parameters;
        Gradients = parameters.ToDictionary(p => p.Key, p => new float[p.Value.Length], StringComparer.Ordinal);
        _rope = new Rope(c);
        _localRope = Rope.Local(c) ?? _rope;
        _attention = new CausalAttention(c.NumHeads, c.NumKvHeads, c.HeadDim, null, c.AttentionScale, c.AttnLogitSoftcap);
        _localAttention = new CausalAttention(c.NumHeads, c.NumKvHeads, c.HeadDim, c.SlidingWindow, c.AttentionScale, c.AttnLogitSoftcap);
        _norms = TensorLayout.Norms(c);
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

    /// <summary>Parameters that count in the model's size: every weight, the adapters excluded.</summary>
    public long BaseParameterCount => Parameters.Where(p => !LoraConfig.IsAdapterName(p.Key)).Sum(p => (long)p.Value.Length);

    /// <summary>
    /// Freezes the base and attaches LoRA adapters to the linear layers <paramref name="config"/> targets:
    /// A [rank, in] drawn uniformly in ±1/√in (PEFT's Kaiming-uniform default), B [out, rank] zero, so the
    /// model starts exactly where the base is. From here only the adapters have gradients.
    /// </summary>
    public void AddLora(LoraConfig config)
    {
        if (Lora is not null) throw new InvalidOperationException("LoRA adapters are already attached");
        var rng = new Rng(config.Seed);
        foreach (var module in LinearModules())
        {
            if (!config.Targets(module.Name)) continue;
            var a = new float[config.Rank * module.In];
            float bound = 1f / MathF.Sqrt(module.In);
            for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * bound;
            Parameters[LoraConfig.AName(module.Name)] = a;
            Parameters[LoraConfig.BName(module.Name)] = new float[module.Out * config.Rank];
        }
        Lora = config;
        BindAdapters();
        if (_adapters.Count == 0)
            throw new AttuneException(null, "--lora-targets", $"matches no linear layer (they are named like {LinearModules().First().Name})");
        Gradients = Parameters.Where(p => LoraConfig.IsAdapterName(p.Key)).ToDictionary(p => p.Key, p => new float[p.Value.Length], StringComparer.Ordinal);
    }

    void BindAdapters()
    {
        _adapters.Clear();
        foreach (var module in LinearModules())
            if (Parameters.TryGetValue(LoraConfig.AName(module.Name), out var a))
                _adapters[module.Name] = new LoraAdapter(a, Parameters[LoraConfig.BName(module.Name)], Lora!.Rank, (float)Lora.Scale);
    }

    /// <summary>The linear layers of the decoder (the LM head excluded), with their input and output widths.</summary>
    public IEnumerable<(string Name, int In, int Out)> LinearModules()
    {
        var c = Config;
        int h = c.HiddenSize, qw = c.NumHeads * c.HeadDim, kw = c.NumKvHeads * c.HeadDim, ff = c.IntermediateSize;
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            yield return (p + "self_attn.q_proj", h, qw);
            yield return (p + "self_attn.k_proj", h, kw);
            yield return (p + "self_attn.v_proj", h, kw);
            yield return (p + "self_attn.o_proj", qw, h);
            yield return (p + "mlp.gate_proj", h, ff);
            yield return (p + "mlp.up_proj", h, ff);
            yield return (p + "mlp.down_proj", ff, h);
        }
    }

    /// <summary>A base weight with its adapter folded in: W + scale·B·A (the plain weight when it has none).</summary>
    public float[] MergedWeight(string name)
    {
        var w = Parameters[name];
        if (!name.EndsWith(".weight", StringComparison.Ordinal) || !_adapters.TryGetValue(name[..^".weight".Length], out var ad)) return w;
        var merged = (float[])w.Clone();
        int rows = ad.B.Length / ad.Rank, cols = ad.A.Length / ad.Rank;
        // scale·B·A added in place: B [rows, r] scaled first, then one product accumulated into W.
        var scaledB = ad.B.Select(v => v * ad.Scale).ToArray();
        unsafe
        {
            fixed (float* a = ad.A, sb = scaledB, m = merged)
                Gemm.Multiply(Pool, rows, cols, ad.Rank, StridedMatrix.RowMajor(sb, ad.Rank), StridedMatrix.RowMajor(a, cols), m, cols, true);
        }
        return merged;
    }

    /// <summary>
    /// Writes the weights as a checkpoint folder's files into <paramref name="dir"/> (the caller publishes the
    /// folder atomically): config.json and generation_config.json from <paramref name="source"/> with
    /// <c>torch_dtype</c> set, its tokenizer files, and the weights in <paramref name="dtype"/> — with any LoRA
    /// adapters merged in, so the folder is a plain checkpoint.
    /// </summary>
    public void WriteCheckpointFiles(string dir, Checkpoint source, DType dtype, long maxShardBytes = ShardedSafeTensorsWriter.DefaultMaxShardBytes)
    {
        var folder = new CheckpointWriter(dir);
        source.CopyConfigTo(folder, dtype);
        source.CopyTokenizerFilesTo(folder);
        var specs = TensorLayout.Expected(Config).Where(t => Parameters.ContainsKey(t.Name)).Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList();
        using var writer = folder.Weights(specs, maxShardBytes);
        foreach (var spec in specs) writer.Write(spec.Name, DTypes.FromSingle(dtype, MergedWeight(spec.Name)));
        writer.Commit();
    }

    /// <summary>The adapters alone, as PEFT saves them (adapter_model.safetensors and adapter_config.json).</summary>
    public void WriteAdapterFiles(string dir, string baseModel)
    {
        if (Lora is null) throw new InvalidOperationException("no LoRA adapters to write");
        var tensors = Parameters.Where(p => LoraConfig.IsAdapterName(p.Key)).OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => (new TensorSpec(LoraConfig.PeftPrefix + p.Key, DType.F32, AdapterShape(p.Key)), DTypes.FromSingle(DType.F32, p.Value)))
            .ToList();
        SafeTensorsWriter.Save(Path.Combine(dir, LoraConfig.AdapterWeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(dir, LoraConfig.AdapterConfigFile), Lora.ToPeftJson(baseModel, _adapters.Keys));
    }

    long[] AdapterShape(string name)
    {
        var module = name[..name.IndexOf(".lora_", StringComparison.Ordinal)];
        var ad = _adapters[module];
        return name.EndsWith(".lora_A.weight", StringComparison.Ordinal)
            ? [ad.Rank, ad.A.Length / ad.Rank]
            : [ad.B.Length / ad.Rank, ad.Rank];
    }

    /// <summary>Replaces the adapters' values with those saved by <see cref="WriteAdapterFiles"/> (for --resume).</summary>
    public void LoadAdapterFiles(string dir)
    {
        var path = Path.Combine(dir, LoraConfig.AdapterWeightsFile);
        using var file = SafeTensorsFile.Open(path);
        foreach (var (name, values) in Parameters.Where(p => LoraConfig.IsAdapterName(p.Key)))
        {
            var key = LoraConfig.PeftPrefix + name;
            if (!file.Contains(key)) throw new AttuneException(path, key, "missing (was the run started with other LoRA targets or rank?)");
            var v = file.GetView(key);
            if (v.ElementCount != values.Length) throw new AttuneException(path, key, "has another shape than this run's adapter");
            DTypes.ToSingle(v.DType, v.Bytes, values);
        }
    }

    public void ZeroGradients()
    {
        foreach (var g in Gradients.Values) Array.Clear(g);
    }

    static string L(int i, string s) => TensorLayout.Layer(i, s);
    float[] P(string n) => Parameters[n];
    float[]? OptP(string n) => Parameters.GetValueOrDefault(n);
    Span<float> GradOrEmpty(string name) => Gradients.TryGetValue(name, out var g) ? g : default;
    string Head => Config.TieWordEmbeddings ? TensorLayout.Embedding : TensorLayout.LmHead;
    float Eps => (float)Config.RmsNormEps;

    CausalAttention AttentionOf(int layer) => Config.WindowOf(layer) is null ? _attention : _localAttention;

    sealed record LoraAdapter(float[] A, float[] B, int Rank, float Scale);

    /// <summary>What one layer's forward keeps for its backward.</summary>
    sealed class LayerState
    {
        public float[] X = [], A = [], QPre = [], KPre = [], Q = [], K = [], V = [], Probs = [], Att = [], O = [], XMid = [], B = [], Gate = [], Up = [], H = [], D = [];
        /// <summary>scale·(x·Aᵀ) of each adapted module, for the adapter's backward.</summary>
        public readonly Dictionary<string, float[]> LoraHidden = new(StringComparer.Ordinal);
    }

    /// <summary>The forward of the current micro-batch, kept for <see cref="Backward"/>.</summary>
    sealed class BatchState
    {
        /// <summary>Per token: its sequence and its position within it.</summary>
        public int[] Lengths = [], Tokens = [], Targets = [], Sequence = [], Positions = [];
        public LayerState[] Layers = [];
        public float[] XFinal = [], F = [], Logits = [];
    }

    BatchState? _batch;

    /// <summary>Y = X·Wᵀ + b (+ scale·(X·Aᵀ)·Bᵀ for an adapted layer) over <paramref name="t"/> rows.</summary>
    unsafe void Linear(string module, float[] x, int t, int cols, int rows, float[] y, LayerState s)
    {
        MatMul.Forward(Pool, P(module + ".weight"), rows, cols, x, t, y, OptP(module + ".bias"));
        if (!_adapters.TryGetValue(module, out var ad)) return;
        var hidden = new float[t * ad.Rank];
        fixed (float* xp = x, a = ad.A, b = ad.B, hp = hidden, yp = y)
        {
            Gemm.Multiply(Pool, t, ad.Rank, cols, StridedMatrix.RowMajor(xp, cols), StridedMatrix.Transposed(a, cols), hp, ad.Rank, false);
            TensorPrimitives.Multiply(hidden, ad.Scale, hidden);
            Gemm.Multiply(Pool, t, rows, ad.Rank, StridedMatrix.RowMajor(hp, ad.Rank), StridedMatrix.Transposed(b, ad.Rank), yp, rows, true);
        }
        s.LoraHidden[module] = hidden;
    }

    /// <summary>dX (overwritten or added) and the layer's parameter gradients from dY.</summary>
    unsafe void LinearBackward(string module, float[] x, float[] dy, int t, int cols, int rows, float[] dx, bool accumulateDx, LayerState s)
    {
        MatMul.Backward(Pool, P(module + ".weight"), rows, cols, x, dy, t, dx, GradOrEmpty(module + ".weight"), GradOrEmpty(module + ".bias"), accumulateDx);
        if (!_adapters.TryGetValue(module, out var ad)) return;
        int r = ad.Rank;
        var hidden = s.LoraHidden[module];
        var dHidden = new float[t * r];
        fixed (float* xp = x, dyp = dy, dxp = dx, a = ad.A, b = ad.B, hp = hidden, dh = dHidden)
        fixed (float* dA = Gradients[LoraConfig.AName(module)], dB = Gradients[LoraConfig.BName(module)])
        {
            // z = h·Bᵀ with h = scale·x·Aᵀ: dB += dYᵀ·h, dH = dY·B, then dA += scale·dHᵀ·x and dX += scale·dH·A.
            Gemm.Multiply(Pool, rows, r, t, StridedMatrix.Transposed(dyp, rows), StridedMatrix.RowMajor(hp, r), dB, r, true);
            Gemm.Multiply(Pool, t, r, rows, StridedMatrix.RowMajor(dyp, rows), StridedMatrix.RowMajor(b, r), dh, r, false);
            TensorPrimitives.Multiply(dHidden, ad.Scale, dHidden);
            Gemm.Multiply(Pool, r, cols, t, StridedMatrix.Transposed(dh, r), StridedMatrix.RowMajor(xp, cols), dA, cols, true);
            Gemm.Multiply(Pool, t, cols, r, StridedMatrix.RowMajor(dh, r), StridedMatrix.RowMajor(a, cols), dxp, cols, true);
        }
    }

    /// <summary>body(start, end) over shares of [0, count) on the pool (or here, without one).</summary>
    void ForRanges(int count, Action<int, int> body)
    {
        if (Pool is null || count < 2) body(0, count);
        else Pool.For(count, body);
    }

    /// <summary>The multiplier a norm applies: its weight, or 1 + weight where the family stores w (Gemma).</summary>
    float[] NormWeight(string name) => Config.NormPlusOne ? P(name).Select(w => 1 + w).ToArray() : P(name);

    unsafe void Norm(float[] input, string weightName, float[] output, int rows, int n)
    {
        var weight = NormWeight(weightName);
        float eps = Eps;
        ForRanges(rows, (r0, r1) =>
        {
            fixed (float* x = input, w = weight, y = output)
                for (int i = r0; i < r1; i++) Ops.RmsNorm(x + (long)i * n, w, y + (long)i * n, n, eps);
        });
    }

    /// <summary>RoPE on every token's query and key heads (or its inverse, for their gradients).</summary>
    unsafe void RotateAll(int layer, float[] q, float[] k, int[] positions, bool backward)
    {
        var rope = Config.WindowOf(layer) is null ? _rope : _localRope;
        int heads = Config.NumHeads, kvHeads = Config.NumKvHeads, qw = heads * Config.HeadDim, kw = kvHeads * Config.HeadDim;
        ForRanges(positions.Length, (t0, t1) =>
        {
            fixed (float* qp = q, kp = k)
                for (int i = t0; i < t1; i++)
                    if (backward)
                    {
                        rope.ApplyBackward(qp + (long)i * qw, heads, positions[i]);
                        rope.ApplyBackward(kp + (long)i * kw, kvHeads, positions[i]);
                    }
                    else
                    {
                        rope.Apply(qp + (long)i * qw, heads, positions[i]);
                        rope.Apply(kp + (long)i * kw, kvHeads, positions[i]);
                    }
        });
    }

    /// <summary>Rows are cut into a fixed number of parts whatever the thread count; each part sums its own
    /// dw and the parts are added in order, so the result does not depend on the pool.</summary>
    const int NormParts = 16;

    void NormBackward(float[] input, string weight, float[] dy, float[] dx, int rows, int n)
    {
        var w = NormWeight(weight);
        var dw = Gradients.GetValueOrDefault(weight);
        int parts = Math.Min(NormParts, rows);
        var partial = new float[parts * n];
        float eps = Eps;
        ForRanges(parts, (p0, p1) =>
        {
            for (int part = p0; part < p1; part++)
            {
                var sums = partial.AsSpan(part * n, n);
                for (int i = (int)((long)rows * part / parts); i < (int)((long)rows * (part + 1) / parts); i++)
                    Ops.RmsNormBackward(input.AsSpan(i * n, n), w, dy.AsSpan(i * n, n), eps, dx.AsSpan(i * n, n), sums);
            }
        });
        if (dw is not null)
            for (int part = 0; part < parts; part++) TensorPrimitives.Add(dw, partial.AsSpan(part * n, n), dw);
    }

    /// <summary>
    /// Mean cross-entropy of predicting <paramref name="targets"/> (ignored where <see cref="CrossEntropy.Ignore"/>)
    /// from <paramref name="tokens"/>; adds the gradients of (mean loss × <paramref name="lossScale"/>).
    /// </summary>
    public double ForwardBackward(int[] tokens, int[] targets, float lossScale = 1f)
    {
        int counted = targets.Count(x => x != CrossEntropy.Ignore);
        if (counted == 0) return 0;
        double sum = Forward([new TrainingExample(tokens, targets)])[0];
        Backward([lossScale / counted]);
        return sum / counted;
    }

    /// <summary>
    /// Runs the micro-batch forward and keeps what the backward needs; returns, per sequence, the summed
    /// cross-entropy over its target tokens (the negative log-likelihood of its targets).
    /// </summary>
    public unsafe double[] Forward(IReadOnlyList<TrainingExample> batch)
    {
        var c = Config;
        int h = c.HiddenSize, hd = c.HeadDim, qw = c.NumHeads * hd, kw = c.NumKvHeads * hd, ff = c.IntermediateSize, vocab = c.VocabSize;
        var st = new BatchState { Lengths = batch.Select(e => e.Tokens.Length).ToArray() };
        st.Tokens = batch.SelectMany(e => e.Tokens).ToArray();
        st.Targets = batch.SelectMany(e => e.Targets).ToArray();
        st.Sequence = batch.SelectMany((e, s) => Enumerable.Repeat(s, e.Tokens.Length)).ToArray();
        int t = st.Tokens.Length;
        _rope.Reserve(st.Lengths.DefaultIfEmpty(0).Max());
        _localRope.Reserve(st.Lengths.DefaultIfEmpty(0).Max());
        st.Positions = batch.SelectMany(e => Enumerable.Range(0, e.Tokens.Length)).ToArray();

        var x = new float[t * h];
        var embed = P(TensorLayout.Embedding);
        for (int i = 0; i < t; i++) embed.AsSpan(st.Tokens[i] * h, h).CopyTo(x.AsSpan(i * h, h));
        if (c.EmbeddingScale is float embedScale) TensorPrimitives.Multiply(x, embedScale, x);
        st.Layers = new LayerState[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var s = st.Layers[l] = new LayerState { X = x };
            s.A = x;
            if (_norms.AttnInput is { } attnInput) Norm(x, L(l, attnInput), s.A = new float[t * h], t, h);
            s.QPre = new float[t * qw]; s.KPre = new float[t * kw]; s.V = new float[t * kw];
            Linear(L(l, "self_attn.q_proj"), s.A, t, h, qw, s.QPre, s);
            Linear(L(l, "self_attn.k_proj"), s.A, t, h, kw, s.KPre, s);
            Linear(L(l, "self_attn.v_proj"), s.A, t, h, kw, s.V, s);
            s.Q = (float[])s.QPre.Clone();
            s.K = (float[])s.KPre.Clone();
            if (c.QkNorm != QkNorm.None)
            {
                bool perHead = c.QkNorm == QkNorm.PerHead;
                Norm(s.QPre, L(l, "self_attn.q_norm.weight"), s.Q, perHead ? t * c.NumHeads : t, perHead ? hd : qw);
                Norm(s.KPre, L(l, "self_attn.k_norm.weight"), s.K, perHead ? t * c.NumKvHeads : t, perHead ? hd : kw);
            }
            RotateAll(l, s.Q, s.K, st.Positions, backward: false);
            s.Att = new float[t * qw];
            s.Probs = new float[AttentionOf(l).ProbabilityLength(st.Lengths)];
            AttentionOf(l).Forward(Pool, st.Lengths, s.Q, s.K, s.V, s.Att, s.Probs);
            var o = new float[t * h];
            Linear(L(l, "self_attn.o_proj"), s.Att, t, qw, h, o, s);
            if (_norms.AttnOutput is { } attnOutput) Norm(s.O = o, L(l, attnOutput), o = new float[t * h], t, h); // kept only for the norm's backward
            s.XMid = new float[t * h];
            TensorPrimitives.Add(x, o, s.XMid);
            s.B = s.XMid;
            if (_norms.MlpInput is { } mlpInput) Norm(s.XMid, L(l, mlpInput), s.B = new float[t * h], t, h);
            s.Gate = new float[t * ff]; s.Up = new float[t * ff];
            Linear(L(l, "mlp.gate_proj"), s.B, t, h, ff, s.Gate, s);
            Linear(L(l, "mlp.up_proj"), s.B, t, h, ff, s.Up, s);
            s.H = (float[])s.Gate.Clone();
            if (c.Activation == Activation.GeluTanh) Ops.GeluTanhMul(s.H, s.Up, new float[t * ff]);
            else Ops.SiluMul(s.H, s.Up, new float[t * ff]);
            var d = new float[t * h];
            Linear(L(l, "mlp.down_proj"), s.H, t, ff, h, d, s);
            if (_norms.MlpOutput is { } mlpOutput) Norm(s.D = d, L(l, mlpOutput), d = new float[t * h], t, h);
            x = new float[t * h];
            TensorPrimitives.Add(s.XMid, d, x);
        }
        st.XFinal = x;
        st.F = new float[t * h];
        Norm(x, TensorLayout.FinalNorm, st.F, t, h);
        st.Logits = new float[(long)t * vocab];
        MatMul.Forward(Pool, P(Head), vocab, h, st.F, t, st.Logits);
        if (c.FinalLogitSoftcap is double cap) Ops.SoftCap(st.Logits, (float)cap);
        var rowLoss = new double[t];
        ForRanges(t, (r0, r1) =>
        {
            for (int i = r0; i < r1; i++)
                if (st.Targets[i] != CrossEntropy.Ignore)
                    rowLoss[i] = -LanguageModel.LogProb(st.Logits.AsSpan(i * vocab, vocab), st.Targets[i]);
        });
        var sums = new double[batch.Count];
        for (int i = 0; i < t; i++) sums[st.Sequence[i]] += rowLoss[i];
        _batch = st;
        return sums;
    }

    /// <summary>The forward alone (no activations kept): per sequence, the summed cross-entropy of its targets.</summary>
    public double[] Evaluate(IReadOnlyList<TrainingExample> batch)
    {
        var sums = Forward(batch);
        _batch = null;
        return sums;
    }

    /// <summary>
    /// Adds the gradients of Σ_s <paramref name="sequenceScales"/>[s] · (summed cross-entropy of sequence s)
    /// for the micro-batch of the last <see cref="Forward"/>, then releases its activations.
    /// </summary>
    public unsafe void Backward(ReadOnlySpan<float> sequenceScales)
    {
        var st = _batch ?? throw new InvalidOperationException("Backward needs a Forward first");
        _batch = null;
        var c = Config;
        int h = c.HiddenSize, hd = c.HeadDim, qw = c.NumHeads * hd, kw = c.NumKvHeads * hd, ff = c.IntermediateSize, vocab = c.VocabSize;
        int t = st.Tokens.Length;

        // The logits become their gradient in place: scale · (softmax − onehot) on target rows, 0 elsewhere
        // (through a soft-cap, times 1 − (z/cap)², from the capped logits before they are overwritten).
        var dLogits = st.Logits;
        var rowScale = new float[t];
        for (int i = 0; i < t; i++) rowScale[i] = sequenceScales[st.Sequence[i]];
        float finalCap = (float)(c.FinalLogitSoftcap ?? 0);
        ForRanges(t, (r0, r1) =>
        {
            var through = finalCap > 0 ? new float[vocab] : null;
            for (int i = r0; i < r1; i++)
            {
                var row = dLogits.AsSpan(i * vocab, vocab);
                if (st.Targets[i] == CrossEntropy.Ignore) { row.Clear(); continue; }
                if (through is not null)
                {
                    TensorPrimitives.Multiply(row, 1f / finalCap, through);
                    TensorPrimitives.Multiply(through, through, through);
                    TensorPrimitives.Subtract(1f, through, through);
                }
                CrossEntropy.Backward(row, vocab, [st.Targets[i]], rowScale[i], row);
                if (through is not null) TensorPrimitives.Multiply(row, through, row);
            }
        });
        var df = new float[t * h];
        MatMul.Backward(Pool, P(Head), vocab, h, st.F, dLogits, t, df, GradOrEmpty(Head));
        st.Logits = [];
        var dx = new float[t * h];
        NormBackward(st.XFinal, TensorLayout.FinalNorm, df, dx, t, h);
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            var s = st.Layers[l];
            // MLP: x = xMid + post(down(act(gate(b)) · up(b))), b = pre(xMid); a missing norm passes through.
            var dD = dx;
            if (_norms.MlpOutput is { } mlpOutput) NormBackward(s.D, L(l, mlpOutput), dx, dD = new float[t * h], t, h);
            var dH = new float[t * ff];
            LinearBackward(L(l, "mlp.down_proj"), s.H, dD, t, ff, h, dH, false, s);
            var dGate = new float[t * ff]; var dUp = new float[t * ff];
            if (c.Activation == Activation.GeluTanh) Ops.GeluTanhMulBackward(s.Gate, s.Up, dH, dGate, dUp);
            else Ops.SiluMulBackward(s.Gate, s.Up, dH, dGate, dUp);
            var dB = new float[t * h];
            LinearBackward(L(l, "mlp.gate_proj"), s.B, dGate, t, h, ff, dB, false, s);
            LinearBackward(L(l, "mlp.up_proj"), s.B, dUp, t, h, ff, dB, true, s);
            var dXMid = dB;
            if (_norms.MlpInput is { } mlpInput) NormBackward(s.XMid, L(l, mlpInput), dB, dXMid = new float[t * h], t, h);
            TensorPrimitives.Add(dXMid, dx, dXMid); // the residual path
            // Attention: xMid = x + post(o(attention(rope(qn(q(a))), rope(kn(k(a))), v(a)))), a = pre(x).
            var dO = dXMid;
            if (_norms.AttnOutput is { } attnOutput) NormBackward(s.O, L(l, attnOutput), dXMid, dO = new float[t * h], t, h);
            var dAtt = new float[t * qw];
            LinearBackward(L(l, "self_attn.o_proj"), s.Att, dO, t, qw, h, dAtt, false, s);
            var dQ = new float[t * qw]; var dK = new float[t * kw]; var dV = new float[t * kw];
            AttentionOf(l).Backward(Pool, st.Lengths, s.Q, s.K, s.V, s.Probs, dAtt, dQ, dK, dV);
            RotateAll(l, dQ, dK, st.Positions, backward: true);
            if (c.QkNorm != QkNorm.None)
            {
                bool perHead = c.QkNorm == QkNorm.PerHead;
                var dQPre = new float[t * qw]; var dKPre = new float[t * kw];
                NormBackward(s.QPre, L(l, "self_attn.q_norm.weight"), dQ, dQPre, perHead ? t * c.NumHeads : t, perHead ? hd : qw);
                NormBackward(s.KPre, L(l, "self_attn.k_norm.weight"), dK, dKPre, perHead ? t * c.NumKvHeads : t, perHead ? hd : kw);
                (dQ, dK) = (dQPre, dKPre);
            }
            var dA = new float[t * h];
            LinearBackward(L(l, "self_attn.q_proj"), s.A, dQ, t, h, qw, dA, false, s);
            LinearBackward(L(l, "self_attn.k_proj"), s.A, dK, t, h, kw, dA, true, s);
            LinearBackward(L(l, "self_attn.v_proj"), s.A, dV, t, h, kw, dA, true, s);
            var dX = dA;
            if (_norms.AttnInput is { } attnInput) NormBackward(s.X, L(l, attnInput), dA, dX = new float[t * h], t, h);
            TensorPrimitives.Add(dX, dXMid, dX);
            dx = dX;
            st.Layers[l] = null!; // release the layer's activations as soon as they are used
        }
        if (c.EmbeddingScale is float embedScale) TensorPrimitives.Multiply(dx, embedScale, dx);
        // Embedding rows get the gradient of their positions (scatter-add; with tied heads this adds to the head's).
        if (Gradients.TryGetValue(TensorLayout.Embedding, out var dEmbed))
            for (int i = 0; i < t; i++)
            {
                var row = dEmbed.AsSpan(st.Tokens[i] * h, h);
                TensorPrimitives.Add(row, dx.AsSpan(i * h, h), row);
            }
    }
}
