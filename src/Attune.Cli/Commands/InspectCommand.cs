using System.CommandLine;
using Attune.Formats;
using Attune.Tensors;
using Attune.Text;
using Spectre.Console;

namespace Attune.Cli.Commands;

/// <summary><c>attune inspect</c>: open and check a checkpoint folder or safetensors file, and describe it.</summary>
public static class InspectCommand
{
    public static Command Build()
    {
        var path = new Argument<string>("path") { Description = "A checkpoint folder, a .safetensors file, or a model.safetensors.index.json" };
        var tensors = new Option<bool>("--tensors") { Description = "List every tensor with its dtype and shape" };
        var cmd = new Command("inspect", "Check a checkpoint folder or safetensors file and describe its config, tensors and tokenizer") { path, tensors };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(io.Out), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
            var p = parse.GetValue(path)!;
            if (Directory.Exists(p) && File.Exists(Path.Combine(p, Checkpoint.ConfigFileName)))
            {
                using var ckpt = Checkpoint.Open(p);
                DescribeConfig(console, ckpt.Config);
                DescribeTensors(console, ckpt.Weights, parse.GetValue(tensors));
                if (ckpt.TokenizerPath is not null)
                {
                    var tok = Tokenizer.Load(p);
                    console.WriteLine($"tokenizer: {tok.VocabSize} ids, {tok.Model.MergeCount} merges, {tok.AddedTokens.Count} added tokens, bos={tok.BosId?.ToString() ?? "-"}, eos={tok.EosId?.ToString() ?? "-"}");
                    if (tok.VocabSize > ckpt.Config.VocabSize)
                        throw new AttuneException(ckpt.TokenizerPath, $"tokenizer has ids up to {tok.VocabSize - 1} but config vocab_size is {ckpt.Config.VocabSize}");
                }
                console.WriteLine("ok");
            }
            else
            {
                using var index = SafeTensorsIndex.Open(p);
                DescribeTensors(console, index, parse.GetValue(tensors));
                console.WriteLine("ok");
            }
            return Program.Success;
        });
        return cmd;
    }

    /// <summary>A table row of plain text (tensor shapes like [2, 3] are not Spectre markup).</summary>
    static void Row(Table t, params string[] cells) => t.AddRow(cells.Select(c => (Spectre.Console.Rendering.IRenderable)new Spectre.Console.Text(c)).ToArray());

    static void DescribeConfig(IAnsiConsole console, ModelConfig c)
    {
        var t = new Table().AddColumn("config").AddColumn("value");
        Row(t, "architecture", c.ArchitectureName);
        Row(t, "hidden / layers", $"{c.HiddenSize} / {c.NumLayers}");
        Row(t, "heads / kv heads / head dim", $"{c.NumHeads} / {c.NumKvHeads} / {c.HeadDim}");
        Row(t, "intermediate", c.IntermediateSize.ToString());
        Row(t, "vocab", c.VocabSize.ToString());
        Row(t, "rope theta", c.RopeTheta.ToString("G"));
        Row(t, "rope scaling", c.RopeScaling is null ? "-" : $"{c.RopeScaling.Type} ×{c.RopeScaling.Factor}");
        Row(t, "tied embeddings", c.TieWordEmbeddings ? "yes" : "no");
        console.Write(t);
    }

    static void DescribeTensors(IAnsiConsole console, SafeTensorsIndex index, bool all)
    {
        long bytes = 0, elements = 0;
        foreach (var n in index.Names)
        {
            var e = index.Entry(n);
            bytes += e.ByteLength;
            elements += e.ElementCount;
        }
        console.WriteLine($"{index.Names.Count} tensors in {index.Files.Count} file(s), {elements:N0} parameters, {bytes / (1024.0 * 1024):F1} MiB");
        if (!all) return;
        var t = new Table().AddColumn("tensor").AddColumn("dtype").AddColumn("shape");
        foreach (var n in index.Names)
        {
            var e = index.Entry(n);
            Row(t, n, e.DType.SafeTensorsName(), $"[{string.Join(", ", e.Shape)}]");
        }
        console.Write(t);
    }
}
