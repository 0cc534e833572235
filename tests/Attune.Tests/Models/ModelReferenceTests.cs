using Attune.Experiments;
using Attune.Merging;
using Attune.Modeling;
using Attune.Models;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Models;

public class LambdaTests
{
    [Theory]
    [InlineData(0.0, "lambda-0.00")]
    [InlineData(0.5, "lambda-0.50")]
    [InlineData(1.0, "lambda-1.00")]
    [InlineData(0.125, "lambda-0.125")]
    [InlineData(0.12345, "lambda-0.12345")]
    [InlineData(-0.5, "lambda--0.50")]
    [InlineData(1e-5, "lambda-0.00001")]
    public void A_lambda_is_named_with_every_digit_and_at_least_two_places(double value, string name)
    {
        Assert.Equal(name, new Lambda(value).Name);
        // The name reads back as the same λ: nothing is rounded away.
        Assert.Equal(value, Lambda.Parse(name["lambda-".Length..]).Value);
    }

    [Fact]
    public void Merge_and_sweep_give_a_lambda_the_same_name()
    {
        Assert.Equal("lambda-0.125", PartialAdaptation.FolderName(0.125));
        var plan = new SweepPlan
        {
            Base = new ModelReference.Folder("/b"), Instruct = new ModelReference.Folder("/i"), Lambdas = Lambda.ParseList("0.125,0.126"),
        };
        var arms = new Sweep(plan).Arms().Where(a => a.Lambda is not null).Select(a => a.Name).ToList();
        Assert.Equal(["lambda-0.125", "lambda-0.126"], arms);
    }

    [Fact]
    public void A_range_gives_exactly_the_values_a_user_would_type()
    {
        var tenths = Lambda.ParseList("0:1:0.1").Select(l => l.Value).ToList();
        Assert.Equal([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1], tenths);
        Assert.Equal([0.2, 0.5, 0.8], Lambda.ParseList("0.2:0.8:0.3").Select(l => l.Value));
        Assert.Equal([0, 0.125, 0.25, 0.375, 0.5], Lambda.ParseList("0:0.5:0.125").Select(l => l.Value));
        Assert.Equal(["0", "0.3", "1"], Lambda.ParseList("0, 0.3, 1").Select(l => l.ToString()));
    }

    [Theory]
    [InlineData("1:0:0.1")]
    [InlineData("0:1:0")]
    [InlineData("zero")]
    [InlineData("0,0.5,0.5")]
    [InlineData("0:1")]
    [InlineData("0:1:0.00001")]
    [InlineData("")]
    [InlineData("nan")]
    public void Bad_lambda_lists_are_refused_with_the_option_named(string text)
    {
        var e = Assert.Throws<AttuneException>(() => Lambda.ParseList(text));
        Assert.StartsWith("--lambdas:", e.Message);
    }
}

public class DTypeNameTests
{
    [Theory]
    [InlineData("f32", DType.F32)]
    [InlineData("float32", DType.F32)]
    [InlineData("FP32", DType.F32)]
    [InlineData("f16", DType.F16)]
    [InlineData("float16", DType.F16)]
    [InlineData("half", DType.F16)]
    [InlineData("bf16", DType.BF16)]
    [InlineData("bfloat16", DType.BF16)]
    [InlineData("torch.bfloat16", DType.BF16)]
    [InlineData("BF16", DType.BF16)]
    public void Every_command_reads_the_dtype_spellings_of_hugging_face_configs(string text, DType expected) =>
        Assert.Equal(expected, DTypes.ParseFloat(text));

    [Fact]
    public void Merge_convert_and_init_take_bfloat16()
    {
        using var tmp = new TempDir();
        var (code, _, err) = CliRunner.Run("", "init", "--preset", "tiny", "--dtype", "bfloat16", "--out", tmp["m"]);
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["m"], "--instruct", tmp["m"], "--lambda", "0.5", "--dtype", "bfloat16", "--out", tmp["merged"]);
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("", "convert", "--in", tmp["merged"], "--out", tmp["m.gguf"], "--dtype", "bfloat16");
        Assert.True(code == 0, err);
        (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["m"], "--instruct", tmp["m"], "--lambda", "0.5", "--dtype", "int4", "--out", tmp["bad"]);
        Assert.Equal(2, code);
        Assert.Contains("--dtype", err);
    }
}

public class ModelReferenceTests
{
    [Fact]
    public void Each_kind_of_model_argument_parses_into_its_record()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        File.WriteAllBytes(tmp["m.gguf"], [0]);
        Assert.Equal(new ModelReference.Folder(tmp["base"]), ModelReference.Parse(tmp["base"]));
        Assert.Equal(new ModelReference.Gguf(tmp["m.gguf"]), ModelReference.Parse(tmp["m.gguf"]));
        var i = Assert.IsType<ModelReference.Interpolation>(ModelReference.Parse($"{tmp["base"]}+{tmp["base"]}@0.25"));
        Assert.Equal(0.25, i.Lambda.Value);
        Assert.Equal($"{tmp["base"]}+{tmp["base"]}@0.25", i.Spec);
        var r = Assert.IsType<ModelReference.Remote>(ModelReference.Parse("http://127.0.0.1:8080/v1#smol"));
        Assert.Equal(("http://127.0.0.1:8080/v1", "smol"), (r.Endpoint.ToString(), r.Name));
        // The spec of a reference parses back to an equal reference.
        foreach (var m in new ModelReference[] { i, r }) Assert.Equal(m, ModelReference.Parse(m.Spec));
        // An interpolation reads checkpoint folders: a GGUF side is one line saying so.
        var e = Assert.Throws<AttuneException>(() => ModelLoader.Load(ModelReference.Parse($"{tmp["m.gguf"]}+{tmp["base"]}@0.5")));
        Assert.Contains("is a GGUF file", e.Message);
    }

    [Theory]
    [InlineData("http://host:8080/v1", "names no model")]
    [InlineData("ftp://host/v1#x", "not found")]
    [InlineData("/nowhere/at/all", "not found")]
    [InlineData("a+b@half", "not found")]
    public void A_bad_model_argument_is_one_line_naming_the_option(string text, string problem)
    {
        var e = Assert.Throws<AttuneException>(() => ModelReference.Parse(text));
        Assert.Contains("--model", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void An_interpolated_arm_and_the_same_folder_loaded_directly_stop_on_the_same_tokens()
    {
        // The tiny models' generation_config.json names <|im_end|> as a second end token, which their config.json
        // does not: the in-memory model must read it as the merged folder (which carries it) does.
        using var tmp = new TempDir();
        var preset = Presets.Find("tiny", "llama").Config;
        ModelInitializer.Write(tmp["base"], preset, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["inst"], preset, seed: 2, DType.F32);
        PartialAdaptation.Merge(tmp["base"], tmp["inst"], tmp["merged"], new MergeOptions { Lambdas = [0.5] });
        using var folder = ModelLoader.Load(ModelReference.Parse(tmp["merged"]));
        using var memory = ModelLoader.Load(ModelReference.Parse($"{tmp["base"]}+{tmp["inst"]}@0.5"));
        Assert.Equal(folder.EndOfSequenceIds.Order(), memory.EndOfSequenceIds.Order());
        Assert.Contains(folder.Tokenizer.TokenToId("<|im_end|>")!.Value, memory.EndOfSequenceIds);
        var ids = folder.Tokenizer.Encode("The two models answer alike");
        var options = new GenerationOptions { MaxNewTokens = 24 };
        var (a, b) = (folder.Generate(ids, options), memory.Generate(ids, options));
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(a.Finish, b.Finish);
    }
}

public class HubCacheTests
{
    /// <summary>A model in a Hugging Face cache laid out as huggingface_hub lays it out: blobs, symlinked snapshot files, refs.</summary>
    static string FakeCache(TempDir tmp, string repoId, string commit, string? tag = null)
    {
        ModelInitializer.Write(tmp["source"], Presets.Find("tiny", "qwen3").Config, seed: 3, DType.F32);
        var repo = Path.Combine(tmp["hub"], "models--" + repoId.Replace("/", "--"));
        var snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        foreach (var file in Directory.GetFiles(tmp["source"]))
        {
            var blob = Path.Combine(repo, "blobs", Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file))));
            File.Copy(file, blob, overwrite: true);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        if (tag is not null) File.WriteAllText(Path.Combine(repo, "refs", tag), commit);
        return snapshot;
    }

    [Fact]
    public void A_hub_id_in_the_local_cache_loads_without_any_network()
    {
        using var tmp = new TempDir();
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        var snapshot = FakeCache(tmp, "HuggingFaceTB/SmolLM2-Tiny", commit, tag: "v1.0");
        var cache = new HubCache(tmp["hub"]);
        var hub = Assert.IsType<ModelReference.Hub>(ModelReference.Parse("HuggingFaceTB/SmolLM2-Tiny", cache: cache));
        Assert.Equal(Path.GetFullPath(snapshot), hub.Snapshot);
        Assert.Equal("HuggingFaceTB/SmolLM2-Tiny", hub.DisplayName);
        foreach (var revision in new[] { "v1.0", commit })
            Assert.Equal(hub.Snapshot, cache.Resolve($"HuggingFaceTB/SmolLM2-Tiny@{revision}").Snapshot);
        using var lm = ModelLoader.Load(hub);
        using var direct = ModelLoader.Load(ModelReference.Parse(tmp["source"]));
        var ids = direct.Tokenizer.Encode("hola");
        Assert.Equal(direct.Tokenizer.Encode("hola"), lm.Tokenizer.Encode("hola"));
        Assert.Equal(direct.Transformer.Forward(direct.Transformer.NewCache(ids.Length), ids, allLogits: true).Row(ids.Length - 1).ToArray(),
            lm.Transformer.Forward(lm.Transformer.NewCache(ids.Length), ids, allLogits: true).Row(ids.Length - 1).ToArray());
        // Interpolation between two Hub ids works as between folders.
        Assert.IsType<ModelReference.Interpolation>(ModelReference.Parse("HuggingFaceTB/SmolLM2-Tiny+HuggingFaceTB/SmolLM2-Tiny@v1.0@0.5", cache: cache));
    }

    [Fact]
    public void A_hub_id_missing_from_the_cache_says_how_to_fetch_it()
    {
        using var tmp = new TempDir();
        FakeCache(tmp, "org/present", "0123456789abcdef0123456789abcdef01234567");
        var cache = new HubCache(tmp["hub"]);
        var e = Assert.Throws<AttuneException>(() => ModelReference.Parse("org/absent", cache: cache));
        Assert.Contains("huggingface-cli download org/absent", e.Message);
        e = Assert.Throws<AttuneException>(() => ModelReference.Parse("org/present@dev", cache: cache));
        Assert.Contains("huggingface-cli download org/present --revision dev", e.Message);
    }
}
