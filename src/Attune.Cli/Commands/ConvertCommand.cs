using System.CommandLine;
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
                var ggml = (type ?? "f16").ToLowerInvariant() switch
                {
                    "f32" => GgmlType.F32, "f16" => GgmlType.F16, "bf16" => GgmlType.BF16, "q8_0" => GgmlType.Q8_0,
                    var s => throw new AttuneException(null, "--dtype", $"\"{s}\" is not one of f32, f16, bf16, q8_0"),
                };
                CliProgress.Run(io, $"convert to {ggml}", p => GgufConverter.ToGguf(from, to, ggml, p));
            }
            else if (File.Exists(from))
            {
                var dt = (type ?? "f32").ToLowerInvariant() switch
                {
                    "f32" => DType.F32, "f16" => DType.F16, "bf16" => DType.BF16,
                    var s => throw new AttuneException(null, "--dtype", $"\"{s}\" is not one of f32, f16, bf16 for a checkpoint folder"),
                };
                CliProgress.Run(io, $"convert to {dt.SafeTensorsName()}", p => GgufConverter.ToCheckpoint(from, to, dt, p));
            }
            else throw new AttuneException(from, "not found");
            io.Out.WriteLine($"wrote {to}");
            return Program.Success;
        });
        return cmd;
    }
}
