using Attune.Formats;
using YamlDotNet.RepresentationModel;

namespace Attune.Merging;

/// <summary>
/// A merge described in YAML, as an alternative to flags:
/// <code>
/// method: linear
/// base: path/to/base
/// instruct: path/to/instruct
/// lambda: 0.5            # or  lambdas: [0, 0.5, 1]  or  lambdas: "0:1:0.1"
/// rules:                 # optional; first match wins
///   - match: "self_attn"
///     lambda: [0.2, 0.8] # spread across the layers
///   - match: "embed_tokens|lm_head"
///     lambda: 0          # keep the base's embeddings
/// dtype: bf16            # optional: f32 | f16 | bf16
/// tokenizer_from: instruct
/// </code>
/// Relative paths are taken from the recipe's folder. Errors name the recipe line.
/// </summary>
public sealed record MergeRecipe(string Base, IReadOnlyList<string> Models, MergeOptions Options)
{
    public static MergeRecipe Load(string path)
    {
        var stream = YamlFile.Load(path);
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new AttuneException(path, "expected one YAML mapping");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        AttuneException Bad(YamlNode node, string field, string problem) => new(path, $"line {node.Start.Line}: {field}", problem);
        string Scalar(YamlNode node, string field) => node is YamlScalarNode s && s.Value is not null ? s.Value : throw Bad(node, field, "must be a single value");
        double Number(YamlNode node, string field) =>
            double.TryParse(Scalar(node, field), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
                ? v : throw Bad(node, field, "must be a number");
        List<double> Numbers(YamlNode node, string field) => node is YamlSequenceNode seq
            ? seq.Children.Select(c => Number(c, field)).ToList() is { Count: > 0 } l ? l : throw Bad(node, field, "is empty")
            : [Number(node, field)];
        YamlNode? Get(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

        var known = new HashSet<string> { "method", "base", "instruct", "models", "lambda", "lambdas", "rules", "dtype", "tokenizer_from",
            "density", "drop_rate", "rescale", "normalize", "seed" };
        foreach (var key in root.Children.Keys)
            if (!known.Contains(Scalar(key, "key"))) throw Bad(key, Scalar(key, "key"), $"is not a recipe field ({string.Join(", ", known)})");
        var method = Get(root, "method") is { } m ? Scalar(m, "method") : "linear";
        if (!MergeMethods.Names.Contains(method)) throw Bad(Get(root, "method")!, "method", $"\"{method}\" is not one of {string.Join(", ", MergeMethods.Names)}");
        bool Flag(string name, bool fallback) => Get(root, name) is { } n ? Scalar(n, name) switch
        {
            "true" => true, "false" => false, _ => throw Bad(n, name, "must be true or false"),
        } : fallback;
        string PathField(string name) => Get(root, name) is { } n ? Path.GetFullPath(Path.Combine(dir, Scalar(n, name)))
            : throw new AttuneException(path, name, "missing");

        IReadOnlyList<double> lambdas = (Get(root, "lambda"), Get(root, "lambdas")) switch
        {
            ({ } one, null) => [Number(one, "lambda")],
            (null, YamlScalarNode range) => Attune.Models.Lambda.ParseList(range.Value ?? "", "lambdas").Select(l => l.Value).ToList(),
            (null, { } list) => Numbers(list, "lambdas"),
            (null, null) => throw new AttuneException(path, "lambda", "missing (lambda or lambdas)"),
            _ => throw new AttuneException(path, "lambda", "give either lambda or lambdas"),
        };
        var rules = new List<TensorRule>();
        if (Get(root, "rules") is { } rulesNode)
        {
            if (rulesNode is not YamlSequenceNode seq) throw Bad(rulesNode, "rules", "must be a list of {match, lambda}");
            foreach (var r in seq.Children)
            {
                if (r is not YamlMappingNode rm) throw Bad(r, "rules", "each rule is {match, lambda}");
                var match = Get(rm, "match") ?? throw Bad(r, "rules", "a rule needs match");
                var value = Get(rm, "lambda") ?? throw Bad(r, "rules", "a rule needs lambda");
                rules.Add(new TensorRule(Scalar(match, "match"), Numbers(value, "lambda")));
            }
        }
        Tensors.DType? dtype = Get(root, "dtype") is { } dt
            ? (Tensors.DTypes.TryParseFloat(Scalar(dt, "dtype"), out var parsed) ? parsed : throw Bad(dt, "dtype", $"\"{Scalar(dt, "dtype")}\" is not one of f32|float32, f16|float16, bf16|bfloat16"))
            : null;
        var options = new MergeOptions
        {
            Lambdas = lambdas,
            Rules = rules,
            DType = dtype,
            TokenizerFrom = Get(root, "tokenizer_from") is { } tf ? Scalar(tf, "tokenizer_from") : "instruct",
        };
        // The other side: one `instruct`, or `models: [{path, weight}]` for task_arithmetic, ties and dare.
        var models = new List<string>();
        var weights = new List<double>();
        if (Get(root, "models") is { } modelsNode)
        {
            if (modelsNode is not YamlSequenceNode ms) throw Bad(modelsNode, "models", "must be a list of {path, weight}");
            foreach (var entry in ms.Children)
            {
                if (entry is not YamlMappingNode em || Get(em, "path") is not { } pn) throw Bad(entry, "models", "each entry is {path, weight}");
                models.Add(Path.GetFullPath(Path.Combine(dir, Scalar(pn, "path"))));
                weights.Add(Get(em, "weight") is { } wn ? Number(wn, "weight") : 1);
            }
        }
        else
        {
            models.Add(PathField("instruct"));
            weights.Add(1);
        }
        var (mergeMethod, recorded) = MergeMethods.Create(method, new MergeMethods.Parameters
        {
            Weights = weights,
            Density = Get(root, "density") is { } dn ? Number(dn, "density") : null,
            DropRate = Get(root, "drop_rate") is { } dr ? Number(dr, "drop_rate") : 0.5,
            Rescale = Flag("rescale", true),
            Normalize = Get(root, "normalize") is not null ? Flag("normalize", false) : null,
            Seed = Get(root, "seed") is { } sn && ulong.TryParse(Scalar(sn, "seed"), out var seedValue) ? seedValue : 0,
        });
        return new MergeRecipe(PathField("base"), models, options with { Method = mergeMethod, MethodParameters = recorded });
    }
}
