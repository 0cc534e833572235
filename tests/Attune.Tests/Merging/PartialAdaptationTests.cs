using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Formats;
using Attune.Merging;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Tests.Cli;
using Attune.Tests.Conformance;

namespace Attune.Tests.Merging;

public class PartialAdaptationTests
{
    static MergeOptions At(params double[] lambdas) => new() { Lambdas = lambdas };

    static float[] Floats(Checkpoint c, string name) => WeightValues.Of(c, name);

    /// <summary>Every family; Gemma's norms interpolate as stored (w, not the 1 + w the engine applies).</summary>
    [Theory]
    [InlineData(TinyModels.LlamaConfig)]
    [InlineData(Modeling.TransformerTests.Gemma2)]
    [InlineData(Modeling.TransformerTests.Gemma3)]
    [InlineData(Modeling.TransformerTests.Olmo2)]
    public void Lambda_zero_and_one_reproduce_the_inputs_bit_for_bit_and_one_half_is_the_mean(string config)
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], config, DType.BF16, seed: 1);
        TinyModels.Write(tmp["inst"], config, DType.BF16, seed: 2);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["out"], At(0, 0.5, 1));
        using var b = Checkpoint.Open(tmp["base"]);
        using var i = Checkpoint.Open(tmp["inst"]);
        using var m0 = Checkpoint.Open(tmp["out/lambda-0.00"]);
        using var m5 = Checkpoint.Open(tmp["out/lambda-0.50"]);
        using var m1 = Checkpoint.Open(tmp["out/lambda-1.00"]);
        foreach (var name in b.Weights.Names)
        {
            Assert.True(b.Weights.GetView(name).Bytes.SequenceEqual(m0.Weights.GetView(name).Bytes), $"λ=0 {name}");
            Assert.True(i.Weights.GetView(name).Bytes.SequenceEqual(m1.Weights.GetView(name).Bytes), $"λ=1 {name}");
            var mean = Floats(b, name).Zip(Floats(i, name), (x, y) => BFloat16.FromSingle((x + y) / 2)).ToArray();
            Assert.Equal(mean, m5.Weights.GetView(name).As<BFloat16>().ToArray().Select(v => v.Bits));
        }
        var yml = File.ReadAllText(tmp["out/lambda-0.50/attune_merge.yml"]);
        Assert.Contains("lambda: 0.5", yml);
        // The hashes in the header and the yml are the real SHA-256 of the inputs (patched in at commit).
        var baseSha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(tmp["base/model.safetensors"])));
        Assert.Contains($"base_sha256: {baseSha}", yml);
        Assert.Contains($"base_sha256: {baseSha}", m5.Weights.Metadata["attune.merge"]);
        Assert.DoesNotContain("????", m5.Weights.Metadata["attune.merge"]);
        Assert.DoesNotContain("!!!!", m0.Weights.Metadata["attune.merge"]);
        using var merged = ModelWeights.FromCheckpoint(Checkpoint.Open(tmp["out/lambda-0.50"]), ownCheckpoint: true);
        var t = new Transformer(merged);
        Assert.True(float.IsFinite(t.Forward(t.NewCache(4), [1, 2, 3]).Row(0)[0]));
    }

    [Fact]
    public void Several_lambdas_in_one_pass_equal_separate_merges()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["all"], At(Attune.Models.Lambda.ParseList("0:1:0.25").Select(l => l.Value).ToArray()));
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["one"], At(0.25) with { ChunkElements = 100 }); // small chunks too
        Assert.Equal(5, Directory.GetDirectories(tmp["all"]).Length);
        Assert.Equal(File.ReadAllBytes(tmp["one/model.safetensors"]).Length, File.ReadAllBytes(tmp["all/lambda-0.25/model.safetensors"]).Length);
        using var a = Checkpoint.Open(tmp["all/lambda-0.25"]);
        using var o = Checkpoint.Open(tmp["one"]);
        foreach (var name in a.Weights.Names) Assert.True(a.Weights.GetView(name).Bytes.SequenceEqual(o.Weights.GetView(name).Bytes), name);
    }

    [Fact]
    public void Rows_beyond_the_base_vocabulary_come_from_the_instruct_model_and_a_tied_base_lends_its_embedding()
    {
        using var tmp = new TempDir();
        var untiedBigger = TinyModels.LlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 40").Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);   // tied, 32 rows
        TinyModels.Write(tmp["inst"], untiedBigger, DType.F32, seed: 2);             // untied, 40 rows
        var log = new StringWriter();
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["out"], At(0.25), log: log);
        using var b = Checkpoint.Open(tmp["base"]);
        using var i = Checkpoint.Open(tmp["inst"]);
        using var m = Checkpoint.Open(tmp["out"]);
        Assert.Equal(40, m.Config.VocabSize);
        var be = Floats(b, TensorLayout.Embedding);
        var ie = Floats(i, TensorLayout.Embedding);
        var me = Floats(m, TensorLayout.Embedding);
        int h = 16;
        for (int k = 0; k < 32 * h; k++) Assert.Equal(0.75f * be[k] + 0.25f * ie[k], me[k]);
        for (int k = 32 * h; k < 40 * h; k++) Assert.Equal(ie[k], me[k]);
        // The untied output's head mixes the base's embedding with the instruct head.
        var ih = Floats(i, TensorLayout.LmHead);
        var mh = Floats(m, TensorLayout.LmHead);
        for (int k = 0; k < 32 * h; k++) Assert.Equal(0.75f * be[k] + 0.25f * ih[k], mh[k]);
        Assert.Contains("beyond the base's vocabulary", log.ToString());
        Assert.Contains("embedding serves as its lm_head", log.ToString());
        Assert.Contains("rows_from_instruct", File.ReadAllText(tmp["out/attune_merge.yml"]));
    }

    [Fact]
    public void Different_dtypes_compute_in_f32_and_write_the_instruct_dtype_unless_asked()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.BF16, seed: 2);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["a"], At(0.5));
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["b"], At(0.5) with { DType = DType.F32 });
        using var a = Checkpoint.Open(tmp["a"]);
        using var bb = Checkpoint.Open(tmp["b"]);
        Assert.Equal(DType.BF16, a.Weights.GetView(TensorLayout.Embedding).DType);
        Assert.Equal(DType.F32, bb.Weights.GetView(TensorLayout.Embedding).DType);
        Assert.Equal("bfloat16", a.Config.TorchDtype);
    }

    [Fact]
    public void Mismatched_models_are_refused_before_anything_is_written()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["wide"], TinyModels.LlamaConfig.Replace("\"intermediate_size\": 40", "\"intermediate_size\": 48"), DType.F32, seed: 2);
        TinyModels.Write(tmp["qwen"], TinyModels.LlamaConfig.Replace("LlamaForCausalLM", "Qwen2ForCausalLM"), DType.F32, seed: 2);
        TinyModels.Write(tmp["small"], TinyModels.LlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 24"), DType.F32, seed: 2);
        Assert.Contains("intermediate_size: base 40, instruct 48", Assert.Throws<AttuneException>(() => PartialAdaptation.Merge(tmp["base"], tmp["wide"], tmp["o1"], At(0.5))).Message);
        Assert.Contains("architectures", Assert.Throws<AttuneException>(() => PartialAdaptation.Merge(tmp["base"], tmp["qwen"], tmp["o2"], At(0.5))).Message);
        Assert.Contains("vocab_size", Assert.Throws<AttuneException>(() => PartialAdaptation.Merge(tmp["base"], tmp["small"], tmp["o3"], At(0.5))).Message);
        Assert.False(Directory.Exists(tmp["o1"]) || Directory.Exists(tmp["o2"]) || Directory.Exists(tmp["o3"]));
        Assert.Empty(Directory.GetDirectories(tmp.Path, ".*"));
    }

    [Fact]
    public void A_merge_that_fails_midway_leaves_no_output()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        // Interrupt the merge after some chunks have been written (as a kill would).
        int reports = 0;
        var interrupt = new SyncProgress(_ => { if (++reports == 5) throw new OperationCanceledException("killed"); });
        Assert.Throws<OperationCanceledException>(() =>
            PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["out"], At(0.3, 0.6) with { ChunkElements = 64 }, interrupt));
        Assert.Equal(5, reports);
        Assert.False(Directory.Exists(tmp["out/lambda-0.30"]));
        Assert.Empty(Directory.GetDirectories(tmp.Path, ".*", SearchOption.AllDirectories));
    }

    [Fact]
    public void The_merged_folder_runs_in_the_engine_and_in_llama_cpp()
    {
        using var tmp = new TempDir();
        var preset = Presets.Find("tiny", "qwen2").Config;
        ModelInitializer.Write(tmp["base"], preset, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["inst"], preset, seed: 2, DType.F32);
        var (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--lambda", "0.4", "--out", tmp["m"]);
        Assert.True(code == 0, err);
        using var lm = LanguageModel.Load(tmp["m"]);
        var ids = lm.Tokenizer.Encode("Le musée ouvre à neuf heures");
        var logits = lm.Transformer.Forward(lm.Transformer.NewCache(ids.Length), ids).Row(0).ToArray();
        GgufConverter.ToGguf(tmp["m"], tmp["m.gguf"], GgmlType.F32);
        File.WriteAllText(tmp["req.jsonl"], new JsonObject { ["op"] = "next", ["ids"] = new JsonArray(ids.Select(x => (JsonNode)x).ToArray()), ["top"] = 1 }.ToJsonString());
        var answer = NodePeer.RunJsonl("llama.mjs", $"{tmp["m.gguf"]} --threads 1 --kv-type F32", tmp["req.jsonl"]).Single();
        Assert.Equal(Array.IndexOf(logits, logits.Max()), answer["top"]![0]![0]!.GetValue<int>());
    }

    sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    [Theory]
    [InlineData("--lambdas 1:0:0.1", "--lambdas")]
    [InlineData("--lambdas 0,x", "--lambdas")]
    [InlineData("--lambda 0.5 --lambdas 0,1", "--lambda")]
    [InlineData("--lambda 0.5 --method fancy", "--method")]
    [InlineData("--lambda 0.5 --tokenizer-from other", "--tokenizer-from")]
    public void Bad_merge_options_give_one_line(string options, string expected)
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        var args = new[] { "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--out", tmp["o"] }.Concat(options.Split(' ')).ToArray();
        var (code, _, err) = CliRunner.Run("", args);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void A_maximum_shard_size_gives_shards_with_an_index()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        var (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--lambda", "0.5", "--max-shard-size", "4KB", "--out", tmp["o"]);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(tmp["o/model.safetensors.index.json"]));
        using var c = Checkpoint.Open(tmp["o"]);
        Assert.True(c.Weights.Files.Count > 1);
        Assert.Contains("--max-shard-size", CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--lambda", "0.5", "--max-shard-size", "big", "--out", tmp["p"]).Err);
    }

    [Fact]
    public void Extrapolation_warns()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        var (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--lambda", "1.5", "--out", tmp["o"]);
        Assert.Equal(0, code);
        Assert.Contains("extrapolates", err);
    }
}

public class InterpolatedModelTests
{
    [Theory]
    [InlineData(0.3)]
    [InlineData(1.2)]
    public void The_in_memory_model_gives_the_merged_folders_logits_bit_for_bit(double lambda)
    {
        using var tmp = new TempDir();
        var preset = Presets.Find("tiny", "qwen3").Config;
        ModelInitializer.Write(tmp["base"], preset, seed: 1, DType.BF16);
        ModelInitializer.Write(tmp["inst"], preset, seed: 2, DType.BF16);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["merged"], new MergeOptions { Lambdas = [lambda] });
        using var folder = LanguageModel.Load(tmp["merged"]);
        using var memory = ModelLoader.Load(Attune.Models.ModelReference.Parse($"{tmp["base"]}+{tmp["inst"]}@{lambda.ToString(System.Globalization.CultureInfo.InvariantCulture)}"));
        var ids = folder.Tokenizer.Encode("Una buena pregunta suele ser más útil");
        float[] Logits(LanguageModel m) => m.Transformer.Forward(m.Transformer.NewCache(ids.Length), ids, allLogits: true).Row(ids.Length - 1).ToArray();
        Assert.Equal(Logits(folder), Logits(memory));
        Assert.Equal(folder.Tokenizer.Encode("hola"), memory.Tokenizer.Encode("hola"));
    }

    [Fact]
    public void Interpolated_model_specs_work_on_the_command_line_and_bad_ones_are_named()
    {
        using var tmp = new TempDir();
        var preset = Presets.Find("tiny", "llama").Config;
        ModelInitializer.Write(tmp["base"], preset, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["inst"], preset, seed: 2, DType.F32);
        var (code, output, err) = CliRunner.Run("", "generate", "--model", $"{tmp["base"]}+{tmp["inst"]}@0.5", "--prompt", "Hello", "--max-tokens", "4");
        Assert.True(code == 0, err);
        Assert.False(string.IsNullOrWhiteSpace(output));
        Assert.Contains("BASE+INSTRUCT@λ", CliRunner.Run("", "generate", "--model", $"{tmp["base"]}+{tmp["inst"]}@half", "--prompt", "x").Err);
    }
}
