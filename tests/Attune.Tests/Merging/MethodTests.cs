using Attune.Formats;
using Attune.Merging;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Merging;

public class MethodTests
{
    const string Up = "model.layers.0.mlp.up_proj.weight";

    static float[] Floats(string dir, string name) => WeightValues.Of(dir, name);

    static TempDir Three()
    {
        var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        TinyModels.Write(tmp["a"], TinyModels.LlamaConfig, DType.F32, seed: 2);
        TinyModels.Write(tmp["b"], TinyModels.LlamaConfig, DType.F32, seed: 3);
        return tmp;
    }

    static void Merge(TempDir tmp, string method, string[] models, double lambda, string outName, MergeMethods.Parameters? p = null, int chunk = 1 << 22)
    {
        var (m, recorded) = MergeMethods.Create(method, (p ?? new()) with { Weights = (p?.Weights.Count ?? 0) == models.Length ? p!.Weights : models.Select(_ => 1.0).ToList() });
        PartialAdaptation.Merge(tmp["base"], models.Select(x => tmp[x]).ToList(), tmp[outName],
            new MergeOptions { Lambdas = [lambda], Method = m, MethodParameters = recorded, ChunkElements = chunk });
    }

    [Fact]
    public void Task_arithmetic_adds_weighted_task_vectors()
    {
        using var tmp = Three();
        Merge(tmp, "task_arithmetic", ["a"], 1, "one");
        Assert.Equal(Floats(tmp["a"], Up), Floats(tmp["one"], Up));
        Merge(tmp, "task_arithmetic", ["a", "b"], 1, "two", new() { Weights = [0.5, 0.5] });
        var (a, b, m) = (Floats(tmp["a"], Up), Floats(tmp["b"], Up), Floats(tmp["two"], Up));
        for (int k = 0; k < m.Length; k++) Assert.True(Math.Abs((a[k] + b[k]) / 2 - m[k]) < 1e-5, $"{k}");
        Assert.Contains("method: task_arithmetic", File.ReadAllText(tmp["two/attune_merge.yml"]));
    }

    [Fact]
    public void Slerp_reaches_both_ends_follows_the_great_circle_and_falls_back_when_colinear()
    {
        using var tmp = Three();
        Merge(tmp, "slerp", ["a"], 0, "t0");
        Merge(tmp, "slerp", ["a"], 1, "t1");
        Merge(tmp, "slerp", ["a"], 0.3, "t3");
        var (b, a) = (Floats(tmp["base"], Up), Floats(tmp["a"], Up));
        Assert.Equal(b, Floats(tmp["t0"], Up).Select(x => x).ToArray(), new FloatNear(1e-6f));
        Assert.Equal(a, Floats(tmp["t1"], Up), new FloatNear(1e-6f));
        double dot = 0, nb = 0, na = 0;
        for (int k = 0; k < b.Length; k++) { dot += (double)b[k] * a[k]; nb += (double)b[k] * b[k]; na += (double)a[k] * a[k]; }
        double theta = Math.Acos(dot / Math.Sqrt(nb * na));
        var m = Floats(tmp["t3"], Up);
        for (int k = 0; k < b.Length; k++)
            Assert.True(Math.Abs(Math.Sin(0.7 * theta) / Math.Sin(theta) * b[k] + Math.Sin(0.3 * theta) / Math.Sin(theta) * a[k] - m[k]) < 1e-5, $"{k}");

        var s = new SlerpMethod();
        var v = new float[] { 1, 2, 3 };
        var twice = new float[] { 2, 4, 6 };
        s.BeginTensor("x", 3);
        s.Observe(0, v, [twice], 3, 0);
        var o = new float[3];
        s.Compute(v, [twice], 3, 0, 0.5, o);
        Assert.Equal(new float[] { 1.5f, 3, 4.5f }, o); // colinear: plain interpolation
    }

    [Fact]
    public void Ties_keeps_the_densest_fraction_elects_signs_and_reduces_to_task_arithmetic_at_full_density()
    {
        using var tmp = Three();
        Merge(tmp, "ties", ["a"], 1, "full", new() { Density = 1 });
        Assert.Equal(Floats(tmp["a"], Up), Floats(tmp["full"], Up), new FloatNear(1e-6f));

        var ties = new TiesMethod([1.0], 0.25, normalize: false);
        var baseChunk = new float[400];
        var model = Enumerable.Range(0, 400).Select(i => (float)(i % 2 == 0 ? i : -i) / 7).ToArray();
        ties.BeginTensor("t", 400);
        ties.Observe(0, baseChunk, [model], 400, 0);
        ties.Observe(1, baseChunk, [model], 400, 0);
        var o = new float[400];
        ties.Compute(baseChunk, [model], 400, 0, 1, o);
        Assert.Equal(100, o.Count(x => x != 0)); // exactly ⌈0.25 · 400⌉ kept
        Assert.All(o.Where(x => x != 0), x => Assert.True(MathF.Abs(x) >= 300 / 7f - 1e-4f));

        // Sign election: +3 (weight 1) and −1 (weight 1) elect +; only the agreeing +3 is kept.
        var two = new TiesMethod([1.0, 1.0], 1, normalize: false);
        two.BeginTensor("e", 1);
        var bz = new float[1];
        two.Observe(0, bz, [new float[] { 3 }, new float[] { -1 }], 1, 0);
        two.Observe(1, bz, [new float[] { 3 }, new float[] { -1 }], 1, 0);
        var r = new float[1];
        two.Compute(bz, [new float[] { 3 }, new float[] { -1 }], 1, 0, 1, r);
        Assert.Equal(3f, r[0]);
    }

    [Fact]
    public void Dare_drops_a_seeded_fraction_independent_of_chunking()
    {
        using var tmp = Three();
        Merge(tmp, "dare", ["a"], 1, "none", new() { DropRate = 0 });
        Assert.Equal(Floats(tmp["a"], Up), Floats(tmp["none"], Up), new FloatNear(1e-6f));
        Merge(tmp, "dare", ["a"], 1, "half", new() { DropRate = 0.5, Seed = 7 });
        Merge(tmp, "dare", ["a"], 1, "half-small-chunks", new() { DropRate = 0.5, Seed = 7 }, chunk: 50);
        Merge(tmp, "dare", ["a"], 1, "other-seed", new() { DropRate = 0.5, Seed = 8 });
        var b = Floats(tmp["base"], Up);
        var h = Floats(tmp["half"], Up);
        double dropped = b.Zip(h).Count(p => p.First == p.Second) / (double)b.Length;
        Assert.InRange(dropped, 0.4, 0.6);
        Assert.Equal(h, Floats(tmp["half-small-chunks"], Up));
        Assert.NotEqual(h, Floats(tmp["other-seed"], Up));
        // Kept elements are rescaled by 1/(1 − p): base + 2·(a − base).
        var a = Floats(tmp["a"], Up);
        for (int k = 0; k < b.Length; k++) if (h[k] != b[k]) Assert.True(Math.Abs(b[k] + 2 * (a[k] - b[k]) - h[k]) < 1e-5, $"{k}");
    }

    [Fact]
    public void Several_models_and_methods_work_from_the_command_line_and_a_recipe()
    {
        using var tmp = Three();
        var (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", $"{tmp["a"]}=0.7", "--instruct", $"{tmp["b"]}=0.3",
            "--method", "ties", "--density", "0.5", "--normalize", "--lambda", "1", "--out", tmp["cli"]);
        Assert.True(code == 0, err);
        File.WriteAllText(tmp["r.yml"], $"method: ties\nbase: base\nmodels:\n  - path: a\n    weight: 0.7\n  - path: b\n    weight: 0.3\ndensity: 0.5\nnormalize: true\nlambda: 1\n");
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["r.yml"], "--out", tmp["recipe"]);
        Assert.True(code == 0, err);
        Assert.Equal(Floats(tmp["cli"], Up), Floats(tmp["recipe"], Up));
        Assert.Contains("density: 0.5", File.ReadAllText(tmp["cli/attune_merge.yml"]));
        Assert.Contains("models:", File.ReadAllText(tmp["cli/attune_merge.yml"]));
        Assert.Contains("exactly one model", CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["a"], "--instruct", tmp["b"], "--lambda", "0.5", "--out", tmp["x"]).Err);
        Assert.Contains("--density", CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["a"], "--method", "ties", "--density", "0", "--lambda", "1", "--out", tmp["y"]).Err);
    }

    sealed class FloatNear(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => MathF.Abs(x - y) <= tolerance;
        public int GetHashCode(float obj) => 0;
    }
}
