using Attune.Checkpoints;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Tests.Formats;

/// <summary>Weights read into memory (for inference) are the mapped file's bytes; a file that shrinks under the reader is one line.</summary>
public class FileBytesTests
{
    [Fact]
    public void A_file_read_into_memory_holds_the_mapped_bytes_and_models_load_either_way()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["m"], Presets.Find("tiny", "qwen3").Config, seed: 2, DType.BF16);
        GgufConverter.ToGguf(tmp["m"], tmp["m.gguf"], GgmlType.Q8_0);
        using (var mapped = SafeTensorsFile.Open(tmp["m/model.safetensors"]))
        using (var read = SafeTensorsFile.Open(tmp["m/model.safetensors"], inMemory: true))
            foreach (var e in mapped.Entries)
                Assert.True(mapped.GetView(e.Name).Bytes.SequenceEqual(read.GetView(e.Name).Bytes), e.Name);
        using (var mapped = GgufFile.Open(tmp["m.gguf"]))
        using (var read = GgufFile.Open(tmp["m.gguf"], inMemory: true))
            foreach (var t in mapped.Tensors)
                Assert.True(mapped.Bytes(t).SequenceEqual(read.Bytes(t)), t.Name);
        // LanguageModel.Load reads these small weights into memory; the logits are the mapped model's.
        using var inMemory = LanguageModel.Load(tmp["m"]);
        using var mappedCkpt = ModelWeights.FromCheckpoint(Checkpoint.Open(tmp["m"]), ownCheckpoint: true);
        var a = inMemory.Transformer;
        var b = new Transformer(mappedCkpt);
        int[] ids = [5, 9, 2, 7];
        Assert.Equal(a.Forward(a.NewCache(4), ids).Row(0).ToArray(), b.Forward(b.NewCache(4), ids).Row(0).ToArray());
        Assert.True(FileBytes.WeightsFitInMemory(1 << 20));
        var e2 = Assert.Throws<AttuneException>(() => FileBytes.Open(tmp["m.gguf"], new FileInfo(tmp["m.gguf"]).Length + 100, inMemory: true));
        Assert.Contains("cannot read file", e2.Message);
    }
}
