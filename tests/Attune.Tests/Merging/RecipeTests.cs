using Attune.Formats;
using Attune.Merging;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Merging;

public class RecipeTests
{
    static void Pair(TempDir tmp)
    {
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.BF16, seed: 1);
        TinyModels.Write(tmp["inst"], TinyModels.LlamaConfig, DType.BF16, seed: 2);
    }

    static bool SameBytes(Checkpoint a, Checkpoint b, string name) => a.Weights.GetView(name).Bytes.SequenceEqual(b.Weights.GetView(name).Bytes);

    [Fact]
    public void A_rule_can_take_attention_from_the_instruct_model_and_the_rest_from_the_base()
    {
        using var tmp = new TempDir();
        Pair(tmp);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["out"], new MergeOptions { Lambdas = [0], Rules = [new TensorRule("self_attn", [1])] });
        using var b = Checkpoint.Open(tmp["base"]);
        using var i = Checkpoint.Open(tmp["inst"]);
        using var m = Checkpoint.Open(tmp["out"]);
        foreach (var name in m.Weights.Names)
            Assert.True(SameBytes(m, name.Contains("self_attn") ? i : b, name), name);
    }

    [Fact]
    public void A_list_of_values_is_spread_across_the_layers()
    {
        using var tmp = new TempDir();
        Pair(tmp);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["out"], new MergeOptions { Lambdas = [0.5], Rules = [new TensorRule(".", [0, 1])] });
        using var b = Checkpoint.Open(tmp["base"]);
        using var i = Checkpoint.Open(tmp["inst"]);
        using var m = Checkpoint.Open(tmp["out"]);
        Assert.True(SameBytes(m, b, "model.layers.0.mlp.up_proj.weight"));
        Assert.True(SameBytes(m, i, "model.layers.1.mlp.up_proj.weight"));
        Assert.True(SameBytes(m, b, TensorLayout.Embedding)); // before the layers: first value
        Assert.True(SameBytes(m, b, TensorLayout.FinalNorm)); // after the layers too: the first value (mergekit evaluates both at t = 0)
        var rule = new TensorRule("x", [0, 1, 0.5]);
        Assert.Equal([0, 0.5, 1, 0.75, 0.5], Enumerable.Range(0, 5).Select(l => rule.ValueFor(l, 5)));
        Assert.Equal(0.5, rule.ValueFor(0, 1)); // one layer: t = 1, as mergekit
        Assert.True(new TensorRule("*", [0.3]).Matches("lm_head.weight")); // mergekit's filter for every tensor
    }

    [Fact]
    public void A_yaml_recipe_gives_the_same_checkpoint_as_the_equivalent_flags()
    {
        using var tmp = new TempDir();
        Pair(tmp);
        File.WriteAllText(tmp["merge.yml"], """
            # partial adaptation with the embeddings kept from the base
            method: linear
            base: base
            instruct: inst
            lambdas: [0.25, 0.75]
            rules:
              - match: "embed_tokens"
                lambda: 0
              - match: "mlp"
                lambda: [0.1, 0.9]
            dtype: f32
            """);
        var (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["merge.yml"], "--out", tmp["r"]);
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["inst"], "--lambdas", "0.25,0.75",
            "--rule", "embed_tokens=0", "--rule", "mlp=0.1,0.9", "--dtype", "f32", "--out", tmp["f"]);
        Assert.True(code == 0, err);
        foreach (var lambda in new[] { "lambda-0.25", "lambda-0.75" })
        {
            using var r = Checkpoint.Open(tmp[$"r/{lambda}"]);
            using var f = Checkpoint.Open(tmp[$"f/{lambda}"]);
            foreach (var name in r.Weights.Names) Assert.True(SameBytes(r, f, name), $"{lambda} {name}");
            Assert.Equal(File.ReadAllText(tmp[$"r/{lambda}/attune_merge.yml"]), File.ReadAllText(tmp[$"f/{lambda}/attune_merge.yml"]));
            Assert.Contains("embed_tokens", File.ReadAllText(tmp[$"r/{lambda}/attune_merge.yml"]));
        }
    }

    [Theory]
    [InlineData("base: b\ninstruct: i\nlambda: [0.5\n", "not valid YAML")]
    [InlineData("base: b\ninstruct: i\nlambda: 0.5\ncolour: blue\n", "line 4: colour")]
    [InlineData("method: fancy\nbase: b\ninstruct: i\nlambda: 0.5\n", "line 1: method")]
    [InlineData("base: b\ninstruct: i\n", "lambda: missing")]
    [InlineData("base: b\ninstruct: i\nlambda: half\n", "line 3: lambda")]
    [InlineData("base: b\ninstruct: i\nlambda: 0.5\ndtype: q4\n", "line 4: dtype")]
    [InlineData("base: b\ninstruct: i\nlambda: 0.5\nrules:\n  - match: \"(\"\n    lambda: 1\n", "regular expression")]
    public void Bad_recipes_name_the_line_and_field(string yaml, string expected)
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["r.yml"], yaml);
        var e = Assert.Throws<AttuneException>(() => MergeRecipe.Load(tmp["r.yml"]));
        Assert.Contains(expected, e.Message);
    }
}
