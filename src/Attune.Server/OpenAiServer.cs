using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Modeling;

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Attune.Server;

/// <summary>A model the server answers for under <see cref="Name"/>; <see cref="Fingerprint"/> (of its files) tells
/// remote clients' caches when the model behind a name has changed.</summary>
public sealed record ServedModel(string Name, LanguageModel Model, string? Fingerprint = null);

public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every /v1 request must carry <c>Authorization: Bearer KEY</c>.</summary>
    public string? ApiKey { get; init; }
    /// <summary>Sequences decoded together per model.</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>Requests that may wait per model beyond the running batch; more get 429.</summary>
    public int QueueCapacity { get; init; } = 32;
    /// <summary>On shutdown, how long running requests may go on before they are cancelled.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Where the server's own lines (listening, stopping) go; null: nowhere.</summary>
    public TextWriter? Log { get; init; }
}

/// <summary>
/// The OpenAI-compatible HTTP server: <c>GET /v1/models</c>, <c>POST /v1/completions</c> and
/// <c>POST /v1/chat/completions</c> (streamed as server-sent events on request) over a continuous
/// batching engine per model, on ASP.NET Core minimal APIs. Errors carry OpenAI's error body.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly Dictionary<string, BatchEngine> _engines;
    readonly ServerOptions _options;
    Dictionary<string, string> _fingerprints = [];
    Task? _enginesStopping;

    /// <summary>The API's base address, e.g. http://127.0.0.1:8080/v1.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    public IReadOnlyDictionary<string, BatchEngine> Engines => _engines;

    OpenAiServer(WebApplication app, Dictionary<string, BatchEngine> engines, ServerOptions options)
    {
        _app = app;
        _engines = engines;
        _options = options;
    }

    public static async Task<OpenAiServer> StartAsync(IReadOnlyList<ServedModel> models, ServerOptions options, CancellationToken cancel = default)
    {
        if (models.Count == 0) throw new AttuneException(null, "--model", "serve at least one model (NAME=PATH)");
        if (!IPAddress.TryParse(options.Host == "localhost" ? "127.0.0.1" : options.Host, out var address))
            throw new AttuneException(null, "--host", $"\"{options.Host}\" is not an IP address");
        if (options.Port is < 0 or > 65535) throw new AttuneException(null, "--port", $"{options.Port} is not a port number");
        var engines = new Dictionary<string, BatchEngine>(StringComparer.Ordinal);
        var fingerprints = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in models)
        {
            if (engines.ContainsKey(m.Name)) throw new AttuneException(null, "--model", $"the name \"{m.Name}\" is given twice");
            engines[m.Name] = new BatchEngine(m.Model, options.MaxBatch, options.QueueCapacity);
            if (m.Fingerprint is not null) fingerprints[m.Name] = m.Fingerprint;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.ShutdownGrace + TimeSpan.FromSeconds(5));
        var app = builder.Build();
        var server = new OpenAiServer(app, engines, options) { _fingerprints = fingerprints };
        server.Map(app);
        app.Lifetime.ApplicationStopping.Register(() => server.StopEngines());
        try { await app.StartAsync(cancel); }
        catch (IOException e)
        {
            foreach (var engine in engines.Values) engine.Dispose();
            throw new AttuneException(null, "--port", $"cannot listen on {options.Host}:{options.Port}: {e.Message}");
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(bound.TrimEnd('/') + "/v1");
        options.Log?.WriteLine($"attune serve: {string.Join(", ", models.Select(m => m.Name))} on {server.BaseAddress}");
        return server;
    }

    /// <summary>Completes when the host stops (Ctrl+C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Stops gracefully: no new requests, running ones get the grace period, then the rest are cancelled.</summary>
    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await (_enginesStopping ?? Task.CompletedTask);
        foreach (var engine in _engines.Values) engine.Dispose();
        await _app.DisposeAsync();
    }

    void StopEngines()
    {
        _options.Log?.WriteLine("attune serve: stopping (running requests get " + _options.ShutdownGrace.TotalSeconds + " s)");
        _enginesStopping = Task.WhenAll(_engines.Values.Select(e => e.StopAsync(_options.ShutdownGrace)));
    }

    void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            try
            {
                if (ctx.Request.Path.StartsWithSegments("/v1")) Authorize(ctx);
                await next(ctx);
            }
            catch (ApiError e) when (!ctx.Response.HasStarted) { await WriteError(ctx, e); }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted) { await WriteError(ctx, new ApiError(e.StatusCode, e.Message)); }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { /* the client went away */ }
        });
        app.MapGet("/health", () => Results.Text("ok"));
        app.MapGet("/v1/models", () => Results.Json(ModelList()));
        app.MapGet("/v1/models/{id}", (string id) => _engines.ContainsKey(id) ? Results.Json(ModelEntry(id))
            : throw new ApiError(404, $"the model '{id}' is not served here", "model", "model_not_found"));
        app.MapPost("/v1/completions", ctx => new CompletionsEndpoint(this, ctx).RunAsync());
        app.MapPost("/v1/chat/completions", ctx => new ChatEndpoint(this, ctx).RunAsync());
        app.MapFallback(ctx => throw new ApiError(404, $"no route {ctx.Request.Method} {ctx.Request.Path}", code: "not_found"));
    }

    void Authorize(HttpContext ctx)
    {
        if (_options.ApiKey is not { } key) return;
        var header = ctx.Request.Headers.Authorization.ToString();
        var given = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(key)))
            throw new ApiError(401, "a valid API key is required (Authorization: Bearer KEY)", code: "invalid_api_key");
    }

    JsonObject ModelList() => new()
    {
        ["object"] = "list",
        ["data"] = new JsonArray(_engines.Keys.Select(k => (JsonNode)ModelEntry(k)).ToArray()),
    };

    JsonObject ModelEntry(string name) => new()
    {
        ["id"] = name,
        ["object"] = "model",
        ["created"] = 0,
        ["owned_by"] = "attune",
        ["max_model_len"] = _engines[name].Model.Config.MaxPositionEmbeddings,
        ["attune_fingerprint"] = _fingerprints.GetValueOrDefault(name),
    };

    /// <summary>The engine for the request's 'model'.</summary>
    internal (string Name, BatchEngine Engine) Engine(ApiRequest request)
    {
        var name = request.RequiredString("model");
        return _engines.TryGetValue(name, out var engine) ? (name, engine)
            : throw ApiError.BadRequest($"the model '{name}' is not served here (served: {string.Join(", ", _engines.Keys)})", "model", "model_not_found");
    }

    /// <summary>
    /// Queues the requests of one HTTP call, all or none: a full queue is 429 with Retry-After, more
    /// choices than the engine can ever hold is 400, shutdown is 503. The returned source cancels them;
    /// the endpoint cancels it when it is done, so nothing outlives its request.
    /// </summary>
    internal static (List<ChannelReaderOf> Readers, CancellationTokenSource Cancel) Submit(BatchEngine engine, IReadOnlyList<CompletionRequest> requests, HttpContext ctx)
    {
        var linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        switch (engine.Submit(requests, linked.Token, out var events))
        {
            case SubmitResult.Accepted:
                return (events.Select(e => new ChannelReaderOf(e)).ToList(), linked);
            case SubmitResult.QueueFull:
                linked.Dispose();
                ctx.Response.Headers.RetryAfter = "1";
                throw new ApiError(429, "the server is busy; retry after a second", code: "rate_limit_exceeded", type: "rate_limit_error");
            case SubmitResult.TooLarge:
                linked.Dispose();
                throw ApiError.BadRequest($"the request asks for {requests.Count} completions (prompts × n); this server runs at most {engine.QueueCapacity + engine.MaxBatch} at once (--queue + --max-batch)", "prompt");
            default:
                linked.Dispose();
                throw new ApiError(503, "the server is shutting down", code: "unavailable", type: "server_error");
        }
    }

    internal static async Task WriteError(HttpContext ctx, ApiError e)
    {
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(e.Body().ToJsonString());
    }

    internal static string NewId(string prefix) => prefix + Guid.NewGuid().ToString("N")[..24];
}

/// <summary>One request's event stream, read by its endpoint.</summary>
sealed record ChannelReaderOf(System.Threading.Channels.ChannelReader<CompletionEvent> Events);
