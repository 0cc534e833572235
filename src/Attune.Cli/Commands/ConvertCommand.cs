using System.CommandLine;
using Attune.Checkpoints;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Cli.Commands;

/// <summary><c>attune convert</c>: checkpoint folder ↔ GGUF.</summary>
public static class ConvertCommand
{
    public static Command Build()
    {
        var input = new Option<string>("--in") { Description = "A checkpoint folder or a .gguf file", Required = true };
        var output = new Option<string>("--out") { Description = "A .gguf file (from a folder) or a folder (from a .gguf)", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Matrix type: f32|f16|bf16|q8_0 (to GGUF, default f16); f32|f16|bf16 (to a folder, default f32)" };
        var cmd = new Command("convert", "Convert a checkpoint folder to GGUF (llama.cpp) or a GGUF back to a folder") { input, output, dtype };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var from = parse.GetValue(input)!;
            var to = parse.GetValue(output)!;
            var type = parse.GetValue(dtype);
            if (Directory.Exists(from))
            {
                if (!to.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                    throw new AttuneException(to, "converting a folder writes a .gguf file; name the output *.gguf");
                // GGUF adds llama.cpp's 8-bit blocks to the float types.
                var ggml = (type ?? "f16").Trim().Equals("q8_0", StringComparison.OrdinalIgnoreCase) ? GgmlType.Q8_0 : DTypes.ParseFloat(type ?? "f16") switch
                {
                    DType.F32 => GgmlType.F32, DType.F16 => GgmlType.F16, _ => GgmlType.BF16,
                };
                CliProgress.Run(io, $"convert to {ggml}", p => GgufConverter.ToGguf(from, to, ggml, p));
            }
            else if (File.Exists(from))
            {
                var dt = DTypes.ParseFloat(type ?? "f32");
                CliProgress.Run(io, $"convert to {dt.SafeTensorsName()}", p => GgufConverter.ToCheckpoint(from, to, dt, p));
            }
            else throw new AttuneException(from, "not found");
            io.Out.WriteLine($"wrote {to}");
            return Program.Success;
        });
        return cmd;
    }
}
