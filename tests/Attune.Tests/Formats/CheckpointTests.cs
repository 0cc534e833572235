using Attune.Formats;
using Attune.Tensors;

namespace Attune.Tests.Formats;

public class CheckpointTests
{
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void A_complete_tied_llama_checkpoint_opens_without_lm_head(DType dtype)
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TinyModels.LlamaConfig, dtype);
        using var ckpt = Checkpoint.Open(tmp.Path);
        Assert.Equal(2, ckpt.Config.NumLayers);
        Assert.False(ckpt.Weights.Contains(TensorLayout.LmHead));
        Assert.Equal(dtype, ckpt.Weights.GetView(TensorLayout.Embedding).DType);
    }

    [Fact]
    public void Sharded_checkpoint_opens_through_its_index()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TinyModels.LlamaConfig, maxShardBytes: 4096);
        Assert.True(File.Exists(tmp[SafeTensorsIndex.IndexFileName]));
        using var ckpt = Checkpoint.Open(tmp.Path);
        Assert.True(ckpt.Weights.Files.Count > 1);
        Assert.Equal(TensorLayout.Expected(ckpt.Config).Count(t => !t.Optional), ckpt.Weights.Names.Count);
    }

    [Fact]
    public void Every_missing_or_misshapen_tensor_is_reported_at_once()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TinyModels.LlamaConfig, edit: t => t.Name switch
        {
            "model.layers.1.mlp.up_proj.weight" => null,
            "model.layers.0.self_attn.k_proj.weight" => t with { Shape = [16, 16] },
            "model.norm.weight" => null,
            _ => t,
        });
        var e = Assert.Throws<AttuneException>(() => Checkpoint.Open(tmp.Path));
        Assert.Contains("3 problem(s)", e.Message);
        Assert.Contains("tensor model.layers.1.mlp.up_proj.weight is missing", e.Message);
        Assert.Contains("tensor model.layers.0.self_attn.k_proj.weight has shape [16, 16], expected [8, 16]", e.Message);
        Assert.Contains("tensor model.norm.weight is missing", e.Message);
    }

    [Fact]
    public void Untied_model_needs_lm_head()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, TinyModels.LlamaConfig.Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"),
            edit: t => t.Name == TensorLayout.LmHead ? null : t);
        var e = Assert.Throws<AttuneException>(() => Checkpoint.Open(tmp.Path));
        Assert.Contains("lm_head.weight is missing", e.Message);
    }

    [Fact]
    public void Qwen2_and_qwen3_layouts_need_their_extra_tensors()
    {
        var qwen2 = TinyModels.LlamaConfig.Replace("LlamaForCausalLM", "Qwen2ForCausalLM");
        var qwen3 = TinyModels.LlamaConfig.Replace("LlamaForCausalLM", "Qwen3ForCausalLM");
        using var tmp = new TempDir();
        TinyModels.Write(tmp["q2"], qwen2);
        TinyModels.Write(tmp["q3"], qwen3);
        using (var c2 = Checkpoint.Open(tmp["q2"])) Assert.True(c2.Weights.Contains("model.layers.0.self_attn.q_proj.bias"));
        using (var c3 = Checkpoint.Open(tmp["q3"])) Assert.True(c3.Weights.Contains("model.layers.1.self_attn.k_norm.weight"));

        // A Qwen2 config over Llama weights lacks the biases.
        File.Copy(tmp["q2/config.json"], tmp["q3/config.json"], overwrite: true);
        var e = Assert.Throws<AttuneException>(() => Checkpoint.Open(tmp["q3"]));
        Assert.Contains("self_attn.q_proj.bias is missing", e.Message);
    }

    [Fact]
    public void Missing_folder_and_missing_weights_are_clear_errors()
    {
        using var tmp = new TempDir();
        Assert.Contains("folder not found", Assert.Throws<AttuneException>(() => Checkpoint.Open(tmp["nope"])).Message);
        Directory.CreateDirectory(tmp["empty"]);
        File.WriteAllText(tmp["empty/config.json"], TinyModels.LlamaConfig);
        Assert.Contains("no model.safetensors", Assert.Throws<AttuneException>(() => Checkpoint.Open(tmp["empty"])).Message);
    }
}
