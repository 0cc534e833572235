using System.CommandLine;
using Attune.Models;
using Attune.Server;

namespace Attune.Cli.Commands;

/// <summary><c>attune serve</c>: the OpenAI-compatible server over one or more models.</summary>
public static class ServeCommand
{
    public static Command Build()
    {
        var models = new Option<string[]>("--model")
        {
            Description = "NAME=M, where M is a checkpoint folder, a .gguf file, a Hub id in the local cache or BASE+INSTRUCT@λ (repeatable; a bare M is named after its folder, file or Hub id)",
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
                    var (name, model) = Split(spec);
                    io.Error.WriteLine($"loading {name} from {model.Spec}");
                    served.Add(new ServedModel(name, Attune.Merging.ModelLoader.Load(model), model.Fingerprint()));
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

    /// <summary>NAME=M, or a bare M named by its <see cref="ModelReference.DisplayName"/>; a served model cannot be served again.</summary>
    public static (string Name, ModelReference Model) Split(string spec)
    {
        int eq = spec.IndexOf('=');
        if (eq == 0) throw new AttuneException(null, "--model", $"\"{spec}\" has an empty name before =");
        var model = ModelReference.Parse(eq > 0 ? spec[(eq + 1)..] : spec);
        if (!model.IsLocal) throw new AttuneException(null, "--model", $"{model.Spec} is already served; attune serve runs models in this process");
        return (eq > 0 ? spec[..eq] : model.DisplayName, model);
    }
}
