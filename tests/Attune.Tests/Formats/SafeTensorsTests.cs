using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Tests.Formats;

public class SafeTensorsTests
{
    static byte[] Bytes<T>(params T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    /// <summary>Builds a file by hand: 8-byte length, header JSON, data.</summary>
    static byte[] RawFile(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)h.Length);
        h.CopyTo(file, 8);
        data.CopyTo(file, 8 + h.Length);
        return file;
    }

    [Fact]
    public void Written_tensors_read_back_as_zero_copy_views_of_every_dtype()
    {
        using var tmp = new TempDir();
        var path = tmp["model.safetensors"];
        var tensors = new (TensorSpec, byte[])[]
        {
            (new("f32", DType.F32, [2, 3]), Bytes(1f, 2f, 3f, 4f, 5f, -6.5f)),
            (new("f16", DType.F16, [2]), Bytes((Half)1.5f, (Half)(-2f))),
            (new("bf16", DType.BF16, [3]), Bytes(new BFloat16(BFloat16.FromSingle(0.5f)), new BFloat16(BFloat16.FromSingle(-3f)), new BFloat16(BFloat16.FromSingle(1e20f)))),
            (new("f64", DType.F64, [1]), Bytes(Math.PI)),
            (new("i64", DType.I64, [2]), Bytes(long.MinValue, 7L)),
            (new("i32", DType.I32, [1, 1]), Bytes(-5)),
            (new("i16", DType.I16, [2]), Bytes<short>(-1, 300)),
            (new("i8", DType.I8, [2]), Bytes<sbyte>(-128, 127)),
            (new("u8", DType.U8, [3]), Bytes<byte>(0, 1, 255)),
            (new("bool", DType.Bool, [2]), Bytes(true, false)),
            (new("empty", DType.F32, [0, 4]), []),
            (new("scalar", DType.F32, []), Bytes(42f)),
        };
        SafeTensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ü" });

        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal("ü", f.Metadata["note"]);
        Assert.Equal(tensors.Select(t => t.Item1.Name), f.Entries.Select(e => e.Name));
        foreach (var (spec, data) in tensors)
        {
            var v = f.GetView(spec.Name);
            Assert.Equal(spec.DType, v.DType);
            Assert.Equal(spec.Shape, v.Shape);
            Assert.Equal(data, v.Bytes.ToArray());
        }
        Assert.Equal(new[] { 1f, 2f, 3f, 4f, 5f, -6.5f }, f.GetView("f32").As<float>().ToArray());
        Assert.Equal(-2f, (float)f.GetView("f16").As<Half>()[1]);
        Assert.Equal(-3f, (float)f.GetView("bf16").As<BFloat16>()[1]);
        Assert.Equal(new[] { true, false }, f.GetView("bool").As<bool>().ToArray());
        Assert.Equal(long.MinValue, f.GetView("i64").As<long>()[0]);
        Assert.Throws<InvalidOperationException>(() => f.GetView("f32").As<Half>());
        // The data area starts 8-byte aligned, as the format recommends.
        Assert.Equal(0, f.Entries[0].Offset % 8);
    }

    [Fact]
    public void A_killed_write_leaves_no_file_under_the_real_name()
    {
        using var tmp = new TempDir();
        var path = tmp["model.safetensors"];
        using (var w = new SafeTensorsWriter(path, [new("a", DType.F32, [2]), new("b", DType.F32, [1])]))
        {
            w.Write("a", Bytes(1f, 2f));
            // disposed before b and Commit: as if the process died
        }
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void Sharded_write_splits_by_size_and_the_index_reads_as_one_namespace()
    {
        using var tmp = new TempDir();
        var specs = Enumerable.Range(0, 7).Select(i => new TensorSpec($"t{i}", DType.F32, [100])).ToList();
        using (var w = new ShardedSafeTensorsWriter(tmp.Path, specs, new Dictionary<string, string> { ["format"] = "pt" }, maxShardBytes: 1000))
        {
            foreach (var s in specs) w.Write(s.Name, Bytes(Enumerable.Repeat((float)s.Name[1], 100).ToArray()));
            w.Commit();
            Assert.Equal(4, w.ShardFiles.Count);
        }
        Assert.True(File.Exists(tmp["model-00001-of-00004.safetensors"]));
        Assert.True(File.Exists(tmp[SafeTensorsIndex.IndexFileName]));
        Assert.False(File.Exists(tmp[SafeTensorsIndex.SingleFileName]));
        using var idx = SafeTensorsIndex.Open(tmp.Path);
        Assert.Equal(specs.Select(s => s.Name), idx.Names);
        Assert.Equal((float)'5', idx.GetView("t5").As<float>()[99]);
        Assert.Equal(4, idx.Files.Count);
    }

    [Fact]
    public void A_checkpoint_that_fits_in_one_shard_is_a_single_model_safetensors()
    {
        using var tmp = new TempDir();
        using (var w = new ShardedSafeTensorsWriter(tmp.Path, [new("x", DType.F16, [4])]))
        {
            w.Write("x", new byte[8]);
            w.Commit();
        }
        Assert.Equal([SafeTensorsIndex.SingleFileName], Directory.GetFiles(tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Index_pointing_to_a_missing_shard_names_the_shard()
    {
        using var tmp = new TempDir();
        SafeTensorsWriter.Save(tmp["a.safetensors"], [(new("x", DType.F32, [1]), Bytes(1f))]);
        File.WriteAllText(tmp[SafeTensorsIndex.IndexFileName],
            """{"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}""");
        var e = Assert.Throws<AttuneException>(() => SafeTensorsIndex.Open(tmp.Path));
        Assert.Contains("missing shard b.safetensors", e.Message);
        Assert.Contains("weight_map.y", e.Message);
    }

    [Fact]
    public void Index_naming_a_tensor_its_shard_lacks_is_an_error()
    {
        using var tmp = new TempDir();
        SafeTensorsWriter.Save(tmp["a.safetensors"], [(new("x", DType.F32, [1]), Bytes(1f))]);
        File.WriteAllText(tmp[SafeTensorsIndex.IndexFileName], """{"weight_map": {"z": "a.safetensors"}}""");
        var e = Assert.Throws<AttuneException>(() => SafeTensorsIndex.Open(tmp.Path));
        Assert.Contains("weight_map.z", e.Message);
    }

    public static TheoryData<string, byte[], string> Malformed()
    {
        var ok = Bytes(1f, 2f);
        var data = new TheoryData<string, byte[], string>
        {
            { "too short", [1, 2, 3], "too short" },
            { "header past end", Truncate(RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", ok), 20), "runs past the end" },
            { "header over bound", LengthOnly(200L * 1024 * 1024), "above the" },
            { "invalid json", RawFile("""{"a":{"dtype":"F32",""", ok), "not valid JSON" },
            { "not an object", RawFile("[1,2]", ok), "not a JSON object" },
            { "unknown dtype", RawFile("""{"a":{"dtype":"F8_E4M3X","shape":[2],"data_offsets":[0,8]}}""", ok), "unknown dtype \"F8_E4M3X\"" },
            { "size mismatch", RawFile("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", ok), "is 12 bytes but data_offsets span 8" },
            { "outside data", RawFile("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", ok), "run past the 8-byte data area" },
            { "overlap", RawFile("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", ok), "overlaps tensor" },
            { "duplicate", RawFile("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", ok), "appears twice" },
            { "negative dim", RawFile("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", ok), "shape[0]" },
            { "overflowing shape", RawFile("""{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", ok), "more elements" },
            { "reversed offsets", RawFile("""{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""", ok), "begin <= end" },
            { "missing offsets", RawFile("""{"a":{"dtype":"F32","shape":[2]}}""", ok), "data_offsets" },
            { "bad metadata", RawFile("""{"__metadata__":{"k":1}}""", ok), "__metadata__.k" },
        };
        return data;
    }

    static byte[] Truncate(byte[] b, int n) => b[..n];

    static byte[] LengthOnly(long headerLength)
    {
        var b = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)headerLength);
        return b;
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_files_give_an_error_naming_the_file_and_problem(string what, byte[] file, string expected)
    {
        using var tmp = new TempDir();
        var path = tmp[$"{what.Replace(' ', '_')}.safetensors"];
        File.WriteAllBytes(path, file);
        var e = Assert.Throws<AttuneException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void Errors_about_a_tensor_name_the_tensor()
    {
        using var tmp = new TempDir();
        var path = tmp["m.safetensors"];
        File.WriteAllBytes(path, RawFile("""{"model.layers.0.mlp.up_proj.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", Bytes(1f, 2f)));
        var e = Assert.Throws<AttuneException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("tensor model.layers.0.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void Truncated_and_bit_flipped_files_never_crash_or_read_out_of_bounds()
    {
        using var tmp = new TempDir();
        var good = tmp["good.safetensors"];
        SafeTensorsWriter.Save(good,
        [
            (new("a", DType.F32, [3, 5]), new byte[60]),
            (new("b", DType.BF16, [7]), new byte[14]),
            (new("c", DType.I64, [2]), new byte[16]),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(good);
        var rng = new Random(7);
        var path = tmp["bad.safetensors"];
        for (int trial = 0; trial < 400; trial++)
        {
            byte[] bad = trial < bytes.Length ? bytes[..trial] : (byte[])bytes.Clone();
            if (bad.Length > 0 && (trial >= bytes.Length || trial % 3 == 0))
                for (int k = 0; k < 1 + trial % 4; k++)
                    bad[rng.Next(Math.Min(bad.Length, 8 + 200))] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(path, bad);
            try
            {
                using var f = SafeTensorsFile.Open(path);
                // Whatever parsed must be readable within the file.
                foreach (var e in f.Entries)
                {
                    Assert.True(e.Offset + e.ByteLength <= f.FileLength);
                    _ = f.GetView(e.Name).Bytes.ToArray();
                }
            }
            catch (AttuneException) { }
        }
    }
}
