using System.Text;
using Attune.Checkpoints;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Tasks;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Text;
using Attune.Training;

namespace Attune.Tests.Formats;

/// <summary>A tiny checkpoint folder shared by the tests that spoil one of its files.</summary>
public sealed class TinyCheckpoint : IDisposable
{
    readonly TempDir _tmp = new();
    public string Folder => _tmp["tiny"];

    public TinyCheckpoint() => ModelInitializer.Write(Folder, Presets.Find("tiny", "llama").Config, seed: 3, DType.F32);

    /// <summary>A copy of the folder, in a scratch folder of the caller's.</summary>
    public string CopyTo(TempDir tmp)
    {
        var dir = tmp["copy"];
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Folder)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    public void Dispose() => _tmp.Dispose();
}

/// <summary>
/// A byte sequence that is not UTF-8, in any file Attune reads as text, is one clear error naming the file
/// and the place — not a U+FFFD silently put in its place, and not an InvalidOperationException from the
/// JSON reader's late transcoding.
/// </summary>
public class InvalidUtf8Tests(TinyCheckpoint tiny) : IClassFixture<TinyCheckpoint>
{
    static readonly byte[] Bad = [0xC3, 0x28]; // a two-byte lead followed by a byte that cannot continue it

    /// <summary>Replaces the first <paramref name="marker"/> in the file with the invalid bytes; returns their offset.</summary>
    static long Spoil(string path, string marker)
    {
        var bytes = File.ReadAllBytes(path);
        int at = bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(marker));
        Assert.True(at >= 0, $"{marker} not in {path}");
        var spoiled = bytes[..at].Concat(Bad).Concat(bytes[(at + marker.Length)..]).ToArray();
        File.WriteAllBytes(path, spoiled);
        return at;
    }

    static AttuneException Refused(Action load, string path)
    {
        var e = Assert.Throws<AttuneException>(load);
        Assert.True(e.Message.Contains(path) && e.Message.Contains("not valid UTF-8"), e.Message);
        Assert.DoesNotContain("\n", e.Message);
        return e;
    }

    [Fact]
    public void SafeTensors_header_with_invalid_utf8_is_a_clean_error()
    {
        using var tmp = new TempDir();
        var header = Encoding.UTF8.GetBytes("{\"wXX\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        header[3] = 0xFF;
        var file = tmp["bad.safetensors"];
        File.WriteAllBytes(file, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        var e = Refused(() => SafeTensorsFile.Open(file).Dispose(), file);
        Assert.Equal("header", e.Location);
        Assert.Contains("byte 11", e.Problem); // 8 bytes of length, then `{"w`
    }

    [Fact]
    public void Gguf_string_with_invalid_utf8_is_a_clean_error()
    {
        using var tmp = new TempDir();
        var gguf = tmp["m.gguf"];
        GgufConverter.ToGguf(tiny.Folder, gguf, GgmlType.F32);
        long at = Spoil(gguf, "llama");
        var e = Refused(() => LanguageModel.Load(gguf).Dispose(), gguf);
        Assert.Contains($"byte {at}", e.Problem);
    }

    [Theory]
    [InlineData(Checkpoint.ConfigFileName, "LlamaForCausalLM")]
    [InlineData(Checkpoint.GenerationConfigFileName, "eos_token_id")]
    [InlineData(Checkpoint.TokenizerFileName, "\"model\"")]
    [InlineData(Checkpoint.TokenizerConfigFileName, "chat_template")]
    [InlineData(SafeTensorsIndex.IndexFileName, "weight_map")]
    public void Checkpoint_json_file_with_invalid_utf8_is_a_clean_error(string name, string marker)
    {
        using var tmp = new TempDir();
        var dir = tiny.CopyTo(tmp);
        if (name == SafeTensorsIndex.IndexFileName)
            File.WriteAllText(Path.Combine(dir, name), "{\"metadata\": {}, \"weight_map\": {}}\n");
        Spoil(Path.Combine(dir, name), marker);
        var e = Refused(() => LanguageModel.Load(dir).Dispose(), Path.Combine(dir, name));
        Assert.StartsWith("line ", e.Location);
    }

    [Fact]
    public void Jsonl_data_with_invalid_utf8_names_the_line()
    {
        using var tmp = new TempDir();
        var data = tmp["sft.jsonl"];
        File.WriteAllText(data, "{\"prompt\": \"a\", \"completion\": \"b\", \"text\": \"ab\"}\n\n{\"prompt\": \"c\", \"completion\": \"BAD\"}\n");
        Spoil(data, "BAD");
        var tokenizer = Tokenizer.Load(tiny.Folder);
        var e = Refused(() => SftData.Load(data, tokenizer, new HashSet<int> { 0 }, 0, 64), data);
        Assert.Equal("line 3", e.Location);
        Assert.Equal("line 3", Refused(() => PretrainData.ReadDocuments(data).ToList(), data).Location);
        Assert.Equal("line 3", Refused(() => JsonLines.ReadFile(data).ToList(), data).Location);
    }

    [Fact]
    public void Plain_text_training_data_with_invalid_utf8_names_the_line()
    {
        using var tmp = new TempDir();
        var text = tmp["corpus.txt"];
        File.WriteAllText(text, "one\ntwo\nthree BAD\n");
        Spoil(text, "BAD");
        Assert.Equal("line 3", Refused(() => PretrainData.ReadDocuments(text).ToList(), text).Location);
    }

    [Fact]
    public void Task_yaml_with_invalid_utf8_names_the_line()
    {
        using var tmp = new TempDir();
        var yaml = tmp["task.yaml"];
        File.WriteAllText(yaml, "task: t\ndataset_path: data.jsonl\ndoc_to_text: \"BAD\"\n");
        Spoil(yaml, "BAD");
        Assert.Equal("line 3", Refused(() => TaskConfig.Load(yaml), yaml).Location);
    }

    [Fact]
    public void IfEval_input_with_invalid_utf8_names_the_line()
    {
        using var tmp = new TempDir();
        var input = tmp["input.jsonl"];
        File.WriteAllText(input, "{\"key\": 1, \"prompt\": \"Write BAD\", \"instruction_id_list\": [], \"kwargs\": []}\n");
        Spoil(input, "BAD");
        Assert.Equal("line 1", Refused(() => IfSuite.Load(input), input).Location);
    }

    [Fact]
    public void Cli_reports_invalid_utf8_in_one_line_with_exit_code_2()
    {
        using var tmp = new TempDir();
        var dir = tiny.CopyTo(tmp);
        var config = Path.Combine(dir, Checkpoint.ConfigFileName);
        Spoil(config, "LlamaForCausalLM");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Attune.Cli.Program.Run(["inspect", dir], new StringReader(""), stdout, stderr);
        Assert.Equal(Attune.Cli.Program.BadInput, code);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith($"error: {config}: line ", lines[0]);
        Assert.Contains("not valid UTF-8", lines[0]);
    }
}
