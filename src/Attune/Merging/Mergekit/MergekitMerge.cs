using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Models;
using Attune.Tensors;

namespace Attune.Merging.Mergekit;

/// <summary>
/// Runs a mergekit recipe as mergekit plans it: the output is the slices' layers in order (a <c>models:</c> recipe is
/// one slice over every layer), with the embeddings taken through the first slice and the final norm and head through
/// the last, at depth t = 0; a layer's tensors are merged at t = index/(layers − 1) within its slice (t = 1 for a
/// one-layer slice). Every parameter is looked up as mergekit does — the model's own in its source, then the slice's,
/// then the recipe's — and evaluated for the tensor's name and t. Inputs are cast to the compute <c>dtype</c> before
/// merging; the output is written in <c>out_dtype</c> (else the compute dtype, else the inputs'), one tensor at a time
/// (memory bounded by the largest tensor's inputs and output in f32), into a folder that appears only when complete, with the
/// recipe as given (<c>mergekit_config.yml</c>).
/// </summary>
public static class MergekitMerge
{
    public sealed record Options
    {
        /// <summary>Seeds the random methods (DARE, DELLA): the same seed gives the same bytes.</summary>
        public ulong Seed { get; init; }
        public long MaxShardBytes { get; init; } = ShardedSafeTensorsWriter.DefaultMaxShardBytes;
        /// <summary>The merge's strength set from outside the recipe (<c>attune merge --lambdas</c>): see <see cref="StrengthParameters"/>.</summary>
        public double? Strength { get; init; }
    }

    /// <summary>
    /// What a strength λ sets, per method, above every level of the recipe: the <c>lambda</c> that scales the summed task
    /// vectors (task_arithmetic, ties, dare_*, breadcrumbs*, della*), slerp's <c>t</c>, and for linear (the base and one
    /// model) and nuslerp without a base (two models) the weights 1 − λ and λ — so λ = 0 is the base (first model) and
    /// λ = 1 the other. Methods without a strength (passthrough, model_stock, multislerp) refuse.
    /// </summary>
    public static (Dictionary<string, object?> Globals, Dictionary<string, double> Weights) StrengthParameters(MergekitRecipe recipe, double lambda)
    {
        var sources = recipe.Slices.SelectMany(s => s.Sources).Select(x => x.Model).Distinct().ToList();
        switch (recipe.Method)
        {
            case "slerp":
                return (new() { ["t"] = lambda }, []);
            case "linear" when recipe.BaseModel is { } b && sources.Count == 2 && sources.Contains(b):
                return ([], new() { [b] = 1 - lambda, [sources.Single(x => x != b)] = lambda });
            case "nuslerp" when recipe.BaseModel is null && sources.Count == 2:
                return ([], new() { [sources[0]] = 1 - lambda, [sources[1]] = lambda });
            case var m when MergekitMethod.All.TryGetValue(m, out var method) && method is TaskArithmeticFamily:
                return (new() { ["lambda"] = lambda }, []);
            default:
                throw new AttuneException(recipe.Path, "--lambdas", $"{recipe.Method} has no strength λ sets (task-vector methods take lambda, slerp t; linear needs the base and one model, nuslerp two models without a base)");
        }
    }

    /// <summary>One output tensor: where its inputs come from and at what depth.</summary>
    sealed record Planned(string Name, IReadOnlyList<(int Model, string Tensor)> Inputs, int BaseIndex, double T, OutputSlice Slice, IReadOnlyList<SliceSource> Sources);

    /// <summary>
    /// One merge per λ of <paramref name="lambdas"/> (the method's strength, <see cref="StrengthParameters"/>), each in
    /// <c>OUT/lambda-0.50</c>-style folders; a method without a strength is refused before anything is read.
    /// </summary>
    public static void Run(MergekitRecipe recipe, string outDir, IReadOnlyList<Lambda> lambdas, Options options, TextWriter? log = null)
    {
        foreach (var l in lambdas) StrengthParameters(recipe, l.Value);
        foreach (var l in lambdas) Run(recipe, Path.Combine(outDir, l.Name), options with { Strength = l.Value }, log);
    }

    public static void Run(MergekitRecipe recipe, string outDir, Options options, TextWriter? log = null)
    {
        var method = MergekitMethod.All.TryGetValue(recipe.Method, out var m) ? m
            : throw new AttuneException(recipe.Path, "merge_method", $"\"{recipe.Method}\" is not one of {string.Join(", ", MergekitMethod.All.Keys.Order())}");
        DType? compute = recipe.DType is { } d ? DTypes.ParseFloat(d, "dtype", recipe.Path) : null;
        DType? output = recipe.OutDType is { } o ? DTypes.ParseFloat(o, "out_dtype", recipe.Path) : null;
        WarnUnused(recipe, method, log);
        if (options.Strength is { } strength) StrengthParameters(recipe, strength); // refuses a method without one before anything is read

        // Every model the recipe names, opened once.
        var names = recipe.Slices.SelectMany(s => s.Sources.Select(x => x.Model).Append(s.BaseModel)).Append(recipe.BaseModel)
            .Where(n => n is not null).Select(n => n!).Distinct().ToList();
        var checkpoints = new List<Checkpoint>();
        try
        {
            foreach (var name in names) checkpoints.Add(Checkpoint.Open(ModelReference.Parse(name, "model").CheckpointFolder("model")));
            int Index(string name) => names.IndexOf(name);
            var reference = checkpoints[Index(recipe.BaseModel ?? recipe.Slices[0].Sources[0].Model)];
            var plan = Plan(recipe, names, checkpoints, reference, method);
            // With a tokenizer source, the embeddings and head are laid out in the output vocabulary (mergekit's permutations).
            var tokenizer = recipe.TokenizerSource is { } source
                ? MergekitTokenizer.Build(source, names, checkpoints, Index(recipe.BaseModel ?? recipe.Slices[0].Sources[0].Model), recipe.Tokens, recipe.PadToMultipleOf) : null;

            CheckpointWriter.Write(outDir, folder =>
            {
                var specs = plan.Select(p =>
                {
                    var entry = checkpoints[p.Inputs[0].Model].Weights.Entry(p.Inputs[0].Tensor);
                    var shape = entry.Shape.ToArray();
                    if (tokenizer is not null && MergekitTokenizer.IsVocabularyTensor(p.Name)) shape[0] = tokenizer.Rows;
                    return new TensorSpec(p.Name, output ?? compute ?? entry.DType, shape);
                }).ToList();
                var config = JsonNode.Parse(Utf8Input.ReadAllText(Path.Combine(reference.Directory, Checkpoint.ConfigFileName)))!.AsObject();
                if (tokenizer is not null) config["vocab_size"] = tokenizer.Rows;
                var layerPlan = plan.Where(p => p.Name.StartsWith("model.layers.", StringComparison.Ordinal)).ToList();
                config["num_hidden_layers"] = layerPlan.Select(p => LayerOf(p.Name)).Distinct().Count();
                // Each output layer attends as its source layer did (a slice may drop or reorder local and global layers).
                if (reference.Config.SlidingLayers is { } sliding)
                    config["layer_types"] = new JsonArray(layerPlan.GroupBy(p => LayerOf(p.Name)).OrderBy(g => g.Key)
                        .Select(g => (JsonNode)JsonValue.Create(sliding[LayerOf(g.First().Inputs[0].Tensor)] ? "sliding_attention" : "full_attention")!).ToArray());
                var dtypes = specs.Select(s => s.DType).Distinct().ToList();
                folder.Config(config, dtypes.Count == 1 ? dtypes[0] : null);
                folder.CopyFrom(reference, [Checkpoint.GenerationConfigFileName]);
                Tokenizer(recipe, names, checkpoints, reference, folder, tokenizer);
                File.WriteAllText(Path.Combine(folder.Directory, "mergekit_config.yml"), recipe.Text);
                var metadata = new Dictionary<string, string> { ["attune.mergekit"] = recipe.Method };
                if (options.Strength is { } lambda) metadata["attune.lambda"] = lambda.ToString("R", CultureInfo.InvariantCulture);
                using var writer = folder.Weights(specs, options.MaxShardBytes, metadata);
                foreach (var (p, spec) in plan.Zip(specs))
                {
                    var merged = MergeTensor(recipe, method, p, checkpoints, spec.Shape, compute, options, tokenizer);
                    writer.Write(p.Name, DTypes.FromSingle(spec.DType, merged));
                    // A whole tensor per input lives on the large-object heap; give it back before the next one (embeddings
                    // and the head are the largest), so that memory stays near the largest tensor's inputs and output.
                    if (merged.Length >= 1 << 22) GC.Collect();
                }
                writer.Commit();
                // Attune's own record beside mergekit's: which files went in (SHA-256 of their weights) and what was set from outside.
                var record = new StringBuilder("# Written by attune merge from a mergekit recipe: how this checkpoint was made.\n");
                record.Append($"recipe: {System.Text.Json.JsonSerializer.Serialize(recipe.Path)}\nmerge_method: {recipe.Method}\nseed: {options.Seed}\n");
                if (options.Strength is { } strength) record.Append($"lambda: {strength.ToString("R", CultureInfo.InvariantCulture)}\n");
                record.Append("models:\n");
                foreach (var (name, checkpoint) in names.Zip(checkpoints))
                    record.Append($"  - path: {System.Text.Json.JsonSerializer.Serialize(checkpoint.Directory)}\n    sha256: {PartialAdaptation.WeightsSha256(checkpoint)}\n");
                File.WriteAllText(Path.Combine(folder.Directory, "attune_merge.yml"), record.ToString());
            });
        }
        finally
        {
            foreach (var c in checkpoints) c.Dispose();
        }
    }

    static float[] MergeTensor(MergekitRecipe recipe, MergekitMethod method, Planned p, List<Checkpoint> checkpoints, long[] shape, DType? compute, Options options,
        MergekitTokenizer? tokenizer)
    {
        bool relaid = tokenizer is not null && MergekitTokenizer.IsVocabularyTensor(p.Name);
        var dtype = new ComputeDType(compute ?? checkpoints[p.Inputs[p.BaseIndex >= 0 ? p.BaseIndex : 0].Model].Weights.Entry(p.Inputs[p.BaseIndex >= 0 ? p.BaseIndex : 0].Tensor).DType);
        var tensors = p.Inputs.Select(i =>
        {
            var view = checkpoints[i.Model].Weights.GetView(i.Tensor);
            if (relaid ? view.Shape[^1] != shape[^1] : !view.Shape.SequenceEqual(shape))
                throw new AttuneException(checkpoints[i.Model].Directory, $"tensor {i.Tensor}", $"shape [{string.Join(", ", view.Shape)}] differs from [{string.Join(", ", shape)}] in the first input");
            var values = new float[view.Shape.Aggregate(1L, (a, b) => a * b)];
            DTypes.ToSingle(view.DType, view.Bytes, values);
            dtype.Round(values);
            return values;
        }).ToList();
        var (strength, weights) = options.Strength is { } lambda ? StrengthParameters(recipe, lambda) : ([], []);
        if (relaid) tensors = tokenizer!.Permute(tensors, (int)shape[^1], p.Inputs.Select(i => i.Model).ToList());
        var globals = method.Parameters.ToDictionary(d => d.Name, d => strength.TryGetValue(d.Name, out var v) ? v : Parameter(recipe, p, d, source: null));
        // A model's own parameters are evaluated on its input tensor's name (a slice's source layer), as mergekit does; the
        // method's global ones on the output tensor's.
        var perModel = p.Sources.Select((s, k) => (IReadOnlyDictionary<string, object?>)method.TensorParameters.ToDictionary(d => d.Name,
            d => d.Name == "weight" && weights.TryGetValue(s.Model, out var w) ? w : Parameter(recipe, p, d with { Required = d.Required && k != p.BaseIndex }, s, p.Inputs[k].Tensor))).ToList();
        // Each tensor's random draws depend on the seed and its name only, not on the order tensors are merged in.
        var rng = new Rng(options.Seed ^ BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(p.Name))));
        return method.Merge(new TensorInputs(p.Name, shape, tensors, p.BaseIndex, perModel, globals, dtype, rng));
    }

    /// <summary>A parameter for a tensor, looked up as mergekit does: the model's source, the slice, the recipe; else the default.</summary>
    static object? Parameter(MergekitRecipe recipe, Planned p, ParameterDef def, SliceSource? source, string? tensor = null)
    {
        tensor ??= p.Name;
        foreach (var level in new[] { source?.Parameters, p.Slice.Parameters, recipe.Parameters })
            if (level is not null && level.TryGetValue(def.Name, out var setting) && setting.Evaluate(tensor, p.T) is { } value)
                return value;
        if (def.Required)
            throw new AttuneException(recipe.Path, def.Name, $"missing for {(source is null ? "" : Path.GetFileName(source.Model.TrimEnd('/')) + " ")}tensor {tensor} ({recipe.Method} needs it)");
        return def.Default;
    }

    /// <summary>Parameters the method never reads: a printed warning each, as nothing is silently ignored.</summary>
    static void WarnUnused(MergekitRecipe recipe, MergekitMethod method, TextWriter? log)
    {
        var used = method.Parameters.Concat(method.TensorParameters).Select(d => d.Name).ToHashSet();
        var given = recipe.Parameters.Keys.Concat(recipe.Slices.SelectMany(s => s.Parameters.Keys.Concat(s.Sources.SelectMany(x => x.Parameters.Keys))));
        foreach (var name in given.Distinct().Where(n => !used.Contains(n)))
            log?.WriteLine($"warning: {recipe.Path}: parameter {name} is not one {recipe.Method} uses ({string.Join(", ", used.Order())}); it has no effect");
    }

    static int LayerOf(string tensor) => int.Parse(tensor.Split('.')[2], CultureInfo.InvariantCulture);

    static List<Planned> Plan(MergekitRecipe recipe, List<string> names, List<Checkpoint> checkpoints, Checkpoint reference, MergekitMethod method)
    {
        int Index(string name) => names.IndexOf(name);
        Checkpoint Of(string name) => checkpoints[Index(name)];
        // A models: recipe spans each model's layers; its models must have as many layers as one another.
        var slices = recipe.Slices.Select(s => s with
        {
            Sources = s.Sources.Select(x => x.End >= 0 ? x : x with { End = Of(x.Model).Config.NumLayers }).ToList(),
        }).ToList();
        foreach (var s in slices)
        {
            if (s.Sources.Select(x => x.End - x.Start).Distinct().Count() != 1)
                throw new AttuneException(recipe.Path, $"line {s.Line}", $"the models have different numbers of layers ({string.Join(", ", s.Sources.Select(x => x.End - x.Start))}); use slices: with layer ranges");
            foreach (var x in s.Sources)
                if (x.End > Of(x.Model).Config.NumLayers)
                    throw new AttuneException(recipe.Path, $"line {x.Line}: layer_range", $"[{x.Start}, {x.End}) is beyond {x.Model}'s {Of(x.Model).Config.NumLayers} layers");
        }
        string? BaseOf(OutputSlice s) => s.BaseModel ?? recipe.BaseModel;
        int BaseIndex(OutputSlice s) => BaseOf(s) is { } b ? s.Sources.ToList().FindIndex(x => x.Model == b) : -1;
        if (method.NeedsBase && slices.Any(s => BaseIndex(s) < 0) && method.Name != "slerp")
            throw new AttuneException(recipe.Path, "base_model", $"{method.Name} needs a base model among each slice's sources");

        var plan = new List<Planned>();
        var refNames = reference.Weights.Names;
        bool IsLayer(string n) => n.StartsWith("model.layers.", StringComparison.Ordinal);
        Planned Whole(string tensor, OutputSlice s) =>
            new(tensor, s.Sources.Select(x => (Index(x.Model), tensor)).ToList(), BaseIndex(s), 0, s, s.Sources);
        foreach (var n in refNames.Where(n => !IsLayer(n) && n.Contains("embed_tokens", StringComparison.Ordinal)))
            plan.Add(Whole(n, slices[0]));
        int outLayer = 0;
        foreach (var s in slices)
        {
            int count = s.Sources[0].End - s.Sources[0].Start;
            for (int idx = 0; idx < count; idx++, outLayer++)
            {
                double t = count > 1 ? (double)idx / (count - 1) : 1;
                var first = Of(s.Sources[0].Model);
                string prefix = $"model.layers.{s.Sources[0].Start + idx}.";
                foreach (var suffix in first.Weights.Names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => n[prefix.Length..]))
                {
                    var inputs = s.Sources.Select(x => (Index(x.Model), $"model.layers.{x.Start + idx}.{suffix}")).ToList();
                    foreach (var (model, tensor) in inputs)
                        if (!checkpoints[model].Weights.Contains(tensor))
                            throw new AttuneException(checkpoints[model].Directory, $"tensor {tensor}", "missing (the slice's models differ in architecture)");
                    plan.Add(new Planned($"model.layers.{outLayer}.{suffix}", inputs, BaseIndex(s), t, s, s.Sources));
                }
            }
        }
        foreach (var n in refNames.Where(n => !IsLayer(n) && !n.Contains("embed_tokens", StringComparison.Ordinal)))
            plan.Add(Whole(n, slices[^1]));
        foreach (var p in plan.Where(p => !IsLayer(p.Name)))
            foreach (var (model, tensor) in p.Inputs)
                if (!checkpoints[model].Weights.Contains(tensor))
                    throw new AttuneException(checkpoints[model].Directory, $"tensor {tensor}", "missing (a tied head? the merged models must store the same tensors)");
        return plan;
    }

    /// <summary>The output's tokenizer files: those of tokenizer_source (base, or a model), else of the base (else the first model), and the chat template asked for.</summary>
    static void Tokenizer(MergekitRecipe recipe, List<string> names, List<Checkpoint> checkpoints, Checkpoint reference, CheckpointWriter folder, MergekitTokenizer? built)
    {
        var donor = recipe.TokenizerSource switch
        {
            null or "base" or "union" => recipe.BaseModel is { } b ? checkpoints[names.IndexOf(b)] : reference,
            var model => names.IndexOf(model) is var i and >= 0 ? checkpoints[i]
                : throw new AttuneException(recipe.Path, "tokenizer_source", $"\"{model}\" is not one of the recipe's models"),
        };
        donor.CopyTokenizerFilesTo(folder);
        if (built?.TokenizerJson is { } union)
        {
            // The union: the base's tokenizer with the new tokens added, listed in tokenizer_config.json as transformers saves them.
            folder.Json(Checkpoint.TokenizerFileName, union, indented: false);
            var configPath = Path.Combine(folder.Directory, Checkpoint.TokenizerConfigFileName);
            if (File.Exists(configPath) && JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject tokenizerConfig)
            {
                var decoder = tokenizerConfig["added_tokens_decoder"] as JsonObject ?? (JsonObject)(tokenizerConfig["added_tokens_decoder"] = new JsonObject());
                foreach (var entry in built.NewAddedTokens)
                {
                    var copy = (JsonObject)entry.DeepClone();
                    copy.Remove("id");
                    decoder[entry["id"]!.ToJsonString()] = copy;
                }
                folder.Json(Checkpoint.TokenizerConfigFileName, tokenizerConfig);
            }
        }
        if (recipe.ChatTemplate is not { } template) return;
        var path = Path.Combine(folder.Directory, Checkpoint.TokenizerConfigFileName);
        var config = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path))!.AsObject() : new JsonObject();
        config["chat_template"] = template switch
        {
            "auto" => checkpoints.Select(c => c.TokenizerConfigPath is { } tc ? JsonNode.Parse(File.ReadAllText(tc))?["chat_template"]?.ToJsonString() : null)
                .Where(t => t is not null).GroupBy(t => t).OrderByDescending(g => g.Count()).FirstOrDefault()?.Key is { } json ? JsonNode.Parse(json)
                : throw new AttuneException(recipe.Path, "chat_template", "auto: none of the models has a chat template"),
            _ when NamedChatTemplates.All.TryGetValue(template, out var named) => named,
            _ when template.Contains("{%", StringComparison.Ordinal) || template.Contains("{{", StringComparison.Ordinal) => template,
            _ => throw new AttuneException(recipe.Path, "chat_template", $"\"{template}\" is not auto, one of {string.Join(", ", NamedChatTemplates.All.Keys)}, or a Jinja template"),
        };
        folder.Json(Checkpoint.TokenizerConfigFileName, config);
        File.Delete(Path.Combine(folder.Directory, "chat_template.jinja"));
    }
}
