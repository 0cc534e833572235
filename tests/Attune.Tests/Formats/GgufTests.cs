using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Modeling;
using Attune.Text;

namespace Attune.Tests.Formats;

/// <summary>In the "Simd" collection: its comparisons of two forward passes must not see the SIMD level switched between them.</summary>
[Collection("Simd")]
public class GgufTests
{
    static string Init(TempDir tmp, string arch, DType dtype = DType.F32, JsonObject? edit = null)
    {
        var config = (JsonObject)Presets.Find("tiny", arch).Config.DeepClone();
        foreach (var (k, v) in edit ?? []) config[k] = v?.DeepClone();
        var dir = tmp[$"{arch}-model"];
        ModelInitializer.Write(dir, config, seed: 11, dtype);
        return dir;
    }

    static float[] LastLogits(LanguageModel lm, int[] tokens)
    {
        var t = lm.Transformer;
        return t.Forward(t.NewCache(tokens.Length), tokens).Row(0).ToArray();
    }

    static double MaxRelative(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max() / b.Max(Math.Abs);

    public static TheoryData<string> Archs() => ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "olmo2"];

    [Theory]
    [MemberData(nameof(Archs))]
    public void An_f32_gguf_gives_the_folders_logits_and_tokens(string arch)
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, arch);
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.F32);
        using var folder = LanguageModel.Load(dir);
        using var gguf = LanguageModel.Load(tmp["m.gguf"]);
        var text = "Le musée ouvre à neuf heures. <|im_start|>user 12345";
        var ids = folder.Tokenizer.Encode(text);
        Assert.Equal(ids, gguf.Tokenizer.Encode(text));
        Assert.True(MaxRelative(LastLogits(gguf, ids), LastLogits(folder, ids)) < 1e-5);
        Assert.Equal(arch == "llama", gguf.Transformer.Weights.RopeInterleaved);
    }

    [Fact]
    public void Llama3_rope_scaling_travels_as_rope_freqs_and_gives_the_same_logits()
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, "llama", edit: new JsonObject
        {
            ["rope_scaling"] = new JsonObject { ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 64, ["rope_type"] = "llama3" },
            ["rope_theta"] = 500000.0,
        });
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.F32);
        using (var g = GgufFile.Open(tmp["m.gguf"])) Assert.True(g.Contains("rope_freqs.weight"));
        using var folder = LanguageModel.Load(dir);
        using var gguf = LanguageModel.Load(tmp["m.gguf"]);
        var ids = Enumerable.Range(1, 200).Select(i => i % 300).ToArray(); // long enough for the scaled band to matter
        Assert.True(MaxRelative(LastLogits(gguf, ids), LastLogits(folder, ids)) < 1e-4);
    }

    [Theory]
    [MemberData(nameof(Archs))]
    public void A_q8_0_gguf_runs_in_place_and_matches_its_own_reference(string arch)
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, arch);
        GgufConverter.ToGguf(dir, tmp["q.gguf"], GgmlType.Q8_0);
        using var q = LanguageModel.Load(tmp["q.gguf"]);
        Assert.Equal(WeightType.Q8_0, q.Transformer.Weights.Layers[0].Up.Type);
        var ids = q.Tokenizer.Encode("Una buena pregunta");
        var expected = new ReferenceTransformer(q.Transformer.Weights).Logits(ids)[^1];
        var got = LastLogits(q, ids);
        double refErr = got.Zip(expected, (a, b) => Math.Abs(a - b)).Max() / expected.Max(Math.Abs);
        Assert.True(refErr < 1e-4, $"engine against its reference: {refErr:E2}");
        using var f = LanguageModel.Load(dir);
        Assert.True(MaxRelative(got, LastLogits(f, ids)) < 0.05, $"quantized logits stay near the f32 ones: {MaxRelative(got, LastLogits(f, ids)):E2}");
    }

    [Fact]
    public void Folder_to_gguf_to_folder_restores_config_tensors_and_tokenizer()
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, "qwen2", DType.BF16);
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.BF16);
        GgufConverter.ToCheckpoint(tmp["m.gguf"], tmp["back"], DType.BF16);
        using var a = Checkpoint.Open(dir);
        using var b = Checkpoint.Open(tmp["back"]);
        Assert.Equal(a.Config with { TorchDtype = null, EosTokenIds = [] }, b.Config with { TorchDtype = null, EosTokenIds = [] });
        Assert.Equal(a.Config.EosTokenIds, b.Config.EosTokenIds);
        foreach (var name in a.Weights.Names)
            Assert.True(a.Weights.GetView(name).Bytes.SequenceEqual(b.Weights.GetView(name).Bytes), name);
        var ta = Tokenizer.Load(dir);
        var tb = Tokenizer.Load(tmp["back"]);
        foreach (var line in new[] { "Hello world!", "¿Qué tal? 2024", "<|im_start|>user\nhi<|im_end|>", "   spaces\t\ttabs\n\n" })
            Assert.Equal(ta.Encode(line), tb.Encode(line));
    }

    [Theory]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    [InlineData("olmo2")]
    public void Gemma_and_olmo2_round_trip_with_their_names_keys_and_norm_convention(string arch)
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, arch, DType.BF16);
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.BF16);
        using (var g = GgufFile.Open(tmp["m.gguf"]))
        {
            Assert.Equal(arch, g.String("general.architecture"));
            Assert.True(g.Contains("blk.0.post_attention_norm.weight"));
            Assert.True(g.Contains("blk.0.post_ffw_norm.weight"));
            Assert.Equal(arch != "olmo2", g.Contains("blk.0.attn_norm.weight"));
            Assert.Equal(arch != "olmo2", g.Contains("blk.0.ffn_norm.weight"));
            Assert.Equal(arch != "gemma2", g.Contains("blk.0.attn_q_norm.weight"));
            Assert.Equal(arch == "olmo2", g.Contains("output.weight")); // llama.cpp's olmo2 requires it even when tied
            // Gemma's norms start at w = 0 and llama.cpp multiplies by the stored value: the file holds 1 + w.
            var norm = g.Floats("blk.0.post_attention_norm.weight", 64);
            Assert.All(norm, v => Assert.Equal(1f, v));
            if (arch.StartsWith("gemma", StringComparison.Ordinal))
            {
                Assert.Equal(8u, (uint)g.Integer($"{arch}.attention.sliding_window"));
                Assert.Equal(arch == "gemma2", g.Has($"{arch}.attn_logit_softcapping"));
            }
        }
        GgufConverter.ToCheckpoint(tmp["m.gguf"], tmp["back"], DType.BF16);
        using var a = Checkpoint.Open(dir);
        using var b = Checkpoint.Open(tmp["back"]);
        foreach (var name in a.Weights.Names)
            Assert.True(a.Weights.GetView(name).Bytes.SequenceEqual(b.Weights.GetView(name).Bytes), name);
        using var folder = LanguageModel.Load(dir);
        using var gguf = LanguageModel.Load(tmp["m.gguf"]);
        var ids = folder.Tokenizer.Encode("Le musée ouvre à neuf heures, et ferme à six heures du soir.");
        Assert.True(MaxRelative(LastLogits(gguf, ids), LastLogits(folder, ids)) < 1e-5);
    }

    [Fact]
    public void Gguf_files_llama_cpp_would_run_differently_are_refused_with_the_field()
    {
        using var tmp = new TempDir();
        var scale = Init(tmp, "gemma2", edit: new JsonObject { ["query_pre_attn_scalar"] = 12 });
        var e = Assert.Throws<AttuneException>(() => GgufConverter.ToGguf(scale, tmp["a.gguf"], GgmlType.F32));
        Assert.Contains("query_pre_attn_scalar", e.Message);
        Assert.False(File.Exists(tmp["a.gguf"]));
        var untied = Init(tmp, "gemma3", edit: new JsonObject { ["tie_word_embeddings"] = false });
        var pattern = tmp["gemma2-pattern"];
        ModelInitializer.Write(pattern, Edit(Presets.Find("tiny", "gemma2").Config, new JsonObject
        {
            ["layer_types"] = new JsonArray("full_attention", "sliding_attention"),
        }), seed: 1, DType.F32);
        Assert.Contains("layer_types", Assert.Throws<AttuneException>(() => GgufConverter.ToGguf(pattern, tmp["b.gguf"], GgmlType.F32)).Message);
        var untiedGemma2 = tmp["gemma2-untied"];
        ModelInitializer.Write(untiedGemma2, Edit(Presets.Find("tiny", "gemma2").Config, new JsonObject { ["tie_word_embeddings"] = false }), seed: 1, DType.F32);
        Assert.Contains("tie_word_embeddings", Assert.Throws<AttuneException>(() => GgufConverter.ToGguf(untiedGemma2, tmp["c.gguf"], GgmlType.F32)).Message);
        // Gemma 3 may carry its own head: llama.cpp reads output.weight when present.
        GgufConverter.ToGguf(untied, tmp["d.gguf"], GgmlType.F32);
        using var g = GgufFile.Open(tmp["d.gguf"]);
        Assert.True(g.Contains("output.weight"));
    }

    static JsonObject Edit(JsonObject config, JsonObject edit)
    {
        var c = (JsonObject)config.DeepClone();
        foreach (var (k, v) in edit) c[k] = v?.DeepClone();
        return c;
    }

    [Fact]
    public void Metadata_has_the_keys_and_types_llama_cpp_requires()
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, "qwen3");
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.F16);
        using var g = GgufFile.Open(tmp["m.gguf"]);
        Assert.Equal("qwen3", g.String("general.architecture"));
        foreach (var key in new[] { "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
                     "attention.head_count_kv", "attention.key_length", "rope.dimension_count" })
            Assert.Equal(GgufType.UInt32, g.Metadata[$"qwen3.{key}"].Type);
        Assert.Equal(GgufType.Float32, g.Metadata["qwen3.attention.layer_norm_rms_epsilon"].Type);
        Assert.Equal(GgufType.UInt32, g.Metadata["tokenizer.ggml.bos_token_id"].Type);
        Assert.Equal("qwen2", g.String("tokenizer.ggml.pre"));
        var tokens = g.Array<string>("tokenizer.ggml.tokens", GgufType.String);
        Assert.Equal(512, tokens.Length); // padded to vocab_size
        Assert.Equal(tokens.Length, tokens.Distinct().Count());
        Assert.False(g.Contains("output.weight")); // tied
        Assert.Equal(GgmlType.F32, g.Tensor("blk.0.attn_q_norm.weight").Type);
        Assert.Equal(GgmlType.F16, g.Tensor("blk.1.ffn_down.weight").Type);
        Assert.Equal([64L, 512], g.Tensor("token_embd.weight").Ne);
        Assert.Contains("<|im_start|>", g.String("tokenizer.chat_template"));
        // Offsets are the padded running sum, as llama.cpp checks.
        long expected = g.Tensors[0].Offset;
        foreach (var t in g.Tensors)
        {
            Assert.Equal(expected, t.Offset);
            expected += (t.ByteLength + 31) / 32 * 32;
        }
    }

    [Fact]
    public void Q_and_k_rows_are_permuted_for_the_llama_architecture_and_back()
    {
        var values = Enumerable.Range(0, 2 * 8 * 3).Select(i => (float)i).ToArray(); // 2 heads of dim 8, rows of 3
        var p = GgufConverter.PermuteRows(values, heads: 2, headDim: 8, rowLength: 3, inverse: false);
        // Row 1 of the GGUF layout is Hugging Face row 4 (i = 0, second half).
        Assert.Equal(values[(4 * 3)..(5 * 3)], p[3..6]);
        Assert.Equal(values, GgufConverter.PermuteRows(p, 2, 8, 3, inverse: true));
    }

    [Fact]
    public void Truncated_or_corrupted_gguf_files_give_clear_errors()
    {
        using var tmp = new TempDir();
        var dir = Init(tmp, "llama");
        GgufConverter.ToGguf(dir, tmp["m.gguf"], GgmlType.F32);
        var bytes = File.ReadAllBytes(tmp["m.gguf"]);
        var rng = new Random(3);
        var bad = tmp["bad.gguf"];
        for (int trial = 0; trial < 300; trial++)
        {
            var b = trial < 150 ? bytes[..rng.Next(bytes.Length)] : (byte[])bytes.Clone();
            if (trial >= 150) for (int k = 0; k < 3; k++) b[rng.Next(Math.Min(b.Length, 4096))] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(bad, b);
            try
            {
                using var lm = LanguageModel.Load(bad);
                lm.Transformer.Forward(lm.Transformer.NewCache(2), [1, 2]);
            }
            catch (AttuneException) { }
        }
        File.WriteAllBytes(bad, "NOPE"u8.ToArray().Concat(new byte[40]).ToArray());
        Assert.Contains("not a GGUF file", Assert.Throws<AttuneException>(() => GgufFile.Open(bad)).Message);
    }
}
