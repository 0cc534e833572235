using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Tensors;
using Architecture = Attune.Formats.Architecture;
using Attune.Text;

namespace Attune.Checkpoints;

/// <summary>
/// Converts between Hugging Face checkpoint folders and GGUF as llama.cpp reads it: names and
/// shapes (ne reversed), metadata keys with the exact types llama.cpp expects, byte-level BPE
/// tokenizers as <c>gpt2</c> vocabularies, the Q/K row permutation of the <c>llama</c>
/// architecture (llama.cpp rotates adjacent pairs there), and llama3 rope scaling as a
/// <c>rope_freqs.weight</c> tensor. The original config.json travels in <c>attune.config</c>
/// so that a round trip restores it exactly; llama.cpp ignores the key.
/// </summary>
public static class GgufConverter
{
    public const string ConfigKey = "attune.config";

    static string ArchName(Architecture a) => a switch
    {
        Architecture.Llama or Architecture.Mistral => "llama",
        Architecture.Qwen2 => "qwen2",
        Architecture.Qwen3 => "qwen3",
        Architecture.Gemma2 => "gemma2",
        Architecture.Gemma3 => "gemma3",
        _ => "olmo2",
    };

    /// <summary>llama.cpp's architecture names Attune reads, with the Hugging Face class each stands for.</summary>
    static readonly (string Gguf, string Hf)[] Architectures =
    [
        ("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("qwen3", "Qwen3ForCausalLM"),
        ("gemma2", "Gemma2ForCausalLM"), ("gemma3", "Gemma3ForCausalLM"), ("olmo2", "Olmo2ForCausalLM"),
    ];

    /// <summary>Whether q and k are stored for rotating adjacent pairs (llama.cpp's <c>llama</c>); the others rotate halves.</summary>
    public static bool RopeInterleaved(string ggufArch) => ggufArch == "llama";

    /// <summary>HF per-layer suffix → GGUF per-layer name.</summary>
    static readonly (string Hf, string Gguf)[] LayerNames =
    [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
        ("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
        ("self_attn.v_proj.bias", "attn_v.bias"), ("self_attn.o_proj.bias", "attn_output.bias"),
        ("self_attn.q_norm.weight", "attn_q_norm.weight"), ("self_attn.k_norm.weight", "attn_k_norm.weight"),
        ("pre_feedforward_layernorm.weight", "ffn_norm.weight"), ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
        ("mlp.gate_proj.bias", "ffn_gate.bias"), ("mlp.up_proj.bias", "ffn_up.bias"), ("mlp.down_proj.bias", "ffn_down.bias"),
    ];

    /// <summary>
    /// The GGUF name of a Hugging Face tensor of a model of config <paramref name="c"/>:
    /// <c>post_attention_layernorm</c> is the MLP's input norm (<c>ffn_norm</c>) in pre-norm families and the
    /// attention's output norm (<c>post_attention_norm</c>) in Gemma and OLMo 2.
    /// </summary>
    public static string GgufName(string hf, ModelConfig c)
    {
        if (hf.EndsWith(".post_attention_layernorm.weight", StringComparison.Ordinal))
            return hf.Replace("model.layers.", "blk.").Replace("post_attention_layernorm.weight",
                TensorLayout.Norms(c).MlpInput == "post_attention_layernorm.weight" ? "ffn_norm.weight" : "post_attention_norm.weight");
        return GgufName(hf);
    }

    static string GgufName(string hf)
    {
        if (hf == TensorLayout.Embedding) return "token_embd.weight";
        if (hf == TensorLayout.FinalNorm) return "output_norm.weight";
        if (hf == TensorLayout.LmHead) return "output.weight";
        const string prefix = "model.layers.";
        if (hf.StartsWith(prefix, StringComparison.Ordinal))
        {
            int dot = hf.IndexOf('.', prefix.Length);
            var layer = hf[prefix.Length..dot];
            var suffix = hf[(dot + 1)..];
            foreach (var (h, g) in LayerNames)
                if (h == suffix) return $"blk.{layer}.{g}";
        }
        throw new AttuneException(null, $"tensor {hf}", "has no GGUF name");
    }

    public static uint FileType(GgmlType t) => t switch { GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q8_0 => 7, _ => 32 };

    // ─── folder → GGUF ─────────────────────────────────────────────────────────────

    public static void ToGguf(string folder, string outPath, GgmlType type, IProgress<double>? progress = null)
    {
        using var ckpt = Checkpoint.Open(folder);
        var c = ckpt.Config;
        var arch = ArchName(c.Architecture);
        var meta = new List<(string, GgufValue)>
        {
            ("general.architecture", GgufValue.Str(arch)),
            ("general.name", GgufValue.Str(Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/')))),
            ("general.file_type", GgufValue.U32(FileType(type))),
            ("general.quantization_version", GgufValue.U32(2)),
            ($"{arch}.context_length", GgufValue.U32((uint)c.MaxPositionEmbeddings)),
            ($"{arch}.embedding_length", GgufValue.U32((uint)c.HiddenSize)),
            ($"{arch}.block_count", GgufValue.U32((uint)c.NumLayers)),
            ($"{arch}.feed_forward_length", GgufValue.U32((uint)c.IntermediateSize)),
            ($"{arch}.attention.head_count", GgufValue.U32((uint)c.NumHeads)),
            ($"{arch}.attention.head_count_kv", GgufValue.U32((uint)c.NumKvHeads)),
            ($"{arch}.attention.key_length", GgufValue.U32((uint)c.HeadDim)),
            ($"{arch}.attention.value_length", GgufValue.U32((uint)c.HeadDim)),
            ($"{arch}.attention.layer_norm_rms_epsilon", GgufValue.F32((float)c.RmsNormEps)),
            ($"{arch}.rope.freq_base", GgufValue.F32((float)c.RopeTheta)),
            ($"{arch}.rope.dimension_count", GgufValue.U32((uint)c.HeadDim)),
            ($"{arch}.vocab_size", GgufValue.U32((uint)c.VocabSize)),
        };
        if (c.RopeScaling is { Type: "linear" } lin)
        {
            meta.Add(($"{arch}.rope.scaling.type", GgufValue.Str("linear")));
            meta.Add(($"{arch}.rope.scaling.factor", GgufValue.F32((float)lin.Factor)));
        }
        meta.AddRange(FamilyMetadata(folder, c, arch));
        meta.AddRange(TokenizerMetadata(ckpt, c));
        meta.Add((ConfigKey, GgufValue.Str(Utf8Input.ReadAllText(Path.Combine(folder, Checkpoint.ConfigFileName)))));

        // Tensors, in Hugging Face order; llama3 rope factors first, as llama.cpp's converter writes them.
        var plan = new List<(GgufTensorSpec Spec, string? Source)>();
        if (c.RopeScaling is { Type: "llama3" })
            plan.Add((new GgufTensorSpec("rope_freqs.weight", GgmlType.F32, [c.HeadDim / 2]), null));
        foreach (var t in TensorLayout.Expected(c))
        {
            string source = t.Name;
            if (t.Name == TensorLayout.LmHead && c.TieWordEmbeddings)
            {
                if (arch != "olmo2") continue; // llama.cpp reuses token_embd
                source = TensorLayout.Embedding; // its olmo2 requires output.weight: the tied head, written out
            }
            bool vector = t.Shape.Length == 1;
            var target = vector ? GgmlType.F32 : type == GgmlType.Q8_0 && t.Shape[1] % WeightTypes.Q8BlockSize != 0 ? GgmlType.F16 : type;
            plan.Add((new GgufTensorSpec(GgufName(t.Name, c), target, t.Shape.Reverse().ToArray()), source));
        }

        using var writer = new GgufWriter(outPath, meta, plan.Select(p => p.Spec).ToList());
        long done = 0, total = plan.Sum(p => p.Spec.Ne.Aggregate(1L, (a, d) => a * d));
        foreach (var (spec, source) in plan)
        {
            float[] values = source is null ? RopeFreqFactors(c) : ReadFloats(ckpt.Weights, source);
            if (c.NormPlusOne && source is not null && IsNorm(source))
                values = values.Select(w => 1 + w).ToArray(); // llama.cpp multiplies by the stored value
            if (arch == "llama" && source is not null && IsQueryOrKey(source, out bool isQuery))
                values = PermuteRows(values, isQuery ? c.NumHeads : c.NumKvHeads, c.HeadDim, spec.Ne.Length == 1 ? 1 : (int)spec.Ne[0], inverse: false);
            writer.Write(spec.Name, Encode(values, spec));
            done += values.LongLength;
            progress?.Report((double)done / total);
        }
        writer.Commit();
    }

    static bool IsNorm(string hf) => hf.EndsWith("norm.weight", StringComparison.Ordinal);

    /// <summary>
    /// The keys of Gemma's extras. llama.cpp has no key for the query scale: it takes 1/√head_dim (1/√(hidden/heads)
    /// for the 46-layer 27B), so a model whose <c>query_pre_attn_scalar</c> says otherwise would run differently
    /// there and is refused. Its layer pattern is fixed too (every other layer local in Gemma 2, five of six in
    /// Gemma 3), as is Gemma 3's local RoPE base (10000).
    /// </summary>
    static IEnumerable<(string, GgufValue)> FamilyMetadata(string folder, ModelConfig c, string arch)
    {
        if (!c.IsGemma) yield break;
        if (arch == "gemma2" && !c.TieWordEmbeddings)
            throw new AttuneException(Path.Combine(folder, Checkpoint.ConfigFileName), "tie_word_embeddings",
                "is false, but llama.cpp's gemma2 reads no output.weight (its head is the embedding)");
        int scalar = LlamaCppGemma.QueryScalar(arch, c.NumLayers, c.HiddenSize, c.NumHeads, c.HeadDim);
        double llamaCppScale = 1 / Math.Sqrt(scalar);
        if (Math.Abs(llamaCppScale - c.AttentionScale) > 1e-9 * llamaCppScale)
            throw new AttuneException(Path.Combine(folder, Checkpoint.ConfigFileName), "query_pre_attn_scalar",
                $"{1 / (c.AttentionScale * c.AttentionScale):G} differs from what llama.cpp assumes for this shape ({scalar}); the GGUF would not run the same there");
        for (int l = 0; l < c.NumLayers; l++)
            if (c.WindowOf(l) is not null != LlamaCppGemma.IsLocal(arch, l))
                throw new AttuneException(Path.Combine(folder, Checkpoint.ConfigFileName), "layer_types",
                    $"layer {l} is {(c.WindowOf(l) is null ? "global" : "local")}; llama.cpp's {arch} makes {(arch == "gemma2" ? "every other layer" : "five layers of six")} local, starting with layer 0");
        if (c.RopeLocalTheta is double local && local != 10000)
            throw new AttuneException(Path.Combine(folder, Checkpoint.ConfigFileName), "rope_local_base_freq", $"{local:G} is not the 10000 llama.cpp uses for local layers");
        yield return ($"{arch}.attention.sliding_window", GgufValue.U32((uint)c.SlidingWindow!.Value));
        if (c.AttnLogitSoftcap is double attnCap) yield return ($"{arch}.attn_logit_softcapping", GgufValue.F32((float)attnCap));
        if (c.FinalLogitSoftcap is double finalCap) yield return ($"{arch}.final_logit_softcapping", GgufValue.F32((float)finalCap));
    }

    /// <summary>What llama.cpp fixes for Gemma rather than reading from the file.</summary>
    static class LlamaCppGemma
    {
        /// <summary>The query scale's divisor squared: head_dim, or hidden/heads for the 27B (46 layers in Gemma 2, 62 in Gemma 3).</summary>
        public static int QueryScalar(string arch, int layers, int hidden, int heads, int headDim) =>
            layers == (arch == "gemma2" ? 46 : 62) ? hidden / heads : headDim;

        /// <summary>Local layers: every other one from layer 0 (Gemma 2), five of each six (Gemma 3).</summary>
        public static bool IsLocal(string arch, int layer)
        {
            int period = arch == "gemma2" ? 2 : 6;
            return layer % period < period - 1;
        }
    }

    static bool IsQueryOrKey(string hf, out bool isQuery)
    {
        isQuery = hf.EndsWith("self_attn.q_proj.weight", StringComparison.Ordinal) || hf.EndsWith("self_attn.q_proj.bias", StringComparison.Ordinal);
        return isQuery || hf.EndsWith("self_attn.k_proj.weight", StringComparison.Ordinal) || hf.EndsWith("self_attn.k_proj.bias", StringComparison.Ordinal);
    }

    static float[] ReadFloats(SafeTensorsIndex w, string name)
    {
        var v = w.GetView(name);
        var f = new float[v.ElementCount];
        if (v.ByteLength <= int.MaxValue) DTypes.ToSingle(v.DType, v.Bytes, f);
        else
        {
            int rows = (int)v.Shape[0], cols = (int)(v.ElementCount / rows);
            for (int r = 0; r < rows; r++) DTypes.ToSingle(v.DType, v.Rows(r, 1), f.AsSpan(r * cols, cols));
        }
        return f;
    }

    /// <summary>
    /// Within each head, rows i and i + d/2 (Hugging Face's half-rotation pairs) move to 2i and 2i+1
    /// (llama.cpp's adjacent pairs); <paramref name="inverse"/> undoes it.
    /// </summary>
    public static float[] PermuteRows(float[] values, int heads, int headDim, int rowLength, bool inverse)
    {
        var result = new float[values.Length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int k = 0; k < 2; k++)
                {
                    int hfRow = h * headDim + k * half + i, ggRow = h * headDim + 2 * i + k;
                    int from = inverse ? ggRow : hfRow, to = inverse ? hfRow : ggRow;
                    Array.Copy(values, (long)from * rowLength, result, (long)to * rowLength, rowLength);
                }
        return result;
    }

    /// <summary>llama3 scaling as per-frequency divisors, computed in f32 as llama.cpp's converter does.</summary>
    public static float[] RopeFreqFactors(ModelConfig c)
    {
        var s = c.RopeScaling ?? throw new InvalidOperationException("no rope scaling");
        int half = c.HeadDim / 2;
        var ff = new float[half];
        float lowWavelen = (float)(s.OriginalMaxPositionEmbeddings / s.LowFreqFactor);
        float highWavelen = (float)(s.OriginalMaxPositionEmbeddings / s.HighFreqFactor);
        for (int i = 0; i < half; i++)
        {
            float freq = 1f / MathF.Pow((float)c.RopeTheta, 2f * i / c.HeadDim);
            float wavelen = 2 * MathF.PI / freq;
            if (wavelen < highWavelen) ff[i] = 1;
            else if (wavelen > lowWavelen) ff[i] = (float)s.Factor;
            else
            {
                float smooth = (float)((s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor));
                ff[i] = 1f / ((1 - smooth) / (float)s.Factor + smooth);
            }
        }
        return ff;
    }

    /// <summary>A tensor's values in its GGUF type, with one copy at most (f32 goes out as it is): a 2B model's 256k-row
    /// embedding is a few GB of floats, so each extra array counts.</summary>
    static ReadOnlySpan<byte> Encode(float[] values, GgufTensorSpec spec) => spec.Type switch
    {
        GgmlType.F32 => MemoryMarshal.AsBytes(values.AsSpan()),
        GgmlType.F16 => DTypes.FromSingle(DType.F16, values),
        GgmlType.BF16 => DTypes.FromSingle(DType.BF16, values),
        _ => Q8_0.Quantize(values),
    };

    /// <summary>The tokenizer as llama.cpp's <c>gpt2</c> (byte-level BPE) vocabulary.</summary>
    static IEnumerable<(string, GgufValue)> TokenizerMetadata(Checkpoint ckpt, ModelConfig c)
    {
        var path = ckpt.TokenizerPath ?? throw new AttuneException(ckpt.Directory, "no tokenizer.json to put in the GGUF");
        JsonNode root;
        try { root = JsonNode.Parse(Utf8Input.ReadAllText(path))!; }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON: {e.Message}"); }
        var model = root["model"] as JsonObject ?? throw new AttuneException(path, "model", "missing");
        if (model["type"]?.GetValue<string>() != "BPE")
            throw new AttuneException(path, "model.type", "only BPE tokenizers can be written to GGUF");
        var pre = PreTokenizerName(root["pre_tokenizer"])
            ?? throw new AttuneException(path, "pre_tokenizer", "is not one llama.cpp knows for byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM); only those tokenizers can be written to GGUF");

        var tokens = new string?[c.VocabSize];
        var types = new int[c.VocabSize];
        foreach (var (tok, id) in (JsonObject)model["vocab"]!)
        {
            int i = id!.GetValue<int>();
            if (i >= c.VocabSize) throw new AttuneException(path, $"token {tok}", $"id {i} is beyond config vocab_size {c.VocabSize}");
            tokens[i] = tok;
            types[i] = 1; // normal
        }
        foreach (var a in root["added_tokens"] as JsonArray ?? [])
        {
            int i = a!["id"]!.GetValue<int>();
            if (i >= c.VocabSize) throw new AttuneException(path, $"added token {a["content"]}", $"id {i} is beyond config vocab_size {c.VocabSize}");
            tokens[i] = a["content"]!.GetValue<string>();
            types[i] = a["special"]?.GetValue<bool>() == true ? 3 : 4; // control : user-defined
        }
        for (int i = 0; i < tokens.Length; i++)
            if (tokens[i] is null) { tokens[i] = $"[PAD{i}]"; types[i] = 5; } // unused ids, as llama.cpp's converter pads them
        var merges = (model["merges"] as JsonArray ?? []).Select(m => m is JsonArray pair
            ? $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}" : m!.GetValue<string>()).ToArray();

        var tc = ckpt.TokenizerConfigPath is { } tcp ? TokenizerConfig.Load(tcp) : TokenizerConfig.Empty;
        int? Id(string? token) => token is null ? null : Array.IndexOf(tokens, token) is var i && i >= 0 ? i : null;
        int eos = Id(tc.EosToken) ?? c.EosTokenIds.FirstOrDefault();
        int bos = Id(tc.BosToken) ?? c.BosTokenId ?? eos;
        var list = new List<(string, GgufValue)>
        {
            ("tokenizer.ggml.model", GgufValue.Str("gpt2")),
            ("tokenizer.ggml.pre", GgufValue.Str(pre)),
            ("tokenizer.ggml.tokens", GgufValue.Strings(tokens!)),
            ("tokenizer.ggml.token_type", GgufValue.Int32s(types)),
            ("tokenizer.ggml.merges", GgufValue.Strings(merges)),
            ("tokenizer.ggml.bos_token_id", GgufValue.U32((uint)bos)),
            ("tokenizer.ggml.eos_token_id", GgufValue.U32((uint)eos)),
            ("tokenizer.ggml.add_bos_token", GgufValue.Bool(tc.AddBosToken ?? false)),
            ("tokenizer.ggml.add_eos_token", GgufValue.Bool(tc.AddEosToken ?? false)),
        };
        if (Id(tc.PadToken) is int pad) list.Add(("tokenizer.ggml.padding_token_id", GgufValue.U32((uint)pad)));
        var template = tc.ChatTemplate switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray arr => arr.FirstOrDefault(t => t?["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
            _ => null,
        };
        if (template is not null) list.Add(("tokenizer.chat_template", GgufValue.Str(template)));
        return list;
    }

    /// <summary>llama.cpp's name for a byte-level pre-tokenizer configuration, or null.</summary>
    static string? PreTokenizerName(JsonNode? pre)
    {
        static string? Type(JsonNode? n) => n?["type"]?.GetValue<string>();
        var steps = Type(pre) == "Sequence" ? (pre!["pretokenizers"] as JsonArray ?? []).ToList() : [pre];
        if (steps.Count == 1 && Type(steps[0]) == "ByteLevel" && steps[0]!["use_regex"]?.GetValue<bool>() != false) return "gpt-2";
        if (steps.Count != 2 || Type(steps[1]) != "ByteLevel") return null;
        if (Type(steps[0]) == "Digits" && steps[0]!["individual_digits"]?.GetValue<bool>() == true
            && steps[1]!["use_regex"]?.GetValue<bool>() != false) return "smollm";
        if (Type(steps[0]) != "Split" || steps[1]!["use_regex"]?.GetValue<bool>() != false) return null;
        return steps[0]!["pattern"]?["Regex"]?.GetValue<string>() switch
        {
            SplitScanner.Gpt4Pattern => "llama-bpe",
            SplitScanner.QwenPattern => "qwen2",
            _ => null,
        };
    }

    // ─── GGUF → configuration and tokenizer files ───────────────────────────────────

    /// <summary>config.json for a GGUF: the one it carries, or one rebuilt from llama.cpp's keys.</summary>
    public static JsonObject ConfigJson(GgufFile g)
    {
        if (g.OptionalString(ConfigKey) is { } stored)
        {
            try { return JsonNode.Parse(stored)!.AsObject(); }
            catch (JsonException e) { throw new AttuneException(g.Path, ConfigKey, $"not valid JSON: {e.Message}"); }
        }
        var arch = g.String("general.architecture");
        var hfArch = Architectures.FirstOrDefault(a => a.Gguf == arch).Hf
            ?? throw new AttuneException(g.Path, "general.architecture",
                $"\"{arch}\" is not run by Attune's engine ({string.Join(", ", Architectures.Select(a => a.Gguf))}); the llama.cpp backend (--model llamacpp:FILE) can evaluate it");
        int heads = (int)g.Integer($"{arch}.attention.head_count");
        int hidden = (int)g.Integer($"{arch}.embedding_length");
        var embd = g.Tensor("token_embd.weight");
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(hfArch),
            ["model_type"] = arch,
            ["hidden_size"] = hidden,
            ["intermediate_size"] = g.Integer($"{arch}.feed_forward_length"),
            ["num_hidden_layers"] = g.Integer($"{arch}.block_count"),
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = g.OptionalInteger($"{arch}.attention.head_count_kv") ?? heads,
            ["head_dim"] = g.OptionalInteger($"{arch}.attention.key_length") ?? hidden / heads,
            ["vocab_size"] = embd.Ne.Length == 2 ? embd.Ne[1] : throw new AttuneException(g.Path, "tensor token_embd.weight", "must be 2-D"),
            ["rms_norm_eps"] = g.Number($"{arch}.attention.layer_norm_rms_epsilon"),
            ["rope_theta"] = g.OptionalNumber($"{arch}.rope.freq_base") ?? 10000.0,
            ["max_position_embeddings"] = g.Integer($"{arch}.context_length"),
            ["tie_word_embeddings"] = !g.Contains("output.weight"),
            ["bos_token_id"] = g.OptionalInteger("tokenizer.ggml.bos_token_id"),
            ["eos_token_id"] = g.OptionalInteger("tokenizer.ggml.eos_token_id"),
        };
        if (g.OptionalString($"{arch}.rope.scaling.type") == "linear" && g.OptionalNumber($"{arch}.rope.scaling.factor") is double f)
            o["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = f };
        if (arch is "gemma2" or "gemma3")
        {
            // llama.cpp's fixed choices for these families, written as the config fields that state them.
            int layers = (int)g.Integer($"{arch}.block_count"), headDim = (int)o["head_dim"]!.GetValue<long>();
            o["model_type"] = arch == "gemma2" ? "gemma2" : "gemma3_text";
            o["hidden_activation"] = "gelu_pytorch_tanh";
            o["query_pre_attn_scalar"] = LlamaCppGemma.QueryScalar(arch, layers, hidden, heads, headDim);
            o["sliding_window"] = g.OptionalInteger($"{arch}.attention.sliding_window") ?? (arch == "gemma2" ? 4096 : 512);
            o["layer_types"] = new JsonArray(Enumerable.Range(0, layers)
                .Select(l => (JsonNode)JsonValue.Create(LlamaCppGemma.IsLocal(arch, l) ? "sliding_attention" : "full_attention")!).ToArray());
            // Absent keys mean llama.cpp's defaults: 50 and 30 for Gemma 2, none for Gemma 3.
            o["attn_logit_softcapping"] = g.OptionalNumber($"{arch}.attn_logit_softcapping") ?? (arch == "gemma2" ? 50.0 : null);
            o["final_logit_softcapping"] = g.OptionalNumber($"{arch}.final_logit_softcapping") ?? (arch == "gemma2" ? 30.0 : null);
            if (arch == "gemma3") o["rope_local_base_freq"] = 10000.0;
        }
        return o;
    }

    /// <summary>tokenizer.json and tokenizer_config.json rebuilt from a <c>gpt2</c> GGUF vocabulary.</summary>
    public static (JsonObject Tokenizer, JsonObject Config) TokenizerJson(GgufFile g)
    {
        var model = g.String("tokenizer.ggml.model");
        if (model != "gpt2")
            throw new AttuneException(g.Path, "tokenizer.ggml.model", $"\"{model}\" tokenizers are not supported yet (byte-level BPE \"gpt2\" only)");
        var tokens = g.Array<string>("tokenizer.ggml.tokens", GgufType.String);
        var types = g.Has("tokenizer.ggml.token_type") ? g.Array<int>("tokenizer.ggml.token_type", GgufType.Int32) : new int[tokens.Length];
        var merges = g.Array<string>("tokenizer.ggml.merges", GgufType.String);
        var pre = g.OptionalString("tokenizer.ggml.pre") ?? "default";
        var vocab = new JsonObject();
        var added = new JsonArray();
        for (int i = 0; i < tokens.Length; i++)
        {
            int type = i < types.Length ? types[i] : 1;
            if (type == 5 && tokens[i].StartsWith("[PAD", StringComparison.Ordinal)) continue;
            if (type is 3 or 4)
                added.Add(new JsonObject
                {
                    ["id"] = i, ["content"] = tokens[i], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = false, ["special"] = type == 3,
                });
            else vocab[tokens[i]] = i;
        }
        JsonObject Split(string pattern) => new()
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
        };
        JsonNode preTokenizer = pre switch
        {
            "llama-bpe" or "llama3" or "llama-v3" => Split(SplitScanner.Gpt4Pattern),
            "qwen2" => Split(SplitScanner.QwenPattern),
            "gpt-2" => new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            "smollm" => new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Digits", ["individual_digits"] = true },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true }),
            },
            _ => throw new AttuneException(g.Path, "tokenizer.ggml.pre", $"\"{pre}\" is not supported (llama-bpe, qwen2, gpt-2, smollm)"),
        };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = pre == "qwen2" ? new JsonObject { ["type"] = "NFC" } : null,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["ignore_merges"] = pre is "llama-bpe" or "llama3" or "llama-v3",
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
            },
        };
        string? Token(string key) => g.OptionalInteger(key) is long id && id >= 0 && id < tokens.Length ? tokens[id] : null;
        var config = new JsonObject
        {
            ["bos_token"] = Token("tokenizer.ggml.bos_token_id"),
            ["eos_token"] = Token("tokenizer.ggml.eos_token_id"),
            ["pad_token"] = Token("tokenizer.ggml.padding_token_id"),
            ["add_bos_token"] = g.OptionalBool("tokenizer.ggml.add_bos_token") ?? false,
            ["add_eos_token"] = g.OptionalBool("tokenizer.ggml.add_eos_token") ?? false,
            ["clean_up_tokenization_spaces"] = false,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["chat_template"] = g.OptionalString("tokenizer.chat_template"),
        };
        // A post-processor that adds BOS when the GGUF asks for it.
        if (config["add_bos_token"]!.GetValue<bool>() && g.OptionalInteger("tokenizer.ggml.bos_token_id") is long bosId)
            tokenizer["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = tokens[bosId], ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                ["pair"] = new JsonArray(),
                ["special_tokens"] = new JsonObject { [tokens[bosId]] = new JsonObject { ["id"] = tokens[bosId], ["ids"] = new JsonArray((int)bosId), ["tokens"] = new JsonArray(tokens[bosId]) } },
            };
        return (tokenizer, config);
    }

    // ─── GGUF → folder ─────────────────────────────────────────────────────────────

    public static void ToCheckpoint(string ggufPath, string outDir, DType dtype, IProgress<double>? progress = null)
    {
        if (dtype is not (DType.F32 or DType.F16 or DType.BF16))
            throw new AttuneException(null, "--dtype", "a checkpoint folder holds f32, f16 or bf16 weights");
        using var g = GgufFile.Open(ggufPath);
        var configJson = ConfigJson(g);
        var c = ModelConfig.Parse(configJson, ggufPath);
        var (tokenizer, tokenizerConfig) = TokenizerJson(g);
        bool permuted = RopeInterleaved(g.String("general.architecture"));

        CheckpointWriter.Write(outDir, folder =>
        {
            folder.Config(configJson, dtype);
            folder.Json(Checkpoint.TokenizerFileName, tokenizer, indented: false);
            folder.Json(Checkpoint.TokenizerConfigFileName, tokenizerConfig);
            var expected = TensorLayout.Expected(c).Where(t => !t.Optional || g.Contains(GgufName(t.Name, c))).ToList();
            var specs = expected.Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList(); // as transformers saves: one dtype throughout
            using (var writer = folder.Weights(specs))
            {
                for (int k = 0; k < expected.Count; k++)
                {
                    var t = expected[k];
                    long n = t.Shape.Aggregate(1L, (a, d) => a * d);
                    var values = g.Floats(GgufName(t.Name, c), n);
                    if (c.NormPlusOne && IsNorm(t.Name)) values = values.Select(w => w - 1).ToArray(); // back to Gemma's stored w
                    if (permuted && IsQueryOrKey(t.Name, out bool isQuery))
                        values = PermuteRows(values, isQuery ? c.NumHeads : c.NumKvHeads, c.HeadDim, t.Shape.Length == 1 ? 1 : (int)t.Shape[1], inverse: true);
                    writer.Write(t.Name, DTypes.FromSingle(specs[k].DType, values));
                    progress?.Report((double)(k + 1) / expected.Count);
                }
                writer.Commit();
            }
        });
    }

}
