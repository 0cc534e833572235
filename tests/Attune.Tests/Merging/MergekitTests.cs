using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Merging.Mergekit;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Merging;

/// <summary>mergekit's recipes read as they are, and its arithmetic reproduced.</summary>
public class MergekitTests
{
    // ---- The arithmetic, against numbers from mergekit's math -----------------------------------------------------------
    // mergekit-fixtures.json holds outputs computed once by a numpy re-implementation of mergekit's
    // merge_methods/generalized_task_arithmetic.py (get_task_vectors, sparsify, get_mask with "sum", the divisor rules),
    // merge_methods/linear.py, slerp.py, nuslerp.py, multislerp.py, model_stock.py, karcher.py, nearswap.py, sce.py, arcee_fusion.py, ram.py and sparsify.py (magnitude: int(density·n)
    // largest, argsort; magnitude_outliers), in float32
    // op by op as torch computes (sce's variance across models in double, as torch's CPU var accumulates), on the tensors below (integers over 1000, exact in both languages). Equal magnitudes are
    // ranked by index (a stable sort; torch's argsort leaves their order unspecified).

    const int N = 96;

    static float[] Synthetic(int k, int salt)
    {
        var v = new float[N];
        for (long i = 0; i < N; i++) v[i] = ((i * 2654435761L + k * 97 + salt * 13) % 2001 - 1000) / 1000f;
        return v;
    }

    static (float[] Base, float[][] Models) Tensors()
    {
        var b = Synthetic(0, 1);
        var models = Enumerable.Range(0, 3).Select(k => { var d = Synthetic(k + 1, 2); return b.Select((x, i) => x + d[i] * 0.125f).ToArray(); }).ToArray();
        return (b, models);
    }

    static float[] Run(string method, IReadOnlyList<double?> weights, IReadOnlyList<double>? densities = null, Dictionary<string, object?>? globals = null,
        bool withBase = true, double gamma = 0.01)
    {
        var (b, models) = Tensors();
        // mergekit appends an unlisted base after the models.
        return Run(method, withBase ? [.. models, b] : models, withBase ? 3 : -1, weights, densities, globals, gamma);
    }

    static float[] Run(string method, float[][] inputs, int baseIndex, IReadOnlyList<double?> weights, IReadOnlyList<double>? densities = null,
        Dictionary<string, object?>? globals = null, double gamma = 0.01, long[]? shape = null)
    {
        var m = MergekitMethod.All[method];
        var perModel = inputs.Select((_, k) => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?>
        {
            ["weight"] = weights[k], ["density"] = densities?[k] ?? 1.0, ["gamma"] = gamma, ["epsilon"] = 0.15,
        }).ToList();
        var g = m.Parameters.ToDictionary(p => p.Name, p => globals is not null && globals.TryGetValue(p.Name, out var v) ? v : p.Default);
        return m.Merge(new TensorInputs("model.layers.0.mlp.up_proj.weight", shape ?? [N], inputs, baseIndex, perModel, g, new ComputeDType(DType.F32), new Rng(1)));
    }

    /// <summary>Models that change about half of the base's values each (RAM counts which models changed an element).</summary>
    static float[][] Sparse()
    {
        var (b, m) = Tensors();
        return Enumerable.Range(0, 3).Select(k => { var gate = Synthetic(k + 5, 3); return b.Select((v, i) => gate[i] > 0 ? m[k][i] : v).ToArray(); }).ToArray();
    }

    /// <summary>Multiples of 1/8: task vectors with many equal magnitudes at the density threshold.</summary>
    static (float[] Base, float[][] Models) Quantized()
    {
        var b = Synthetic(0, 1).Select(v => MathF.Round(v * 8) / 8).ToArray();
        return (b, Enumerable.Range(0, 3).Select(k => { var d = Synthetic(k + 1, 2); return b.Select((x, i) => x + MathF.Round(d[i] * 4) / 8).ToArray(); }).ToArray());
    }

    [Theory]
    [InlineData("ties_uniform_density", false, 96)]
    [InlineData("ties_equal_magnitudes", true, 96)]
    [InlineData("ties_equal_magnitudes", true, 7)] // streamed in chunks of 7 elements
    [InlineData("task_arithmetic_normalized", false, 13)]
    public void The_streamed_flag_methods_compute_mergekits_numbers(string name, bool quantized, int chunk)
    {
        // attune merge --method ties|task_arithmetic (and Attune's own recipe) stream tensors in chunks; same numbers as mergekit.
        var expected = JsonNode.Parse(File.ReadAllText(Fixtures))![name]!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray();
        var (b, m) = quantized ? Quantized() : Tensors();
        Attune.Merging.IMergeMethod method = name.StartsWith("ties")
            ? new Attune.Merging.TiesMethod([0.7, -0.4, 0.3], 0.4, normalize: true)
            : new Attune.Merging.TaskArithmeticMethod([0.7, 0.4, 0.3], normalize: true);
        method.BeginTensor("t", N);
        for (int pass = 0; pass < method.StatisticsPasses; pass++)
            for (int at = 0; at < N; at += chunk)
            {
                int len = Math.Min(chunk, N - at);
                method.Observe(pass, b.AsSpan(at, len), m.Select(x => x[at..(at + len)]).ToList(), len, at);
            }
        var output = new float[N];
        for (int at = 0; at < N; at += chunk)
        {
            int len = Math.Min(chunk, N - at);
            method.Compute(b.AsSpan(at, len), m.Select(x => x[at..(at + len)]).ToList(), len, at, 1, output.AsSpan(at, len));
        }
        for (int i = 0; i < N; i++) Assert.True(Math.Abs(expected[i] - output[i]) <= 1e-6f, $"{name}[{i}]: mergekit {expected[i]:R}, Attune {output[i]:R}");
    }

    public static TheoryData<string> Cases => new(JsonNode.Parse(File.ReadAllText(Fixtures))!.AsObject().Select(kv => kv.Key));
    static string Fixtures => Path.Combine(Repo.Root, "tests", "Attune.Tests", "Merging", "mergekit-fixtures.json");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_method_computes_mergekits_numbers(string name)
    {
        var expected = JsonNode.Parse(File.ReadAllText(Fixtures))![name]!.AsArray().Select(v => (float)v!.GetValue<double>()).ToArray();
        var (b, m) = Tensors();
        var actual = name switch
        {
            "linear" => Run("linear", [0.5, 0.3, -0.2, 0.4]),
            "linear_unnormalized" => Run("linear", [0.5, 0.3, 0.25], globals: new() { ["normalize"] = false }, withBase: false),
            "task_arithmetic" => Run("task_arithmetic", [0.7, -0.4, 0.3, null], globals: new() { ["lambda"] = 0.8 }),
            "task_arithmetic_normalized" => Run("task_arithmetic", [0.7, 0.4, 0.3, null], globals: new() { ["normalize"] = true }),
            "ties" => Run("ties", [0.7, -0.4, 0.3, null], [0.5, 0.3, 0.7, 1]), // mergekit's defaults: normalize true
            "ties_unnormalized_lambda" => Run("ties", [1.0, 0.5, 0.5, null], [0.25, 0.6, 0.9, 1], new() { ["normalize"] = false, ["lambda"] = 0.6 }),
            "breadcrumbs" => Run("breadcrumbs", [0.6, 0.5, 0.4, null], [0.7, 0.8, 0.5, 1], gamma: 0.05),
            "breadcrumbs_ties" => Run("breadcrumbs_ties", [0.6, -0.5, 0.4, null], [0.7, 0.8, 0.5, 1], gamma: 0.05),
            "model_stock" => Run("model_stock", [.. m, b], 3, [null, null, null, null]),
            "nuslerp_base" => Run("nuslerp", [m[0], m[1], b], 2, [0.3, 0.9, null]),
            "nuslerp" => Run("nuslerp", [m[0], m[1]], -1, [0.3, 0.9]),
            "multislerp" => Run("multislerp", m, -1, [0.5, 0.3, 0.2]),
            "multislerp_base" => Run("multislerp", [.. m, b], 3, [0.5, 0.3, 0.2, null]),
            "slerp" => Run("slerp", [b, m[0]], 0, [null, null], globals: new() { ["t"] = 0.35 }),
            "ties_uniform_density" => Run("ties", [0.7, -0.4, 0.3, null], [0.4, 0.4, 0.4, 1]),
            "ties_equal_magnitudes" => Run("ties", [.. Quantized().Models, Quantized().Base], 3, [0.7, -0.4, 0.3, null], [0.4, 0.4, 0.4, 1]),
            "karcher" => Run("karcher", [.. m, b], -1, [null, null, null, null]),
            "nearswap" => Run("nearswap", [b, m[0]], 0, [null, null], globals: new() { ["t"] = 0.05 }),
            "sce" => Run("sce", [.. m, b], 3, [null, null, null, null]),
            "sce_topk" => Run("sce", [.. m, b], 3, [null, null, null, null], globals: new() { ["select_topk"] = 0.4 }),
            "arcee_fusion" => Run("arcee_fusion", [b, m[0]], 0, [null, null], shape: [8, 12]),
            "ram" => Run("ram", [.. Sparse(), b], 3, [null, null, null, null]),
            "ramplus_tl" => Run("ramplus_tl", [.. Sparse(), b], 3, [null, null, null, null]),
            "ties_float16" => Run16("ties", [0.7, -0.4, 0.3, null], [0.5, 0.3, 0.7, 1]),
            "task_arithmetic_float16" => Run16("task_arithmetic", [0.7, -0.4, 0.3, null], [1, 1, 1, 1], new() { ["lambda"] = 0.8 }),
            "breadcrumbs_equal_magnitudes" => Run("breadcrumbs", [.. Quantized().Models, Quantized().Base], 3, [0.6, -0.5, 0.4, null], [0.7, 0.5, 0.6, 1], gamma: 0.1),
            _ => throw new InvalidOperationException(name),
        };
        // f32: within 1e-6 of values of scale 1; float16: within one half-precision ulp.
        for (int i = 0; i < N; i++)
        {
            float tolerance = name.EndsWith("float16") ? Ulp16(expected[i]) : 1e-6f;
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{name}[{i}]: mergekit {expected[i]:R}, Attune {actual[i]:R}");
        }
    }

    static float Ulp16(float x) => (float)BitConverter.UInt16BitsToHalf((ushort)(BitConverter.HalfToUInt16Bits((Half)Math.Abs(x)) + 1)) - (float)(Half)Math.Abs(x);

    /// <summary>A method in float16 compute (a recipe's dtype: float16): inputs cast to half, each step rounded to half.</summary>
    static float[] Run16(string method, IReadOnlyList<double?> weights, IReadOnlyList<double> densities, Dictionary<string, object?>? globals = null)
    {
        var (b, models) = Tensors();
        var half = new ComputeDType(DType.F16);
        var inputs = models.Append(b).Select(t => { var c = t.ToArray(); half.Round(c); return c; }).ToArray();
        var m = MergekitMethod.All[method];
        var perModel = inputs.Select((_, k) => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { ["weight"] = weights[k], ["density"] = densities[k] }).ToList();
        var g = m.Parameters.ToDictionary(p => p.Name, p => globals is not null && globals.TryGetValue(p.Name, out var v) ? v : p.Default);
        return m.Merge(new TensorInputs("t", [N], inputs, 3, perModel, g, half, new Rng(1)));
    }

    [Fact]
    public void The_random_methods_keep_mergekits_fraction_and_L1_norm_and_repeat_with_a_seed()
    {
        var (b, models) = Tensors();
        var big = Enumerable.Range(0, 20000).Select(i => (float)Math.Sin(i * 0.7)).ToArray();
        var zero = new float[big.Length];
        foreach (var method in new[] { "dare_linear", "della_linear" })
        {
            var m = MergekitMethod.All[method];
            // Copies: a method may overwrite its inputs' arrays.
            float[] Once(ulong seed, bool rescale) => m.Merge(new TensorInputs("t", [big.Length], [big.ToArray(), zero.ToArray()], 1,
                [new Dictionary<string, object?> { ["weight"] = 1.0, ["density"] = 0.3, ["epsilon"] = 0.1 }, new Dictionary<string, object?> { ["weight"] = null, ["density"] = 1.0, ["epsilon"] = 0.1 }],
                m.Parameters.ToDictionary(p => p.Name, p => p.Name == "rescale" ? rescale : p.Default), new ComputeDType(DType.F32), new Rng(seed)));
            var kept = Once(7, rescale: false);
            Assert.Equal(kept, Once(7, rescale: false)); // the same seed, the same values
            Assert.NotEqual(kept, Once(8, rescale: false));
            double fraction = kept.Count(v => v != 0) / (double)kept.Length;
            Assert.InRange(fraction, 0.28, 0.32); // density 0.3 (DELLA: on average over the ranks)
            Assert.All(kept.Select((v, i) => (v, i)).Where(x => x.v != 0), x => Assert.Equal(big[x.i], x.v)); // kept values unchanged without rescale
            var rescaled = Once(7, rescale: true); // mergekit's rescale: the kept values scaled to the task vector's L1 norm
            Assert.Equal(big.Sum(v => Math.Abs((double)v)), rescaled.Sum(v => Math.Abs((double)v)), 1e-2);
        }
        // DELLA keeps large magnitudes more often than small ones.
        var della = MergekitMethod.All["della_linear"].Merge(new TensorInputs("t", [big.Length], [big.ToArray(), zero], 1,
            [new Dictionary<string, object?> { ["weight"] = 1.0, ["density"] = 0.5, ["epsilon"] = 0.4 }, new Dictionary<string, object?> { ["weight"] = null, ["density"] = 1.0, ["epsilon"] = 0.4 }],
            MergekitMethod.All["della_linear"].Parameters.ToDictionary(p => p.Name, p => p.Name == "rescale" ? false : p.Default), new ComputeDType(DType.F32), new Rng(3)));
        var bySize = big.Select((v, i) => (Math.Abs(v), della[i] != 0)).OrderBy(x => x.Item1).ToList();
        Assert.True(bySize.Take(4000).Count(x => x.Item2) < bySize.TakeLast(4000).Count(x => x.Item2) - 1500);
    }

    // ---- Recipes as mergekit users write them ------------------------------------------------------------------------

    const int Layers = 5;

    /// <summary>A tiny base and fine-tune-like siblings: the base plus small noise on every tensor, norms included.</summary>
    static TempDir Family()
    {
        var tmp = new TempDir();
        TinyModels.Write(tmp["base"], TinyModels.LlamaConfig.Replace("\"num_hidden_layers\": 2", $"\"num_hidden_layers\": {Layers}"), DType.F32, seed: 1);
        foreach (var (name, seed) in new[] { ("a", 2), ("b", 3) })
            using (var b = Checkpoint.Open(tmp["base"]))
                CheckpointWriter.Write(tmp[name], folder =>
                {
                    b.CopyConfigTo(folder, null);
                    b.CopyTokenizerFilesTo(folder);
                    var rng = new Rng((ulong)seed);
                    using var w = folder.Weights(b.Weights.Names.Select(n => new TensorSpec(n, DType.F32, b.Weights.Entry(n).Shape.ToArray())).ToList());
                    foreach (var n in b.Weights.Names) w.Write(n, DTypes.FromSingle(DType.F32, Floats(tmp["base"], n).Select(v => v + (float)(rng.NextGaussian() * 0.02)).ToArray()));
                    w.Commit();
                });
        return tmp;
    }

    static float[] Floats(string dir, string name) => WeightValues.Of(dir, name);

    static (int Code, string Err) Merge(TempDir tmp, string recipe, string output = "out")
    {
        File.WriteAllText(tmp["recipe.yml"], recipe);
        var (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["recipe.yml"], "--out", tmp[output]);
        return (code, err);
    }

    [Fact]
    public void A_task_arithmetic_recipe_with_gradients_and_filters_is_evaluated_per_layer_as_mergekit_does()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, """
            merge_method: task_arithmetic
            base_model: base
            models:
              - model: a
                parameters:
                  weight: [0, 1]            # a gradient over the layers
              - model: b
                parameters:
                  weight:
                    - filter: self_attn
                      value: 0.5
                    - value: -0.25
            parameters:
              lambda: 0.8
            dtype: float32
            """);
        Assert.True(code == 0, err);
        foreach (var name in WeightValues.Names(tmp["base"]))
        {
            // t = layer/(layers − 1) in a layer; 0 for the embeddings and the final norm (and head).
            double t = name.StartsWith("model.layers.") ? int.Parse(name.Split('.')[2]) / (double)(Layers - 1) : 0;
            float wa = (float)t, wb = name.Contains("self_attn") ? 0.5f : -0.25f;
            var (b, a, bb, o) = (Floats(tmp["base"], name), Floats(tmp["a"], name), Floats(tmp["b"], name), Floats(tmp["out"], name));
            for (int i = 0; i < b.Length; i++)
            {
                float mixed = (a[i] - b[i]) * wa + (bb[i] - b[i]) * wb;
                Assert.Equal(b[i] + mixed * 0.8f, o[i], 1e-6f);
            }
        }
        Assert.Equal(File.ReadAllText(tmp["recipe.yml"]), File.ReadAllText(Path.Combine(tmp["out"], "mergekit_config.yml")));
        Assert.Equal(3, System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(Path.Combine(tmp["out"], "attune_merge.yml")), "sha256: [0-9a-f]{64}").Count);
    }


    [Fact]
    public void Slices_stack_layers_from_several_models_with_passthrough()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, """
            slices:
              - sources:
                  - model: a
                    layer_range: [0, 3]
              - sources:
                  - model: b
                    layer_range: [2, 5]
            merge_method: passthrough
            """);
        Assert.True(code == 0, err);
        using var outModel = Checkpoint.Open(tmp["out"]);
        Assert.Equal(6, outModel.Config.NumLayers);
        Assert.Equal(Floats(tmp["a"], "model.layers.2.mlp.up_proj.weight"), Floats(tmp["out"], "model.layers.2.mlp.up_proj.weight"));
        Assert.Equal(Floats(tmp["b"], "model.layers.2.mlp.up_proj.weight"), Floats(tmp["out"], "model.layers.3.mlp.up_proj.weight"));
        Assert.Equal(Floats(tmp["b"], "model.layers.4.self_attn.q_proj.weight"), Floats(tmp["out"], "model.layers.5.self_attn.q_proj.weight"));
        Assert.Equal(Floats(tmp["a"], "model.embed_tokens.weight"), Floats(tmp["out"], "model.embed_tokens.weight")); // the first slice's
        Assert.Equal(Floats(tmp["b"], "model.norm.weight"), Floats(tmp["out"], "model.norm.weight")); // the last slice's
    }

    [Fact]
    public void A_slice_of_a_gemma3_keeps_each_layers_local_or_global_attention()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["g"], Modeling.TransformerTests.Gemma3, DType.F32, seed: 4); // layers: local, global, local
        var (code, err) = Merge(tmp, """
            slices:
              - sources:
                  - model: g
                    layer_range: [1, 3]
            merge_method: passthrough
            """);
        Assert.True(code == 0, err);
        using var outModel = Checkpoint.Open(tmp["out"]);
        Assert.Equal(2, outModel.Config.NumLayers);
        Assert.Equal([null, 4], Enumerable.Range(0, 2).Select(outModel.Config.WindowOf));
    }

    [Fact]
    public void A_linear_recipe_over_three_models_weights_each_and_normalizes_by_default()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, """
            models:
              - model: base
                parameters: {weight: 1.0}
              - model: a
                parameters: {weight: 0.3}
              - model: b
                parameters: {weight: 0.5}
            merge_method: linear
            dtype: float16
            """);
        Assert.True(code == 0, err);
        using var c = Checkpoint.Open(tmp["out"]);
        Assert.Equal(DType.F16, c.Weights.Entry("model.norm.weight").DType); // the compute dtype, when out_dtype is not given
        const string name = "model.layers.1.mlp.down_proj.weight";
        var (b, a, bb, o) = (Floats(tmp["base"], name), Floats(tmp["a"], name), Floats(tmp["b"], name), Floats(tmp["out"], name));
        for (int i = 0; i < b.Length; i++)
        {
            float H(float x) => (float)(Half)x; // torch in float16: inputs cast, each operation rounded
            float sum = H(H(H(1f) * H(b[i])) + H(H(0.3f) * H(a[i])) + H(H(0.5f) * H(bb[i])));
            Assert.Equal(H(sum / H(1f + H(0.3f) + H(0.5f))), o[i]);
        }
    }

    [Fact]
    public void A_ties_recipe_in_mergekits_words_runs_and_a_parameter_it_ignores_is_a_warning()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, """
            models:
              - model: a
                parameters:
                  density: [1, 0.7, 0.1]
                  weight: 1.0
              - model: b
                parameters:
                  density: 0.5
                  weight: [0, 0.3, 0.7, 1]
            merge_method: ties
            base_model: base
            parameters:
              normalize: true
              int8_mask: true
              t: 0.5
            dtype: float32
            out_dtype: bfloat16
            """);
        Assert.True(code == 0, err);
        Assert.Contains("parameter t is not one ties uses", err);
        using var c = Checkpoint.Open(tmp["out"]);
        Assert.Equal(DType.BF16, c.Weights.Entry("model.layers.0.mlp.up_proj.weight").DType);
    }

    [Fact]
    public void Lambdas_set_the_strength_of_a_mergekit_recipe_one_folder_each()
    {
        using var tmp = Family();
        File.WriteAllText(tmp["ties.yml"], """
            merge_method: ties
            base_model: base
            models:
              - model: a
                parameters: {weight: 1.0, density: 0.6}
            """);
        var (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["ties.yml"], "--lambdas", "0,0.5,1", "--out", tmp["sweep"]);
        Assert.True(code == 0, err);
        const string name = "model.layers.3.self_attn.o_proj.weight";
        var (b, half, full) = (Floats(tmp["base"], name), Floats(Path.Combine(tmp["sweep"], "lambda-0.50"), name), Floats(Path.Combine(tmp["sweep"], "lambda-1.00"), name));
        Assert.Equal(b, Floats(Path.Combine(tmp["sweep"], "lambda-0.00"), name)); // λ scales the merged task vectors: 0 is the base
        for (int i = 0; i < b.Length; i++) Assert.Equal(b[i] + (full[i] - b[i]) * 0.5f, half[i], 1e-6f);
        // slerp's strength is t: 1 is the other model.
        File.WriteAllText(tmp["slerp.yml"], "merge_method: slerp\nbase_model: base\nmodels:\n  - model: base\n  - model: a\nparameters:\n  t: 0.2\n");
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["slerp.yml"], "--lambda", "1", "--out", tmp["slerp1"]);
        Assert.True(code == 0, err);
        var a = Floats(tmp["a"], name);
        Assert.All(Floats(tmp["slerp1"], name).Zip(a), p => Assert.Equal(p.Second, p.First, 1e-5f));
        // A method without a strength refuses.
        File.WriteAllText(tmp["pass.yml"], "merge_method: passthrough\nmodels:\n  - model: a\n");
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["pass.yml"], "--lambdas", "0,1", "--out", tmp["none"]);
        Assert.Equal(2, code);
        Assert.Contains("no strength", err);
    }

    /// <summary>
    /// A base with the Llama 2 tokenizer (32000 tokens) and a sibling that adds one special token (and its embedding and
    /// head rows): tokenizer_source union gives 32001 tokens, the new token's rows come from the one model that has it.
    /// </summary>
    [Fact]
    public void A_union_tokenizer_adds_the_other_models_tokens_with_mergekits_embedding_fallbacks()
    {
        using var tmp = new TempDir();
        var config = TinyModels.LlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 32000");
        TinyModels.Write(tmp["base"], config, DType.F32, seed: 1);
        var npm = Repo.NpmTokenizer("llama2");
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(npm, f), Path.Combine(tmp["base"], f));
        using (var b = Checkpoint.Open(tmp["base"]))
            CheckpointWriter.Write(tmp["extra"], folder =>
            {
                var json = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp["base"], "config.json")))!.AsObject();
                json["vocab_size"] = 32001;
                folder.Config(json, null);
                var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(npm, "tokenizer.json")))!.AsObject();
                tokenizer["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = 32000, ["content"] = "<|extra|>", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true });
                folder.Json("tokenizer.json", tokenizer, indented: false);
                var specs = b.Weights.Names.Select(n => new TensorSpec(n, DType.F32, b.Weights.Entry(n).Shape.Select((d, i) => i == 0 && MergekitTokenizer.IsVocabularyTensor(n) ? d + 1 : d).ToArray())).ToList();
                using var w = folder.Weights(specs);
                foreach (var spec in specs)
                {
                    var values = Floats(tmp["base"], spec.Name).Select(v => v + 0.01f).ToList();
                    if (MergekitTokenizer.IsVocabularyTensor(spec.Name)) values.AddRange(Enumerable.Repeat(7f, (int)spec.Shape[1]));
                    w.Write(spec.Name, DTypes.FromSingle(DType.F32, values.ToArray()));
                }
                w.Commit();
            });
        File.WriteAllText(tmp["union.yml"], "merge_method: linear\nbase_model: base\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n  - model: extra\n    parameters: {weight: 0.5}\ntokenizer_source: union\n");
        var (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["union.yml"], "--out", tmp["out"]);
        Assert.True(code == 0, err);
        using var merged = Checkpoint.Open(tmp["out"]);
        Assert.Equal(32001, merged.Config.VocabSize);
        var embed = Floats(tmp["out"], "model.embed_tokens.weight");
        Assert.Equal(32001 * 16, embed.Length);
        Assert.All(embed[(32000 * 16)..], v => Assert.Equal(7f, v)); // only the sibling has the token: its row stands in for the base's
        var (b0, e0) = (Floats(tmp["base"], "model.embed_tokens.weight"), Floats(tmp["extra"], "model.embed_tokens.weight"));
        for (int i = 0; i < 32000 * 16; i += 997) Assert.Equal(0.5f * b0[i] + 0.5f * e0[i], embed[i], 1e-6f); // shared tokens: the method's mix
        var tok = Attune.Text.Tokenizer.Load(Path.Combine(tmp["out"], "tokenizer.json"));
        Assert.Equal([32000], tok.Encode("<|extra|>", addSpecialTokens: false));
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(Path.Combine(tmp["out"], "tokenizer_config.json")))!["added_tokens_decoder"]!["32000"]);
        // tokenizer_source: base keeps the base's 32000 tokens, each model's rows taken by token.
        File.WriteAllText(tmp["base.yml"], File.ReadAllText(tmp["union.yml"]).Replace("union", "base"));
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["base.yml"], "--out", tmp["out-base"]);
        Assert.True(code == 0, err);
        Assert.Equal(embed[..(32000 * 16)], Floats(tmp["out-base"], "model.embed_tokens.weight"));
        // tokenizer.tokens: a new token from another token's row, a token forced from one model; pad_to_multiple_of.
        File.WriteAllText(tmp["tokens.yml"], File.ReadAllText(tmp["union.yml"]).Replace("tokenizer_source: union\n", """
            tokenizer:
              source: base
              tokens:
                <|new|>:
                  source:
                    kind: model_token
                    model: extra
                    token: <|extra|>
                <s>:
                  source: extra
                  force: true
              pad_to_multiple_of: 64

            """));
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["tokens.yml"], "--out", tmp["out-tokens"]);
        Assert.True(code == 0, err);
        using (var padded = Checkpoint.Open(tmp["out-tokens"])) Assert.Equal(32064, padded.Config.VocabSize);
        var rows = Floats(tmp["out-tokens"], "model.embed_tokens.weight");
        Assert.Equal(32064 * 16, rows.Length);
        Assert.All(rows[(32000 * 16)..(32001 * 16)], v => Assert.Equal(7f, v)); // <|new|> from extra's <|extra|> row, in both models
        Assert.Equal(e0[16..32], rows[16..32]); // <s> (id 1) forced from extra in both: the mix of one row with itself
        // A plain added token (normalized, as add_tokens adds one): Llama 2's normalizer still prefixes "▁" before it.
        Assert.Equal(32000, Attune.Text.Tokenizer.Load(Path.Combine(tmp["out-tokens"], "tokenizer.json")).Encode("<|new|>", addSpecialTokens: false)[^1]);
        var meanFirst = Enumerable.Range(0, 32001).Average(r => (double)rows[r * 16]);
        Assert.Equal(meanFirst, rows[32063 * 16], 1e-5); // a padding row: the mean of the real rows
    }

    /// <summary>One recipe per method, written as mergekit's documentation describes each (models, base, the parameters it takes).</summary>
    public static TheoryData<string> MethodRecipes => new(MergekitMethod.All.Keys.Order());

    [Theory]
    [MemberData(nameof(MethodRecipes))]
    public void Every_method_runs_from_a_recipe_in_mergekits_format(string method)
    {
        using var tmp = Family();
        string models(string parameters) => $"models:\n  - model: a\n    parameters: {{{parameters}}}\n  - model: b\n    parameters: {{{parameters}}}\n";
        var body = method switch
        {
            "linear" or "multislerp" or "nuslerp" => models("weight: 0.5"),
            "passthrough" => "models:\n  - model: a\n",
            "slerp" or "nearswap" => "models:\n  - model: base\n  - model: a\nbase_model: base\nparameters:\n  t: 0.3\n",
            "arcee_fusion" => "models:\n  - model: base\n  - model: a\nbase_model: base\n",
            "karcher" => "models:\n  - model: a\n  - model: b\n  - model: base\n",
            "model_stock" or "sce" or "ram" or "ramplus_tl" => "models:\n  - model: a\n  - model: b\nbase_model: base\n",
            _ => models("weight: 0.5, density: 0.5") + "base_model: base\n",
        };
        var (code, err) = Merge(tmp, $"merge_method: {method}\n{body}dtype: float32\n");
        Assert.True(code == 0, $"{method}: {err}");
        Assert.DoesNotContain("warning", err);
        using var merged = Checkpoint.Open(tmp["out"]);
        foreach (var name in merged.Weights.Names) Assert.All(Floats(tmp["out"], name), v => Assert.True(float.IsFinite(v), $"{method}: {name}"));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("ties")]
    [InlineData("task_arithmetic")]
    public void A_flag_merge_writes_the_mergekit_recipe_that_reproduces_it(string method)
    {
        using var tmp = Family();
        string[] models = method == "linear" ? ["--instruct", tmp["a"]] : ["--instruct", tmp["a"] + "=0.7", "--instruct", tmp["b"] + "=0.4"];
        string[] extra = method == "ties" ? ["--density", "0.5"] : [];
        var (code, _, err) = CliRunner.Run("", ["merge", "--base", tmp["base"], .. models, "--method", method, .. extra, "--lambda", "0.6",
            "--rule", "self_attn=0.2,0.8", "--out", tmp["flags"]]);
        Assert.True(code == 0, err);
        var recipe = Path.Combine(tmp["flags"], "mergekit_config.yml");
        Assert.True(File.Exists(recipe));
        (code, _, err) = CliRunner.Run("", "merge", "--recipe", recipe, "--out", tmp["again"]);
        Assert.True(code == 0, err);
        foreach (var name in WeightValues.Names(tmp["base"]))
        {
            var (a, b) = (Floats(tmp["flags"], name), Floats(tmp["again"], name));
            for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6f * Math.Max(1, Math.Abs(a[i])), $"{method} {name}[{i}]: {a[i]} vs {b[i]}");
        }
    }

    [Fact]
    public void A_rule_that_fixes_lambda_gives_the_same_ties_tensor_in_every_output_of_a_sweep()
    {
        // The elements kept at the density threshold are chosen once per chunk, not once per output: two outputs whose λ
        // a rule makes equal for a tensor hold the same values there.
        using var tmp = Family();
        var (code, _, err) = CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["a"], "--instruct", tmp["b"], "--method", "ties", "--density", "0.5",
            "--lambdas", "0.5,1", "--rule", "mlp=0.3", "--out", tmp["sweep"]);
        Assert.True(code == 0, err);
        const string name = "model.layers.2.mlp.up_proj.weight";
        Assert.Equal(Floats(Path.Combine(tmp["sweep"], "lambda-0.50"), name), Floats(Path.Combine(tmp["sweep"], "lambda-1.00"), name));
    }

    [Fact]
    public void A_models_own_parameters_are_evaluated_on_its_source_layers_names()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, """
            slices:
              - sources:
                  - model: a
                    layer_range: [3, 5]
                    parameters:
                      scale:
                        - filter: layers.3.
                          value: 2.0
                        - value: 1.0
            merge_method: passthrough
            """);
        Assert.True(code == 0, err);
        const string suffix = "mlp.up_proj.weight";
        Assert.Equal(Floats(tmp["a"], $"model.layers.3.{suffix}").Select(v => v * 2f), Floats(tmp["out"], $"model.layers.0.{suffix}")); // source layer 3
        Assert.Equal(Floats(tmp["a"], $"model.layers.4.{suffix}"), Floats(tmp["out"], $"model.layers.1.{suffix}"));
    }

    [Fact]
    public void Bad_recipes_get_one_line_naming_the_field()
    {
        using var tmp = Family();
        var (code, err) = Merge(tmp, "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {density: 0.5}\nweights: 1\n");
        Assert.Equal(2, code);
        Assert.Contains("line 6: weights", err);
        (code, err) = Merge(tmp, "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {density: 0.5}\n");
        Assert.Equal(2, code);
        Assert.Contains("weight", err);
        Assert.Contains("model.embed_tokens.weight", err); // the first tensor that needs it
        (code, err) = Merge(tmp, "merge_method: frankenmerge\nmodels:\n  - model: a\n");
        Assert.Equal(2, code);
        Assert.Contains("is not one of", err);
        (code, err) = Merge(tmp, "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\ntokenizer:\n  source: union\n  tokens:\n    <x>:\n      source: {kind: rainbow}\n");
        Assert.Equal(2, code);
        Assert.Contains("line 9: kind", err);
        Assert.Contains("not zero or model_token", err);
        (code, err) = Merge(tmp, "merge_method: slerp\nmodels:\n  - model: a\n  - model: b\nparameters:\n  t: 0.5\n");
        Assert.Equal(2, code);
        Assert.Contains("base_model", err);
        (code, err) = Merge(tmp, "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\ntokenizer_source: elsewhere\n");
        Assert.Equal(2, code);
        Assert.Contains("not one of the recipe's models", err);
        (code, err) = Merge(tmp, "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: heavy}\n");
        Assert.Equal(2, code);
        Assert.Contains("not a number", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}

public class MergekitChatTemplateTests
{
    static string Render(string name, bool generation = true) =>
        new Attune.Text.Templates.ChatTemplate(NamedChatTemplates.All[name], new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" })
            .Render([new JsonObject { ["role"] = "system", ["content"] = "Be brief." }, new JsonObject { ["role"] = "user", ["content"] = "Hi" },
                new JsonObject { ["role"] = "assistant", ["content"] = "Hello." }, new JsonObject { ["role"] = "user", ["content"] = "Bye" }], generation).Text;

    [Fact]
    public void The_named_chat_formats_render_their_standard_layouts()
    {
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n", Render("chatml"));
        Assert.Equal("<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", Render("llama3"));
        Assert.Equal("Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello.</s>\n\n### Instruction:\nBye\n\n### Response:\n", Render("alpaca"));
        Assert.Equal("<s>[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] Bye [/INST]", Render("mistral"));
        Assert.Equal("[|system|]Be brief.[|endofturn|]\n[|user|]Hi\n[|assistant|]Hello.[|endofturn|]\n[|user|]Bye\n[|assistant|]", Render("exaone"));
    }

    [Fact]
    public void A_recipe_naming_a_chat_format_writes_it_into_the_merged_tokenizer_config()
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp["a"], TinyModels.LlamaConfig, DType.F32, seed: 1);
        File.WriteAllText(tmp["r.yml"], "merge_method: passthrough\nmodels:\n  - model: a\nchat_template: chatml\n");
        var (code, _, err) = CliRunner.Run("", "merge", "--recipe", tmp["r.yml"], "--out", tmp["out"]);
        Assert.True(code == 0, err);
        Assert.Equal(NamedChatTemplates.All["chatml"], JsonNode.Parse(File.ReadAllText(tmp["out/tokenizer_config.json"]))!["chat_template"]!.GetValue<string>());
    }
}
