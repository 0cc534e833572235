using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Models;
using Attune.Modeling;
using OpenAI;
using OpenAI.Chat;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Attune.Evaluation;

/// <summary>How a remote model is reached.</summary>
public sealed record RemoteOptions
{
    /// <summary>The environment variable holding the API key (sent as a bearer token, never logged); null: no key.
    /// There is no default variable, so that a key meant for one service is never sent to another server.</summary>
    public string? ApiKeyEnv { get; init; }
    /// <summary>Requests in flight at once.</summary>
    public int MaxConcurrency { get; init; } = 4;
    /// <summary>Limit on one attempt.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Retries after a 429, a 5xx, a timeout or a failed connection.</summary>
    public int MaxRetries { get; init; } = 5;
    /// <summary>First backoff; it doubles per retry, with jitter, unless the server sends Retry-After.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>
/// A model behind an OpenAI-compatible server (attune serve, vLLM, llama.cpp's server, TGI), reached
/// through the OpenAI .NET client: generation through chat or completions, log-likelihood through
/// completions with <c>echo</c> and <c>logprobs</c>. Transient failures (429, 5xx, timeouts, refused
/// connections) are retried with backoff by a Polly pipeline; at most <see cref="RemoteOptions.MaxConcurrency"/>
/// requests are in flight.
/// </summary>
public sealed class RemoteBackend : IModelBackend
{
    readonly ChatClient _chat;
    readonly ResiliencePipeline _resilience;
    readonly SemaphoreSlim _slots;

    public Uri Endpoint { get; }
    public string ModelName { get; }
    /// <summary>
    /// What identifies the model's answers: the address and name, and, when the server is <c>attune serve</c>,
    /// the fingerprint of the files it serves under that name (so a re-merged model behind the same name is
    /// not answered from a cache of the old one). Other servers give no fingerprint: clear the cache, or
    /// serve each model under its own name, when a name changes what it stands for.
    /// </summary>
    public string Identity => _identity.Value;
    readonly Lazy<string> _identity;
    /// <summary>How errors name the model (without asking the server anything).</summary>
    string Where => $"{Endpoint}#{ModelName}";
    /// <summary>Attempts that failed and were retried (for reports and tests).</summary>
    public int Retries => _retries;
    int _retries;

    RemoteBackend(Uri endpoint, string model, string apiKey, RemoteOptions options)
    {
        Endpoint = endpoint;
        ModelName = model;
        _identity = new Lazy<string>(() => $"remote:{Endpoint}#{ModelName}" + (Fingerprint() is { } f ? "@" + f : ""));
        var clientOptions = new OpenAIClientOptions
        {
            Endpoint = endpoint,
            RetryPolicy = new ClientRetryPolicy(0), // retries are Polly's, below
            NetworkTimeout = System.Threading.Timeout.InfiniteTimeSpan, // and so is the timeout
        };
        var credential = new ApiKeyCredential(apiKey);
        _chat = new ChatClient(model, credential, clientOptions);
        _slots = new SemaphoreSlim(options.MaxConcurrency);
        _resilience = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.BaseDelay,
                ShouldHandle = new PredicateBuilder().Handle<ClientResultException>(IsTransient).Handle<HttpRequestException>().Handle<TimeoutRejectedException>(),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Exception)),
                OnRetry = _ => { Interlocked.Increment(ref _retries); return ValueTask.CompletedTask; },
            })
            .AddTimeout(options.Timeout)
            .Build();
    }

    /// <summary>Opens <c>http(s)://host:port/v1#name</c> (parsed as a <see cref="ModelReference"/>).</summary>
    public static RemoteBackend Open(string spec, RemoteOptions options) =>
        ModelReference.Parse(spec) is ModelReference.Remote r ? Open(r, options)
            : throw new AttuneException(null, "--model", $"\"{spec}\" is not a served model (http://host:port/v1#NAME)");

    /// <summary>Opens a served model; the key comes from <see cref="RemoteOptions.ApiKeyEnv"/> when set.</summary>
    public static RemoteBackend Open(ModelReference.Remote model, RemoteOptions options)
    {
        if (options.MaxConcurrency < 1) throw new AttuneException(null, "--concurrency", "must be ≥ 1");
        // Servers without authentication still need some key for the client: a placeholder is sent.
        var key = options.ApiKeyEnv is { } variable ? Environment.GetEnvironmentVariable(variable) : null;
        if (options.ApiKeyEnv is { } v && string.IsNullOrEmpty(key)) throw new AttuneException(null, "--api-key-env", $"the environment variable {v} is not set");
        return new RemoteBackend(model.Endpoint, model.Name, string.IsNullOrEmpty(key) ? "none" : key, options);
    }

    /// <summary>The served model's <c>attune_fingerprint</c> from <c>GET /models</c>, when the server gives one.</summary>
    string? Fingerprint()
    {
        try
        {
            using var message = _chat.Pipeline.CreateMessage();
            message.Request.Method = "GET";
            message.Request.Uri = new Uri(Endpoint.ToString().TrimEnd('/') + "/models");
            message.Apply(new RequestOptions { CancellationToken = new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token });
            _chat.Pipeline.Send(message);
            if (message.Response is not { IsError: false } response) return null;
            return (JsonNode.Parse(response.Content.ToString())?["data"] as JsonArray)?
                .FirstOrDefault(m => m?["id"]?.ToString() == ModelName)?["attune_fingerprint"]?.ToString();
        }
        catch (Exception e) when (e is ClientResultException or HttpRequestException or JsonException or OperationCanceledException or InvalidOperationException)
        {
            return null; // no fingerprint; the identity is the address and name
        }
    }

    static bool IsTransient(ClientResultException e) => e.Status is 0 or 408 or 429 or >= 500;

    /// <summary>The server's Retry-After (seconds or a date) when it sent one; otherwise the exponential backoff.</summary>
    static TimeSpan? RetryAfter(Exception? e)
    {
        if (e is not ClientResultException ce || ce.GetRawResponse() is not { } response) return null;
        if (!response.Headers.TryGetValue("Retry-After", out var value) || value is null) return null;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
            return TimeSpan.FromSeconds(Math.Min(seconds, 60));
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            return TimeSpan.FromSeconds(Math.Clamp((at - DateTimeOffset.UtcNow).TotalSeconds, 0, 60));
        return null;
    }

    /// <summary>Runs a call under the concurrency limit and the retry pipeline; failures become one clear line.</summary>
    async Task<T> Call<T>(string what, Func<CancellationToken, ValueTask<T>> call, CancellationToken cancel)
    {
        await _slots.WaitAsync(cancel);
        try { return await _resilience.ExecuteAsync(call, cancel); }
        catch (ClientResultException e) { throw new AttuneException(Where, what, $"the server answered {e.Status}: {ServerMessage(e)}"); }
        catch (HttpRequestException e) { throw new AttuneException(Where, what, $"cannot reach the server: {e.Message}"); }
        catch (TimeoutRejectedException) { throw new AttuneException(Where, what, "the server did not answer in time"); }
        finally { _slots.Release(); }
    }

    /// <summary>The message of an OpenAI-style error body, or the start of whatever the body was.</summary>
    static string ServerMessage(ClientResultException e)
    {
        var body = e.GetRawResponse()?.Content?.ToString() ?? "";
        try
        {
            if (JsonNode.Parse(body)?["error"] is JsonNode error)
                return error is JsonObject o ? o["message"]?.ToString() ?? error.ToJsonString() : error.ToString();
        }
        catch (JsonException) { }
        return body.Length > 0 ? body[..Math.Min(body.Length, 300)] : e.Message;
    }

    public async Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default)
    {
        if (continuation.Length == 0) throw new AttuneException(null, "the continuation is empty");
        var prompt = context + continuation;
        var body = new JsonObject
        {
            ["model"] = ModelName,
            ["prompt"] = prompt,
            ["max_tokens"] = 1, // some servers refuse 0; the generated token is not read
            ["temperature"] = 0,
            ["echo"] = true,
            ["logprobs"] = 1,
        };
        var response = await Call("loglikelihood", async ct => await PostCompletion(body, ct), cancel);
        return ContinuationScore(response, prompt, Attune.Text.CodePoints.Count(context), Attune.Text.CodePoints.Count(prompt));
    }

    async Task<JsonNode> PostCompletion(JsonObject body, CancellationToken cancel)
    {
        // The .NET client has no public type for the legacy completions endpoint, so the request goes
        // through its pipeline (the same authentication and transport) as a raw message.
        using var message = _chat.Pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(Endpoint.ToString().TrimEnd('/') + "/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Headers.Set("Accept", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(body.ToJsonString()));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        message.Apply(new RequestOptions { CancellationToken = cancel });
        await _chat.Pipeline.SendAsync(message);
        var response = message.Response!;
        if (response.IsError) throw new ClientResultException(response);
        var text = response.Content.ToString();
        try { return JsonNode.Parse(text) ?? throw new JsonException("empty body"); }
        catch (JsonException e) { throw new AttuneException(Where, "/v1/completions", $"the server's answer is not JSON: {e.Message}"); }
    }

    /// <summary>
    /// The continuation's tokens among the echoed prompt's, told apart by text_offset (in code points,
    /// as OpenAI counts them): those that end after the context ends or start at its end, up to the
    /// end of the prompt.
    /// </summary>
    ScoreResult ContinuationScore(JsonNode response, string prompt, int contextLength, int promptLength)
    {
        var choice = response["choices"]?[0];
        var logprobs = choice?["logprobs"];
        if (logprobs?["token_logprobs"] is not JsonArray values || logprobs["text_offset"] is not JsonArray offsets || values.Count != offsets.Count || values.Count == 0)
            throw new AttuneException(Where, "/v1/completions", "the server returned no log-probabilities for the prompt: it lacks echo with logprobs (attune serve and vLLM have it; llama.cpp's server does not)");
        if (choice?["text"] is JsonValue echoed && echoed.TryGetValue<string>(out var text) && !text.StartsWith(prompt, StringComparison.Ordinal))
            throw new AttuneException(Where, "/v1/completions", "the echoed text does not start with the prompt, so its text_offset cannot place the continuation");
        var tops = logprobs["top_logprobs"] as JsonArray;
        double total = 0;
        bool greedy = true;
        int tokens = 0;
        for (int i = 0; i < values.Count; i++)
        {
            int start = offsets[i]!.GetValue<int>();
            if (start >= promptLength) break; // the generated token
            int end = i + 1 < offsets.Count ? Math.Min(offsets[i + 1]!.GetValue<int>(), promptLength) : promptLength;
            // A token is the context's when it ends inside it and starts before its end; a token of zero
            // width (part of a character the next token completes) at the context's end is the
            // continuation's, except a leading one (a BOS the server added).
            bool context = end <= contextLength && (start < contextLength || i == 0 && end == start);
            if (context) continue;
            if (values[i] is not JsonValue v || !v.TryGetValue<double>(out var lp))
                throw new AttuneException(Where, "/v1/completions", "the continuation's first token has no log-probability (an empty context needs a model that adds a BOS token)");
            total += lp;
            tokens++;
            if (tops?[i] is JsonObject top && top.Count > 0)
                greedy &= lp >= top.Max(kv => kv.Value!.GetValue<double>()) - 1e-6;
        }
        if (tokens == 0) throw new AttuneException(Where, "/v1/completions", "the echoed prompt has no tokens after the context (the server's text_offset does not cover the prompt)");
        return new ScoreResult(total, greedy, tokens);
    }

    public async Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default)
    {
        var body = new JsonObject { ["model"] = ModelName, ["prompt"] = prompt };
        AddSampling(body, options, "max_tokens");
        var response = await Call("/v1/completions", async ct => await PostCompletion(body, ct), cancel);
        var choice = response["choices"]?[0] ?? throw new AttuneException(Where, "/v1/completions", "the answer has no choices");
        return new GeneratedText(choice["text"]?.GetValue<string>() ?? "", Finish(choice["finish_reason"]?.ToString()),
            response["usage"]?["completion_tokens"]?.GetValue<int>() ?? 0);
    }

    static void AddSampling(JsonObject body, GenerationOptions options, string maxTokensName)
    {
        var s = options.Sampling;
        body[maxTokensName] = options.MaxNewTokens;
        body["temperature"] = s.Temperature;
        body["top_p"] = s.TopP;
        body["seed"] = unchecked((long)s.Seed);
        if (s.TopK > 0) body["top_k"] = s.TopK;
        if (s.MinP > 0) body["min_p"] = s.MinP;
        if (s.RepetitionPenalty != 1) body["repetition_penalty"] = s.RepetitionPenalty;
        if (options.StopStrings.Count > 0) body["stop"] = new JsonArray(options.StopStrings.Select(x => (JsonNode)x).ToArray());
    }

    public async Task<GeneratedText> ChatAsync(IReadOnlyList<Prompting.ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default)
    {
        var messages = conversation.Select(m => m.Role switch
        {
            "system" => (OpenAI.Chat.ChatMessage)new SystemChatMessage(m.Content),
            "assistant" => new AssistantChatMessage(m.Content),
            _ => new UserChatMessage(m.Content),
        }).ToList();
        var s = options.Sampling;
        var chatOptions = new ChatCompletionOptions
        {
            MaxOutputTokenCount = options.MaxNewTokens,
            Temperature = s.Temperature,
            TopP = s.TopP,
#pragma warning disable OPENAI001 // seed is marked experimental in the client
            Seed = unchecked((long)s.Seed),
#pragma warning restore OPENAI001
        };
        foreach (var stop in options.StopStrings) chatOptions.StopSequences.Add(stop);
        if (options.TopLogprobs > 0)
        {
            chatOptions.IncludeLogProbabilities = true;
            chatOptions.TopLogProbabilityCount = options.TopLogprobs;
        }
        var result = await Call("/v1/chat/completions", async ct => await _chat.CompleteChatAsync(messages, chatOptions, ct), cancel);
        var completion = result.Value;
        var text = string.Concat(completion.Content.Select(p => p.Text));
        var finish = completion.FinishReason == ChatFinishReason.Length ? FinishReason.Length : FinishReason.Stop;
        IReadOnlyList<TokenLogprob>? top = null;
        if (options.TopLogprobs > 0)
        {
            // Read from the body itself: the client keeps log-probabilities in single precision, and a judge's preference is a ratio of them.
            var first = JsonNode.Parse(result.GetRawResponse().Content.ToString())?["choices"]?[0]?["logprobs"]?["content"]?[0]?["top_logprobs"] as JsonArray;
            top = first is null
                ? throw new AttuneException(null, Identity, "the server returned no log-probabilities (the judge needs logprobs with top_logprobs)")
                : first.Select(t => new TokenLogprob(t?["token"]?.GetValue<string>() ?? "", t?["logprob"]?.GetValue<double>() ?? double.NegativeInfinity)).ToList();
        }
        return new GeneratedText(text, finish, completion.Usage?.OutputTokenCount ?? 0) { TopLogprobs = top };
    }

    static FinishReason Finish(string? reason) => reason == "length" ? FinishReason.Length : FinishReason.Stop;

    public void Dispose() => _slots.Dispose();
}
