using System.CommandLine;
using Attune.Server;

namespace Attune.Cli.Commands;

/// <summary><c>attune serve</c>: the OpenAI-compatible server over one or more models.</summary>
public static class ServeCommand
{
    public static Command Build()
    {
        var models = new Option<string[]>("--model")
        {
            Description = "NAME=PATH, where PATH is a checkpoint folder, a .gguf file or BASE+INSTRUCT@λ (repeatable; a bare PATH is named after its folder)",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0: any free one, printed at start)", DefaultValueFactory = _ => 8080 };
        var keyEnv = new Option<string?>("--api-key-env") { Description = "Environment variable holding the API key clients must send as a bearer token" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences decoded together per model", DefaultValueFactory = _ => 8 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait per model; more get 429", DefaultValueFactory = _ => 32 };
        var grace = new Option<double>("--shutdown-grace") { Description = "Seconds running requests may go on after a stop signal", DefaultValueFactory = _ => 10 };
        var cmd = new Command("serve", "Serve models over an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions)")
            { models, host, port, keyEnv, maxBatch, queue, grace };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            string? apiKey = null;
            if (parse.GetValue(keyEnv) is { } variable)
            {
                apiKey = Environment.GetEnvironmentVariable(variable);
                if (string.IsNullOrEmpty(apiKey)) throw new AttuneException(null, "--api-key-env", $"the environment variable {variable} is not set");
            }
            var served = new List<ServedModel>();
            try
            {
                foreach (var spec in parse.GetValue(models)!)
                {
                    var (name, path) = Split(spec);
                    io.Error.WriteLine($"loading {name} from {path}");
                    served.Add(new ServedModel(name, Attune.Merging.ModelSpec.Load(path), Attune.Evaluation.ModelBackends.LocalIdentity(path).Split(':')[1]));
                }
                var options = new ServerOptions
                {
                    Host = parse.GetValue(host)!,
                    Port = parse.GetValue(port),
                    ApiKey = apiKey,
                    MaxBatch = parse.GetValue(maxBatch),
                    QueueCapacity = parse.GetValue(queue),
                    ShutdownGrace = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(grace))),
                    Log = io.Error,
                };
                Run(served, options).GetAwaiter().GetResult();
            }
            finally
            {
                foreach (var m in served) m.Model.Dispose();
            }
            return Program.Success;
        });
        return cmd;
    }

    static async Task Run(List<ServedModel> served, ServerOptions options)
    {
        await using var server = await OpenAiServer.StartAsync(served, options);
        await server.WaitForShutdownAsync();
    }

    /// <summary>NAME=PATH, or a bare PATH named after its last folder (or file, without .gguf).</summary>
    public static (string Name, string Path) Split(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq > 0) return (spec[..eq], spec[(eq + 1)..]);
        if (eq == 0) throw new AttuneException(null, "--model", $"\"{spec}\" has an empty name before =");
        var name = System.IO.Path.GetFileName(spec.TrimEnd('/', System.IO.Path.DirectorySeparatorChar));
        if (name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) name = name[..^5];
        return (name.Length > 0 ? name : spec, spec);
    }
}
