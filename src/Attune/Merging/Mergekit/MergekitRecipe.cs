using System.Globalization;
using Attune.Formats;
using YamlDotNet.RepresentationModel;

namespace Attune.Merging.Mergekit;

/// <summary>
/// A parameter's setting as mergekit recipes write it: a value, a gradient over the layers (a list of numbers), a list
/// of other values picked by position, or conditions on the tensor's name (<c>- filter: self_attn</c> / <c>value: …</c>).
/// </summary>
public abstract record Setting
{
    public sealed record Scalar(object Value) : Setting;
    public sealed record Gradient(IReadOnlyList<double> Values) : Setting;
    public sealed record Picks(IReadOnlyList<object> Values) : Setting;
    public sealed record Conditions(IReadOnlyList<(string? Filter, Setting Value)> Cases) : Setting;

    /// <summary>
    /// The value for a tensor at depth <paramref name="t"/> (layer/(layers − 1) within its slice; 0 for embeddings and the
    /// final norm): a gradient is interpolated piecewise-linearly between its points; conditions take the first case
    /// whose filter is absent, <c>*</c>, or a substring of the tensor's name, and give null when none matches (the
    /// next, more general level of the recipe is asked then).
    /// </summary>
    public object? Evaluate(string tensor, double t) => this switch
    {
        Scalar s => s.Value,
        Gradient g => Interpolate(g.Values, t),
        Picks p => p.Values[(int)(t * (p.Values.Count - 1))],
        Conditions c => c.Cases.FirstOrDefault(x => x.Filter is null || x.Filter == "*" || tensor.Contains(x.Filter, StringComparison.Ordinal)) is { Value: { } v }
            ? v.Evaluate(tensor, t) : null,
        _ => throw new InvalidOperationException(),
    };

    static double Interpolate(IReadOnlyList<double> points, double t)
    {
        double scaled = t * (points.Count - 1);
        int i0 = (int)scaled, i1 = Math.Min(points.Count - 1, i0 + 1);
        double frac = scaled - i0;
        return (1 - frac) * points[i0] + frac * points[i1];
    }
}

/// <summary>
/// Where a token's embedding comes from (<c>tokenizer.tokens</c>): a model's row for the token, a model's row for another
/// token (model_token, by text or id), or zeros; <c>force</c> puts it in every model's rows, not only those lacking the token.
/// </summary>
public sealed record TokenEmbedding(string Token, string? Model, string? FromToken, int? FromTokenId, bool Zero, bool Force);

/// <summary>One input of a slice: a model's layers [Start, End), with parameters of its own.</summary>
public sealed record SliceSource(string Model, int Start, int End, IReadOnlyDictionary<string, Setting> Parameters, long Line);

/// <summary>A run of output layers: the sources merged layer by layer, an optional base and parameters of the slice.</summary>
public sealed record OutputSlice(IReadOnlyList<SliceSource> Sources, string? BaseModel, IReadOnlyDictionary<string, Setting> Parameters, long Line);

/// <summary>
/// A mergekit recipe as mergekit reads it: <c>merge_method</c>, <c>base_model</c>, <c>models</c> (each with its
/// <c>parameters</c>) or <c>slices</c> (sources with <c>layer_range</c>), global <c>parameters</c>, <c>dtype</c> (the
/// compute dtype: inputs are cast to it before merging), <c>out_dtype</c>, <c>tokenizer_source</c> or <c>tokenizer</c>,
/// and <c>chat_template</c>. Model names are folders (relative to the recipe) or Hub ids in the local cache. A
/// <c>models:</c> recipe is one slice over all layers, with the base added as a source when it is not listed (as
/// mergekit does). Errors name the recipe's line.
/// </summary>
public sealed record MergekitRecipe(
    string Path, string Method, string? BaseModel, IReadOnlyList<OutputSlice> Slices, bool FromModels,
    IReadOnlyDictionary<string, Setting> Parameters, string? DType, string? OutDType, string? TokenizerSource,
    string? ChatTemplate, string Text)
{
    /// <summary><c>tokenizer.tokens</c>: where chosen tokens' embeddings come from (tokens missing from the vocabulary are added).</summary>
    public IReadOnlyList<TokenEmbedding> Tokens { get; init; } = [];
    /// <summary><c>tokenizer.pad_to_multiple_of</c>: the embedding rows rounded up to a multiple (the extra rows are each model's mean row).</summary>
    public int? PadToMultipleOf { get; init; }

    /// <summary>Whether a YAML file is written in mergekit's format (it names a <c>merge_method</c>).</summary>
    public static bool IsMergekit(string path)
    {
        var stream = YamlFile.Load(path);
        return stream.Documents.Count == 1 && stream.Documents[0].RootNode is YamlMappingNode root
            && root.Children.ContainsKey(new YamlScalarNode("merge_method"));
    }

    public static MergekitRecipe Load(string path)
    {
        var stream = YamlFile.Load(path);
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new AttuneException(path, "expected one YAML mapping");
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        AttuneException Bad(YamlNode node, string field, string problem) => new(path, $"line {node.Start.Line}: {field}", problem);
        string Text(YamlNode node, string field) => node is YamlScalarNode s && s.Value is not null ? s.Value : throw Bad(node, field, "must be a single value");
        YamlNode? Get(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;
        void Only(YamlMappingNode map, string where, params string[] keys)
        {
            foreach (var key in map.Children.Keys)
                if (!keys.Contains(Text(key, "key")))
                    throw Bad(key, Text(key, "key"), $"is not a field of {where} in a mergekit recipe ({string.Join(", ", keys)})");
        }
        string Model(YamlNode node, string field)
        {
            var name = Text(node, field);
            if (name.Contains('+')) throw Bad(node, field, $"\"{name}\": a LoRA applied to a model (model+lora) is not supported; merge the adapter first (attune train writes merged weights)");
            var local = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, name));
            return Directory.Exists(local) ? local : name; // else a Hub id, resolved from the local cache when the merge opens it
        }

        Setting ParseSetting(YamlNode node, string field)
        {
            switch (node)
            {
                case YamlScalarNode s:
                    return new Setting.Scalar(ScalarValue(s, field));
                case YamlMappingNode m:
                    Only(m, $"the condition of {field}", "filter", "value");
                    return new Setting.Conditions([Condition(m, field)]);
                case YamlSequenceNode seq when seq.Children.Count == 0:
                    throw Bad(node, field, "is an empty list");
                case YamlSequenceNode seq when seq.Children.All(c => c is YamlMappingNode):
                    return new Setting.Conditions(seq.Children.Select(c =>
                    {
                        Only((YamlMappingNode)c, $"a condition of {field}", "filter", "value");
                        return Condition((YamlMappingNode)c, field);
                    }).ToList());
                case YamlSequenceNode seq when seq.Children.All(c => c is YamlScalarNode):
                    var values = seq.Children.Select(c => ScalarValue((YamlScalarNode)c, field)).ToList();
                    return values.All(v => v is double) ? new Setting.Gradient(values.Cast<double>().ToList()) : new Setting.Picks(values);
                default:
                    throw Bad(node, field, "must be a value, a list of numbers (a gradient over the layers) or a list of {filter, value}");
            }
        }
        (string?, Setting) Condition(YamlMappingNode m, string field)
        {
            var value = Get(m, "value") ?? throw Bad(m, field, "a condition needs a value");
            if (value is YamlMappingNode || (value is YamlSequenceNode vs && vs.Children.Any(c => c is not YamlScalarNode)))
                throw Bad(value, field, "a condition's value is a value or a gradient");
            return (Get(m, "filter") is { } f ? Text(f, "filter") : null, ParseSetting(value, field));
        }
        object ScalarValue(YamlScalarNode s, string field)
        {
            var v = s.Value ?? throw Bad(s, field, "is empty");
            if (s.Style is YamlDotNet.Core.ScalarStyle.Plain)
            {
                if (v is "true" or "True") return true;
                if (v is "false" or "False") return false;
                if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
                    return double.IsFinite(d) ? d : throw Bad(s, field, "must be a finite number");
            }
            return v;
        }
        IReadOnlyDictionary<string, Setting> Parameters(YamlNode? node, string where)
        {
            if (node is null) return new Dictionary<string, Setting>();
            if (node is not YamlMappingNode m) throw Bad(node, where, "parameters must be a mapping of name: setting");
            return m.Children.ToDictionary(kv => Text(kv.Key, "parameter"), kv => ParseSetting(kv.Value, Text(kv.Key, "parameter")));
        }

        Only(root, "the recipe", "merge_method", "base_model", "models", "slices", "modules", "parameters", "dtype", "out_dtype",
            "tokenizer_source", "tokenizer", "chat_template");
        var method = Get(root, "merge_method") is { } mm ? Text(mm, "merge_method") : throw new AttuneException(path, "merge_method", "missing");
        if (Get(root, "modules") is { } modules)
            throw Bad(modules, "modules", "per-module recipes (multimodal models' text and vision towers) are not supported: Attune's models have one module, so use models: or slices:");
        string? baseModel = Get(root, "base_model") is { } bm ? Model(bm, "base_model") : null;
        var (models, slicesNode) = (Get(root, "models"), Get(root, "slices"));
        if ((models is null) == (slicesNode is null))
            throw new AttuneException(path, "models", "give exactly one of models: or slices:");
        var slices = new List<OutputSlice>();
        if (models is not null)
        {
            if (models is not YamlSequenceNode list || list.Children.Count == 0) throw Bad(models, "models", "must be a list of {model, parameters}");
            var sources = list.Children.Select(c =>
            {
                if (c is not YamlMappingNode m) throw Bad(c, "models", "each entry is {model, parameters}");
                Only(m, "a models: entry", "model", "parameters");
                return new SliceSource(Model(Get(m, "model") ?? throw Bad(c, "models", "an entry needs model"), "model"), 0, -1, Parameters(Get(m, "parameters"), "parameters"), c.Start.Line);
            }).ToList();
            // The base joins the sources when not listed, without parameters of its own.
            if (baseModel is not null && sources.All(s => s.Model != baseModel)) sources.Add(new SliceSource(baseModel, 0, -1, new Dictionary<string, Setting>(), Get(root, "base_model")!.Start.Line));
            slices.Add(new OutputSlice(sources, null, new Dictionary<string, Setting>(), models.Start.Line));
        }
        else
        {
            if (slicesNode is not YamlSequenceNode list || list.Children.Count == 0) throw Bad(slicesNode!, "slices", "must be a list of {sources}");
            foreach (var c in list.Children)
            {
                if (c is not YamlMappingNode m) throw Bad(c, "slices", "each slice is {sources, base_model, parameters}");
                Only(m, "a slice", "sources", "base_model", "parameters", "residual_weight");
                if (Get(m, "residual_weight") is { } rw) throw Bad(rw, "residual_weight", "is not supported");
                if (Get(m, "sources") is not YamlSequenceNode src || src.Children.Count == 0) throw Bad(c, "sources", "a slice needs a list of sources");
                var sources = src.Children.Select(s =>
                {
                    if (s is not YamlMappingNode sm) throw Bad(s, "sources", "each source is {model, layer_range, parameters}");
                    Only(sm, "a slice source", "model", "layer_range", "parameters");
                    var range = Get(sm, "layer_range") as YamlSequenceNode;
                    if (range is null || range.Children.Count != 2 || !int.TryParse(Text(range.Children[0], "layer_range"), out var a) || !int.TryParse(Text(range.Children[1], "layer_range"), out var b) || a < 0 || b <= a)
                        throw Bad(s, "layer_range", "must be [first, end) with 0 ≤ first < end");
                    return new SliceSource(Model(Get(sm, "model") ?? throw Bad(s, "sources", "a source needs model"), "model"), a, b, Parameters(Get(sm, "parameters"), "parameters"), s.Start.Line);
                }).ToList();
                if (sources.Select(s => s.End - s.Start).Distinct().Count() != 1)
                    throw Bad(c, "sources", "every source of a slice must span the same number of layers");
                slices.Add(new OutputSlice(sources, Get(m, "base_model") is { } sb ? Model(sb, "base_model") : null, Parameters(Get(m, "parameters"), "parameters"), c.Start.Line));
            }
        }
        string? tokenizerSource = Get(root, "tokenizer_source") is { } ts ? Text(ts, "tokenizer_source") : null;
        int? padTo = null;
        var tokenEmbeddings = new List<TokenEmbedding>();
        if (Get(root, "tokenizer") is { } tok)
        {
            if (tokenizerSource is not null) throw Bad(tok, "tokenizer", "give tokenizer_source or tokenizer, not both");
            if (tok is not YamlMappingNode tm) throw Bad(tok, "tokenizer", "must be a mapping with source");
            Only(tm, "tokenizer", "source", "tokens", "pad_to_multiple_of");
            // mergekit's tokenizer: block defaults to the union of the vocabularies.
            tokenizerSource = Get(tm, "source") is { } s ? Text(s, "tokenizer.source") : "union";
            if (Get(tm, "pad_to_multiple_of") is { } pad && Text(pad, "tokenizer.pad_to_multiple_of") != "null")
                padTo = int.TryParse(Text(pad, "tokenizer.pad_to_multiple_of"), out var m) && m > 0 ? m : throw Bad(pad, "tokenizer.pad_to_multiple_of", "must be a positive whole number");
            if (Get(tm, "tokens") is { } tokensNode)
            {
                if (tokensNode is not YamlMappingNode tokenMap) throw Bad(tokensNode, "tokenizer.tokens", "must map each token to {source, force}");
                foreach (var (key, value) in tokenMap.Children)
                {
                    var token = Text(key, "tokenizer.tokens");
                    if (value is not YamlMappingNode tv) throw Bad(value, $"tokenizer.tokens.{token}", "must be {source, force}");
                    Only(tv, $"tokenizer.tokens.{token}", "source", "force");
                    bool force = Get(tv, "force") is { } f && Text(f, "force") is "true" or "True";
                    tokenEmbeddings.Add(Get(tv, "source") switch
                    {
                        null => throw Bad(value, $"tokenizer.tokens.{token}", "needs a source"),
                        YamlScalarNode model => new TokenEmbedding(token, Model(model, "source"), null, null, false, force),
                        YamlMappingNode kind => Get(kind, "kind") is { } k ? Text(k, "kind") switch
                        {
                            "zero" => new TokenEmbedding(token, null, null, null, true, force),
                            "model_token" => new TokenEmbedding(token, Model(Get(kind, "model") ?? throw Bad(kind, "source", "model_token needs model"), "model"),
                                Get(kind, "token") is { } st ? Text(st, "token") : null,
                                Get(kind, "token_id") is { } sid ? int.TryParse(Text(sid, "token_id"), out var id) ? id : throw Bad(sid, "token_id", "must be a whole number") : null, false, force),
                            var other => throw Bad(k, "kind", $"\"{other}\" is not zero or model_token"),
                        } : throw Bad(kind, "source", "a source mapping needs kind (zero or model_token)"),
                        var other => throw Bad(other, "source", "is a model, or {kind: zero} / {kind: model_token, model, token}"),
                    });
                    if (tokenEmbeddings[^1] is { Model: not null, FromToken: null, FromTokenId: null } && Get(tv, "source") is YamlMappingNode)
                        throw Bad(value, $"tokenizer.tokens.{token}", "model_token needs token or token_id");
                }
            }
        }
        if (tokenizerSource is not null && tokenizerSource is not ("base" or "union"))
        {
            var node = Get(root, "tokenizer_source") ?? Get(root, "tokenizer")!;
            tokenizerSource = Model(node is YamlMappingNode tm2 ? Get(tm2, "source")! : node, "tokenizer_source");
        }
        return new MergekitRecipe(System.IO.Path.GetFullPath(path), method, baseModel, slices, models is not null, Parameters(Get(root, "parameters"), "parameters"),
            Get(root, "dtype") is { } dt ? Text(dt, "dtype") : null, Get(root, "out_dtype") is { } od ? Text(od, "out_dtype") : null,
            tokenizerSource, Get(root, "chat_template") is { } ct ? Text(ct, "chat_template") : null, File.ReadAllText(path))
        { Tokens = tokenEmbeddings, PadToMultipleOf = padTo };
    }
}
