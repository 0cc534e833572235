using System.CommandLine;
using System.Globalization;
using Attune.Formats;
using Attune.Merging;
using Attune.Models;
using Attune.Tensors;

namespace Attune.Cli.Commands;

/// <summary><c>attune merge</c>: partial adaptation between a base checkpoint and its instruct sibling.</summary>
public static class MergeCommand
{
    public static Command Build()
    {
        var baseModel = new Option<string?>("--base") { Description = "The base: a checkpoint folder or a Hub id ORG/NAME[@revision] in the local Hugging Face cache" };
        var instruct = new Option<string[]>("--instruct") { Description = "The instruct model (a folder or a Hub id); for task_arithmetic, ties and dare repeat it, optionally as PATH=WEIGHT" };
        var recipe = new Option<string?>("--recipe") { Description = "A YAML recipe (base, instruct, lambda(s), rules, dtype, tokenizer_from) instead of flags" };
        var rule = new Option<string[]>("--rule") { Description = "Per-tensor λ: PATTERN=VALUE or PATTERN=V1,V2,… spread across layers (repeatable; first match wins)" };
        var lambda = new Option<string?>("--lambda") { Description = "Interpolation weight λ: 0 = base, 1 = instruct (outside [0, 1] extrapolates)" };
        var lambdas = new Option<string?>("--lambdas") { Description = "Several λ in one pass: 0,0.5,1 or start:end:step; outputs go to OUT/lambda-0.50/…" };
        var method = new Option<string>("--method") { Description = "linear (partial adaptation) | task_arithmetic | slerp | ties | dare; λ is each method's strength", DefaultValueFactory = _ => "linear" };
        var density = new Option<double?>("--density") { Description = "ties: fraction of each task vector kept, int(density·n) largest (default 1, as mergekit)" };
        var dropRate = new Option<double>("--drop-rate") { Description = "dare: probability of dropping each task-vector element", DefaultValueFactory = _ => 0.5 };
        var noRescale = new Option<bool>("--no-rescale") { Description = "dare: do not rescale the kept elements by 1/(1 − drop rate)" };
        var normalize = new Option<bool?>("--normalize") { Description = "ties, task_arithmetic: divide by the total weight (of the agreeing models, for ties); default true for ties, false for task_arithmetic (as mergekit)" };
        var seed = new Option<ulong>("--seed") { Description = "dare: seed of the drop masks", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string?>("--dtype") { Description = "Output dtype f32|f16|bf16 (default: the instruct model's)" };
        var tokenizerFrom = new Option<string>("--tokenizer-from") { Description = "Tokenizer files and chat template from: instruct|base", DefaultValueFactory = _ => "instruct" };
        var output = new Option<string>("--out") { Description = "Output folder", Required = true };
        var maxShard = new Option<string?>("--max-shard-size") { Description = "Largest safetensors shard, e.g. 2GB or 500MB (default 5GB, as transformers)" };
        var cmd = new Command("merge", "Interpolate a base and an instruct checkpoint: M(λ) = W_base + λ·(W_instruct − W_base)")
            { baseModel, instruct, recipe, lambda, lambdas, rule, method, density, dropRate, noRescale, normalize, seed, dtype, tokenizerFrom, maxShard, output };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            if (parse.GetValue(recipe) is { } recipeFile)
            {
                if (parse.GetValue(baseModel) is not null || parse.GetValue(instruct) is { Length: > 0 })
                    throw new AttuneException(null, "--recipe", "give either a recipe or --base/--instruct flags, not both");
                if (!File.Exists(recipeFile)) throw new AttuneException(recipeFile, "not found");
                if (Attune.Merging.Mergekit.MergekitRecipe.IsMergekit(recipeFile))
                    return MergekitRecipe(io, recipeFile, parse.GetValue(output)!, parse.GetValue(lambda), parse.GetValue(lambdas), parse.GetValue(seed), parse.GetValue(maxShard));
                if (parse.GetValue(lambda) is not null || parse.GetValue(lambdas) is not null)
                    throw new AttuneException(null, "--recipe", "an Attune recipe names its λ (lambda: or lambdas:); --lambda and --lambdas go with flags or a mergekit recipe");
                var r = MergeRecipe.Load(recipeFile);
                var recipeOptions = parse.GetValue(maxShard) is { } ms ? r.Options with { MaxShardBytes = ParseSize(ms) } : r.Options;
                CliProgress.Run(io, "merge", p => PartialAdaptation.Merge(r.Base, r.Models, parse.GetValue(output)!, recipeOptions, p, io.Error));
                io.Out.WriteLine($"wrote {parse.GetValue(output)} from {recipeFile}");
                return Program.Success;
            }
            if (parse.GetValue(baseModel) is null || parse.GetValue(instruct) is not { Length: > 0 })
                throw new AttuneException(null, "--base", "give --base and --instruct (or --recipe)");
            var models = new List<string>();
            var weights = new List<double>();
            foreach (var spec in parse.GetValue(instruct)!)
            {
                int eq = spec.LastIndexOf('=');
                double w = 0;
                bool weighted = eq > 0 && double.TryParse(spec[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out w);
                models.Add(ModelReference.Parse(weighted ? spec[..eq] : spec, "--instruct").CheckpointFolder("--instruct"));
                weights.Add(weighted ? w : 1);
            }
            var (mergeMethod, recorded) = MergeMethods.Create(parse.GetValue(method)!, new MergeMethods.Parameters
            {
                Weights = weights, Density = parse.GetValue(density), DropRate = parse.GetValue(dropRate),
                Rescale = !parse.GetValue(noRescale), Normalize = parse.GetValue(normalize), Seed = parse.GetValue(seed),
            });
            var one = parse.GetValue(lambda);
            var many = parse.GetValue(lambdas);
            if (one is null == many is null) throw new AttuneException(null, "--lambda", "give either --lambda or --lambdas");
            var values = (one is not null ? [Lambda.Parse(one)] : Lambda.ParseList(many!)).Select(l => l.Value).ToList();
            DType? dt = parse.GetValue(dtype) is { } d ? DTypes.ParseFloat(d) : null;
            var rules = (parse.GetValue(rule) ?? []).Select(ParseRule).ToList();
            var options = new MergeOptions
            {
                Lambdas = values, DType = dt, TokenizerFrom = parse.GetValue(tokenizerFrom)!, Rules = rules,
                Method = mergeMethod, MethodParameters = recorded,
                MaxShardBytes = parse.GetValue(maxShard) is { } shard ? ParseSize(shard) : ShardedSafeTensorsWriter.DefaultMaxShardBytes,
            };
            var basePath = ModelReference.Parse(parse.GetValue(baseModel)!, "--base").CheckpointFolder("--base");
            CliProgress.Run(io, "merge", p => PartialAdaptation.Merge(basePath, models, parse.GetValue(output)!, options, p, io.Error));
            io.Out.WriteLine(values.Count == 1
                ? $"wrote {parse.GetValue(output)} (λ = {new Lambda(values[0])})"
                : $"wrote {values.Count} checkpoints under {parse.GetValue(output)}");
            return Program.Success;
        });
        return cmd;
    }

    /// <summary>
    /// A recipe in mergekit's format (it names a merge_method), merged with mergekit's semantics; with --lambda or --lambdas
    /// the method's strength is set (MergekitMerge.StrengthParameters), one folder per λ (OUT/lambda-0.50, …) for several.
    /// </summary>
    static int MergekitRecipe(CliIO io, string file, string output, string? one, string? many, ulong seed, string? maxShard)
    {
        var recipe = Attune.Merging.Mergekit.MergekitRecipe.Load(file);
        var options = new Attune.Merging.Mergekit.MergekitMerge.Options { Seed = seed };
        if (maxShard is { } size) options = options with { MaxShardBytes = ParseSize(size) };
        if (one is not null && many is not null) throw new AttuneException(null, "--lambda", "give either --lambda or --lambdas");
        if (one is null && many is null)
        {
            Attune.Merging.Mergekit.MergekitMerge.Run(recipe, output, options, io.Error);
            io.Out.WriteLine($"wrote {output} from {file} ({recipe.Method}, mergekit's format)");
            return Program.Success;
        }
        if (one is not null)
        {
            var lambda = Lambda.Parse(one);
            Attune.Merging.Mergekit.MergekitMerge.Run(recipe, output, options with { Strength = lambda.Value }, io.Error);
            io.Out.WriteLine($"wrote {output} from {file} ({recipe.Method}, λ = {lambda})");
            return Program.Success;
        }
        var values = Lambda.ParseList(many!);
        Attune.Merging.Mergekit.MergekitMerge.Run(recipe, output, values, options, io.Error);
        io.Out.WriteLine($"wrote {values.Count} checkpoints under {output} from {file} ({recipe.Method})");
        return Program.Success;
    }

    /// <summary>"5GB", "500MB", "64KB" or a number of bytes (decimal units, as transformers reads them).</summary>
    static long ParseSize(string text)
    {
        var t = text.Trim().ToUpperInvariant();
        (string suffix, long unit)[] units = [("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000), ("B", 1)];
        foreach (var (suffix, unit) in units)
            if (t.EndsWith(suffix, StringComparison.Ordinal) && double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0)
                return (long)(v * unit);
        return long.TryParse(t, out var bytes) && bytes > 0 ? bytes
            : throw new AttuneException(null, "--max-shard-size", $"\"{text}\" is not a size like 2GB or 500MB");
    }

    static TensorRule ParseRule(string text)
    {
        int eq = text.LastIndexOf('=');
        if (eq <= 0) throw new AttuneException(null, "--rule", $"\"{text}\" is not PATTERN=VALUE[,VALUE…]");
        var values = text[(eq + 1)..].Split(',').Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d
            : throw new AttuneException(null, "--rule", $"\"{v}\" is not a number")).ToList();
        return new TensorRule(text[..eq], values);
    }
}
