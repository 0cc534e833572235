using Attune.Tensors;

namespace Attune.Formats;

/// <summary>
/// A Hugging Face checkpoint folder: <c>config.json</c>, the safetensors weights (single or sharded),
/// and the tokenizer files beside them. Opening checks that every tensor the architecture needs is
/// there with the right shape and reports all problems at once.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string ConfigFileName = "config.json";
    public const string TokenizerFileName = "tokenizer.json";
    public const string TokenizerConfigFileName = "tokenizer_config.json";
    public const string GenerationConfigFileName = "generation_config.json";

    public string Directory { get; }
    public ModelConfig Config { get; }
    public SafeTensorsIndex Weights { get; }

    public string? TokenizerPath => FileIfPresent(TokenizerFileName);
    public string? TokenizerConfigPath => FileIfPresent(TokenizerConfigFileName);
    public string? GenerationConfigPath => FileIfPresent(GenerationConfigFileName);

    Checkpoint(string dir, ModelConfig config, SafeTensorsIndex weights)
    {
        Directory = dir;
        Config = config;
        Weights = weights;
    }

    string? FileIfPresent(string name)
    {
        var p = Path.Combine(Directory, name);
        return File.Exists(p) ? p : null;
    }

    /// <summary>Opens and checks a checkpoint folder; its weights mapped, or read into memory (<paramref name="inMemory"/>, for inference).</summary>
    public static Checkpoint Open(string dir, bool inMemory = false)
    {
        if (!System.IO.Directory.Exists(dir))
            throw new AttuneException(dir, File.Exists(dir) ? "is a file; a checkpoint is a folder with config.json" : "folder not found");
        var config = ModelConfig.Load(Path.Combine(dir, ConfigFileName));
        var weights = SafeTensorsIndex.Open(dir, inMemory);
        try
        {
            var problems = Validate(config, weights);
            if (problems.Count > 0)
            {
                var shown = problems.Take(8).ToList();
                var more = problems.Count > shown.Count ? $"; and {problems.Count - shown.Count} more" : "";
                throw new AttuneException(dir, $"{problems.Count} problem(s) with the weights: {string.Join("; ", shown)}{more}");
            }
            return new Checkpoint(dir, config, weights);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Every missing, misshapen or non-float tensor, one line each.</summary>
    public static List<string> Validate(ModelConfig config, SafeTensorsIndex weights)
    {
        var problems = new List<string>();
        // More layers than the weights hold would list every missing tensor of every layer (billions, for a
        // corrupt num_hidden_layers); one line says it instead.
        int stored = StoredLayers(weights);
        if (config.NumLayers > stored)
        {
            problems.Add($"config.json has num_hidden_layers {config.NumLayers} but the weights hold {stored} layers");
            return problems;
        }
        foreach (var t in TensorLayout.Expected(config))
        {
            if (!weights.TryGetEntry(t.Name, out var e))
            {
                if (!t.Optional) problems.Add($"tensor {t.Name} is missing");
                continue;
            }
            if (!e.Shape.SequenceEqual(t.Shape))
                problems.Add($"tensor {t.Name} has shape [{string.Join(", ", e.Shape)}], expected [{string.Join(", ", t.Shape)}]");
            if (e.DType is not (DType.F32 or DType.F16 or DType.BF16))
                problems.Add($"tensor {t.Name} is {e.DType.SafeTensorsName()}; weights must be F32, F16 or BF16");
        }
        return problems;
    }

    /// <summary>One more than the highest <c>model.layers.{i}.</c> index among the tensor names (0 without layers).</summary>
    static int StoredLayers(SafeTensorsIndex weights)
    {
        const string Prefix = "model.layers.";
        int layers = 0;
        foreach (var name in weights.Names)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            int dot = name.IndexOf('.', Prefix.Length);
            if (dot > 0 && int.TryParse(name.AsSpan(Prefix.Length, dot - Prefix.Length), System.Globalization.NumberStyles.None, null, out var i) && i < int.MaxValue)
                layers = Math.Max(layers, i + 1);
        }
        return layers;
    }

    /// <summary>
    /// Writes this checkpoint's config.json through <paramref name="into"/>, with <c>torch_dtype</c> set when
    /// <paramref name="dtype"/> is given, and copies its generation_config.json.
    /// </summary>
    public void CopyConfigTo(CheckpointWriter into, DType? dtype)
    {
        into.Config(System.Text.Json.Nodes.JsonNode.Parse(Utf8Input.ReadAllText(Path.Combine(Directory, ConfigFileName)))!.AsObject(), dtype);
        into.CopyFrom(this, [GenerationConfigFileName]);
    }

    /// <summary>The files that carry the tokenizer and chat template, copied whole to a derived checkpoint.</summary>
    public static readonly string[] TokenizerFiles = [TokenizerFileName, TokenizerConfigFileName, "special_tokens_map.json", "chat_template.jinja"];

    /// <summary>Copies whichever <see cref="TokenizerFiles"/> this checkpoint has through <paramref name="into"/>.</summary>
    public void CopyTokenizerFilesTo(CheckpointWriter into) => into.CopyFrom(this, TokenizerFiles);

    public void Dispose() => Weights.Dispose();
}
