using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Tensors;

namespace Attune.Formats;

/// <summary>
/// The one way Attune writes a Hugging Face checkpoint folder's files — config.json with its <c>torch_dtype</c>,
/// the side files (generation config, tokenizer files) as JSON or copied from another checkpoint, and the weights
/// as (sharded) safetensors with transformers' <c>format: pt</c> metadata — used by init, GGUF → folder, merge and
/// training. <see cref="Write"/> builds a whole folder atomically; a caller that publishes its own temporary
/// folder (a training checkpoint, several merge outputs) makes a writer over it.
/// </summary>
public sealed class CheckpointWriter(string directory)
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string Directory { get; } = directory;

    /// <summary>Builds the folder under a temporary sibling name and renames it to <paramref name="outDir"/> when complete.</summary>
    public static void Write(string outDir, Action<CheckpointWriter> fill) => AtomicDirectory.Write(outDir, temp => fill(new CheckpointWriter(temp)));

    /// <summary>config.json, with <c>torch_dtype</c> set when <paramref name="dtype"/> is given (the object is not changed).</summary>
    public void Config(JsonObject config, DType? dtype)
    {
        var json = (JsonObject)config.DeepClone();
        if (dtype is { } t) json["torch_dtype"] = t.TorchName();
        Json(Checkpoint.ConfigFileName, json);
    }

    /// <summary>A JSON side file, indented and ending in a newline as transformers writes them (tokenizer.json is written compact).</summary>
    public void Json(string fileName, JsonNode node, bool indented = true) =>
        AtomicFile.WriteAllText(Path.Combine(Directory, fileName), indented ? node.ToJsonString(Indented) + "\n" : node.ToJsonString());

    /// <summary>Copies whichever of <paramref name="fileNames"/> <paramref name="source"/> has.</summary>
    public void CopyFrom(Checkpoint source, IEnumerable<string> fileNames)
    {
        foreach (var name in fileNames)
        {
            var from = Path.Combine(source.Directory, name);
            if (File.Exists(from)) File.Copy(from, Path.Combine(Directory, name), overwrite: true);
        }
    }

    /// <summary>The safetensors weights, sharded as transformers shards them; <paramref name="metadata"/> adds to <c>format: pt</c>.</summary>
    public ShardedSafeTensorsWriter Weights(IReadOnlyList<TensorSpec> specs, long maxShardBytes = ShardedSafeTensorsWriter.DefaultMaxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var all = new Dictionary<string, string> { ["format"] = "pt" };
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>()) all[k] = v;
        return new ShardedSafeTensorsWriter(Directory, specs, all, maxShardBytes);
    }
}
