using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Tensors;
using Attune.Text;

namespace Attune.Modeling;

/// <summary>
/// Writes a randomly initialised model as a complete checkpoint folder, the way transformers
/// initialises one: matrices and embeddings from N(0, initializer_range²), norms at the identity, biases at 0;
/// plus a byte-level BPE tokenizer trained on Attune's seed text, so the folder works everywhere a
/// downloaded checkpoint does. The folder appears under its name only when complete.
/// </summary>
public static class ModelInitializer
{
    /// <summary>
    /// Writes a randomly initialised model; its byte-level BPE tokenizer is trained on
    /// <paramref name="tokenizerCorpus"/> (default: Attune's seed text).
    /// </summary>
    public static ModelConfig Write(string outDir, JsonObject configTemplate, ulong seed, DType dtype,
        IProgress<double>? progress = null, long maxShardBytes = ShardedSafeTensorsWriter.DefaultMaxShardBytes, IEnumerable<string>? tokenizerCorpus = null)
    {
        if (dtype is not (DType.F32 or DType.F16 or DType.BF16))
            throw new AttuneException(null, "--dtype", $"{dtype} is not a weight dtype (f32, f16, bf16)");
        var json = (JsonObject)configTemplate.DeepClone();
        int vocabSize = json["vocab_size"]!.GetValue<int>();
        var specials = BpeTrainer.DefaultSpecialTokens;
        var (vocab, merges) = BpeTrainer.Train(tokenizerCorpus ?? BpeTrainer.SeedCorpus(), Math.Min(vocabSize, 1024), specials.Length);
        int endOfText = vocab.Count, imEnd = vocab.Count + 2;
        json["bos_token_id"] = endOfText;
        json["eos_token_id"] = endOfText;
        json["torch_dtype"] = dtype.TorchName();
        var config = ModelConfig.Parse(json, "config.json");

        CheckpointWriter.Write(outDir, folder =>
        {
            folder.Config(json, dtype);
            folder.Json(Checkpoint.GenerationConfigFileName, new JsonObject
            {
                ["bos_token_id"] = endOfText,
                ["eos_token_id"] = new JsonArray(endOfText, imEnd),
            });
            folder.Json(Checkpoint.TokenizerFileName, BpeTrainer.TokenizerJson(vocab, merges, specials), indented: false);
            folder.Json(Checkpoint.TokenizerConfigFileName, BpeTrainer.TokenizerConfigJson(config.MaxPositionEmbeddings));
            WriteWeights(folder, config, seed, dtype, json["initializer_range"]?.GetValue<double>() ?? 0.02, progress, maxShardBytes);
        });
        return config;
    }

    static void WriteWeights(CheckpointWriter folder, ModelConfig config, ulong seed, DType dtype, double std, IProgress<double>? progress, long maxShardBytes)
    {
        var tensors = TensorLayout.Expected(config).Where(t => !t.Optional).ToList();
        var specs = tensors.Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList();
        long total = specs.Sum(s => s.ByteLength), done = 0;
        var rng = new Rng(seed);
        using var writer = folder.Weights(specs, maxShardBytes);
        foreach (var spec in specs)
        {
            long n = spec.Shape.Aggregate(1L, (a, d) => a * d);
            var bytes = new byte[spec.ByteLength];
            // Norms start as the identity: weight 1, or 0 where the family applies 1 + w (Gemma).
            Func<float> value = spec.Name.EndsWith("norm.weight", StringComparison.Ordinal) ? () => config.NormPlusOne ? 0f : 1f
                : spec.Name.EndsWith(".bias", StringComparison.Ordinal) ? () => 0f
                : () => (float)(rng.NextGaussian() * std);
            switch (dtype)
            {
                case DType.F32:
                {
                    var dst = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                    for (long i = 0; i < n; i++) dst[(int)i] = value();
                    break;
                }
                case DType.F16:
                {
                    var dst = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                    for (long i = 0; i < n; i++) dst[(int)i] = (Half)value();
                    break;
                }
                default:
                {
                    var dst = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                    for (long i = 0; i < n; i++) dst[(int)i] = BFloat16.FromSingle(value());
                    break;
                }
            }
            writer.Write(spec.Name, bytes);
            done += spec.ByteLength;
            progress?.Report((double)done / total);
        }
        writer.Commit();
    }
}
