using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Server;
using Attune.Tensors;
using OpenAI;
using OpenAI.Chat;

namespace Attune.Tests.Server;

/// <summary>A tiny model served on a free loopback port, and a second copy of it in-process to compare with.</summary>
public sealed class ServedTinyModel : IAsyncLifetime
{
    readonly TempDir _tmp = new();
    public string ModelPath => _tmp["tiny"];
    public OpenAiServer Server { get; private set; } = null!;
    public LanguageModel Local { get; private set; } = null!;
    public HttpClient Http { get; } = new();
    public const string ApiKey = "test-key-7f3a";
    public const string Fingerprint = "0123abcd";

    public async Task InitializeAsync()
    {
        ModelInitializer.Write(ModelPath, Presets.Find("tiny", "llama").Config, seed: 11, DType.F32);
        Local = LanguageModel.Load(ModelPath);
        Server = await OpenAiServer.StartAsync([new ServedModel("tiny", LanguageModel.Load(ModelPath), Fingerprint)],
            new ServerOptions { Port = 0, ApiKey = ApiKey, MaxBatch = 4, QueueCapacity = 8 });
        Http.BaseAddress = new Uri(Server.BaseAddress + "/");
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        foreach (var e in Server.Engines.Values) e.Model.Dispose();
        Local.Dispose();
        Http.Dispose();
        _tmp.Dispose();
    }

    public async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> PostAsync(string path, string json)
    {
        var response = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, response);
    }

    public Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> PostAsync(string path, JsonObject body) => PostAsync(path, body.ToJsonString());
}

[Collection("Simd")] // compares the server's arithmetic with in-process results bit for bit
public class ServerTests(ServedTinyModel served) : IClassFixture<ServedTinyModel>
{
    static JsonObject Completion(string prompt, int maxTokens, double temperature = 0, ulong seed = 0) => new()
    {
        ["model"] = "tiny", ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["seed"] = seed,
    };

    GenerationResult LocalGenerate(int[] ids, int maxTokens, float temperature = 0, ulong seed = 0) =>
        served.Local.Generate(ids, new GenerationOptions { MaxNewTokens = maxTokens, Sampling = new SamplingOptions { Temperature = temperature, Seed = seed } });

    [Fact]
    public async Task Models_lists_the_served_model()
    {
        var response = await served.Http.GetStringAsync("models");
        var body = JsonNode.Parse(response)!;
        Assert.Equal("list", body["object"]!.GetValue<string>());
        Assert.Equal("tiny", body["data"]![0]!["id"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(0.0, 0ul)]
    [InlineData(0.9, 1234ul)]
    public async Task A_completion_equals_in_process_generation_for_the_same_seed(double temperature, ulong seed)
    {
        var (status, body, _) = await served.PostAsync("completions", Completion("The cat sat on", 12, temperature, seed));
        Assert.Equal(HttpStatusCode.OK, status);
        var expected = LocalGenerate(served.Local.Tokenizer.Encode("The cat sat on"), 12, (float)temperature, seed);
        Assert.Equal(expected.Text, body!["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(expected.Finish == FinishReason.Length ? "length" : "stop", body["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(expected.Tokens.Count, body["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Token_id_prompts_and_lists_of_prompts_give_one_choice_each()
    {
        var ids = served.Local.Tokenizer.Encode("Bonjour");
        var body = Completion("x", 4);
        body["prompt"] = new JsonArray(new JsonArray(ids.Select(i => (JsonNode)i).ToArray()), "Hola");
        var (status, json, _) = await served.PostAsync("completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        var choices = json!["choices"]!.AsArray();
        Assert.Equal(2, choices.Count);
        Assert.Equal(LocalGenerate(ids, 4).Text, choices[0]!["text"]!.GetValue<string>());
        Assert.Equal(LocalGenerate(served.Local.Tokenizer.Encode("Hola"), 4).Text, choices[1]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task Echo_with_logprobs_scores_the_prompt_as_the_engine_does()
    {
        const string context = "Question: what is two plus two? Answer:", continuation = " four";
        var body = Completion(context + continuation, 1);
        body["echo"] = true;
        body["logprobs"] = 3;
        var (status, json, _) = await served.PostAsync("completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json!["choices"]![0]!;
        Assert.StartsWith(context + continuation, choice["text"]!.GetValue<string>());
        var lp = choice["logprobs"]!;
        var tokens = lp["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        var values = lp["token_logprobs"]!.AsArray();
        var offsets = lp["text_offset"]!.AsArray().Select(o => o!.GetValue<int>()).ToList();
        var tops = lp["top_logprobs"]!.AsArray();
        int promptTokens = served.Local.Tokenizer.Encode(context + continuation).Length;
        Assert.Equal(promptTokens + 1, tokens.Count);
        Assert.Null(values[0]); // the first token has no context
        Assert.Null(tops[0]);
        // Token pieces join up to the text, and each starts where the pieces before it end.
        Assert.Equal(choice["text"]!.GetValue<string>(), string.Concat(tokens));
        for (int i = 1; i < tokens.Count; i++) Assert.Equal(offsets[i - 1] + tokens[i - 1].Length, offsets[i]);
        // Three alternatives each (fewer only where two tokens decode to the same text, a key OpenAI's format cannot repeat).
        Assert.All(tops.Skip(1), t => Assert.InRange(t!.AsObject().Count, 1, 3));
        Assert.Contains(tops.Skip(1), t => t!.AsObject().Count == 3);

        // The continuation's tokens, picked by offset, sum to the engine's own score of it.
        double sum = 0;
        for (int i = 1; i < promptTokens; i++)
            if ((i + 1 < offsets.Count ? offsets[i + 1] : int.MaxValue) > context.Length) sum += values[i]!.GetValue<double>();
        var local = served.Local.Score(context, continuation);
        Assert.Equal(local.LogProb, sum, 1e-4); // same model; f32 rounding differs with the batch's row count
        // Each prompt token's log-probability is at most its position's best alternative's.
        for (int i = 1; i < promptTokens; i++)
            Assert.True(values[i]!.GetValue<double>() <= tops[i]!.AsObject().Max(kv => kv.Value!.GetValue<double>()) + 1e-9);
    }

    [Fact]
    public async Task Streaming_sends_the_same_text_as_events_and_ends_with_done()
    {
        var body = Completion("Once upon a time", 10);
        body["stream"] = true;
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var (text, events) = await ReadStream("completions", body, c => c["choices"]!.AsArray().Count > 0 ? c["choices"]![0]!["text"]!.GetValue<string>() : "");
        var expected = LocalGenerate(served.Local.Tokenizer.Encode("Once upon a time"), 10);
        Assert.Equal(expected.Text, text);
        Assert.Equal("[DONE]", events[^1]);
        var usage = JsonNode.Parse(events[^2])!;
        Assert.Equal(expected.Tokens.Count, usage["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    async Task<(string Text, List<string> Events)> ReadStream(string path, JsonObject body, Func<JsonNode, string> textOf)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await served.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        var text = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ")) { Assert.Equal("", line); continue; }
            var data = line[6..];
            events.Add(data);
            if (data != "[DONE]") text.Append(textOf(JsonNode.Parse(data)!));
        }
        return (text.ToString(), events);
    }

    [Fact]
    public async Task Chat_through_the_OpenAI_client_equals_the_chat_template_in_process()
    {
        var client = new ChatClient("tiny", new ApiKeyCredential(ServedTinyModel.ApiKey), new OpenAIClientOptions { Endpoint = served.Server.BaseAddress });
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 10, Temperature = 0 };
        var completion = (await client.CompleteChatAsync([new UserChatMessage("Say hello in French.")], options)).Value;
        var ids = ChatPrompt.Encode(served.Local.Tokenizer, PromptMode.Chat, null, [Attune.Prompting.ChatMessage.User("Say hello in French.")]);
        Assert.Equal(LocalGenerate(ids, 10).Text, completion.Content[0].Text);

        // Streamed through the client: the same text.
        var streamed = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Say hello in French.")], options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(completion.Content[0].Text, streamed.ToString());
    }

    [Fact]
    public async Task Chat_in_urial_mode_prompts_the_base_model_in_context()
    {
        var body = new JsonObject
        {
            ["model"] = "tiny", ["max_tokens"] = 12, ["temperature"] = 0, ["mode"] = "urial", ["lang"] = "fr",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Quelle est la capitale de la France ?" }),
        };
        var (status, json, _) = await served.PostAsync("chat/completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        var urial = UrialPrompt.BuiltIn("fr");
        var ids = ChatPrompt.Encode(served.Local.Tokenizer, PromptMode.Urial, urial, [Attune.Prompting.ChatMessage.User("Quelle est la capitale de la France ?")]);
        var expected = served.Local.Generate(ids, new GenerationOptions { MaxNewTokens = 12, StopStrings = UrialPrompt.StopStrings });
        Assert.Equal(UrialPrompt.CleanAnswer(expected.Text), json!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(ids.Length, json["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("{\"model\":\"tiny\",", 400, null, null)]
    [InlineData("[1,2]", 400, null, null)]
    [InlineData("{\"model\":\"nope\",\"prompt\":\"hi\"}", 400, "model", "model_not_found")]
    [InlineData("{\"prompt\":\"hi\"}", 400, "model", null)]
    [InlineData("{\"model\":\"tiny\"}", 400, "prompt", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":-1}", 400, "temperature", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"temperature\":\"hot\"}", 400, "temperature", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":-3}", 400, "max_tokens", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"top_p\":0}", 400, "top_p", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"logprobs\":50}", 400, "logprobs", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"stop\":[1]}", 400, "stop", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":[5,-1]}", 400, "prompt", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":[]}", 400, "prompt", null)]
    [InlineData("{\"model\":\"tiny\",\"prompt\":\"hi\",\"presence_penalty\":1}", 400, "presence_penalty", null)]
    public async Task Bad_completion_requests_get_an_OpenAI_style_error(string body, int status, string? param, string? code)
    {
        var (actual, json, _) = await served.PostAsync("completions", body);
        Assert.Equal(status, (int)actual);
        var error = json!["error"]!;
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Equal(param, error["param"]?.GetValue<string>());
        if (code is not null) Assert.Equal(code, error["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_request_body_that_is_not_utf8_gets_400_with_an_OpenAI_style_error()
    {
        byte[] body = [.. Encoding.UTF8.GetBytes("{\"model\":\"tiny\",\"prompt\":\"a"), 0xFF, 0xFE, .. Encoding.UTF8.GetBytes("\"}")];
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var response = await served.Http.PostAsync("completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Contains("not valid UTF-8 (byte 27)", error["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("{\"model\":\"tiny\"}", "messages")]
    [InlineData("{\"model\":\"tiny\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"tiny\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content")]
    [InlineData("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"mode\":\"magic\"}", "mode")]
    [InlineData("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"mode\":\"urial\",\"lang\":\"de\"}", "lang")]
    public async Task Bad_chat_requests_name_the_field(string body, string param)
    {
        var (status, json, _) = await served.PostAsync("chat/completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, json!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_prompt_over_the_context_window_is_refused()
    {
        int window = served.Local.Config.MaxPositionEmbeddings;
        var body = Completion("x", 1);
        body["prompt"] = new JsonArray(Enumerable.Repeat(5, window + 1).Select(i => (JsonNode)i).ToArray());
        var (status, json, _) = await served.PostAsync("completions", body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("context_length_exceeded", json!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Requests_without_the_key_are_refused()
    {
        using var anonymous = new HttpClient { BaseAddress = served.Http.BaseAddress };
        var response = await anonymous.GetAsync("models");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("invalid_api_key", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("models")).StatusCode);
    }
}

/// <summary>Servers started for one test each: queue limits and shutdown.</summary>
[Collection("Simd")]
public class ServerLifecycleTests
{
    static async Task<(OpenAiServer Server, TempDir Tmp)> Start(ServerOptions options, string preset = "tiny")
    {
        var tmp = new TempDir();
        ModelInitializer.Write(tmp["tiny"], Presets.Find(preset, "llama").Config, seed: 5, DType.F32);
        var server = await OpenAiServer.StartAsync([new ServedModel("tiny", LanguageModel.Load(tmp["tiny"]))], options with { Port = 0 });
        return (server, tmp);
    }

    static async Task Stop(OpenAiServer server, TempDir tmp)
    {
        await server.DisposeAsync();
        foreach (var e in server.Engines.Values) e.Model.Dispose();
        tmp.Dispose();
    }

    /// <summary>A completion; long ones ignore the end token so that they are still running when the test needs them to be.</summary>
    static StringContent Body(int maxTokens, bool stream = false) => new(
        $$"""{"model":"tiny","prompt":"Hello there","max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}},"ignore_eos":{{(maxTokens >= 1000 ? "true" : "false")}}}""",
        Encoding.UTF8, "application/json");

    [Fact]
    public async Task Concurrent_requests_are_decoded_in_one_batch()
    {
        var (server, tmp) = await Start(new ServerOptions { MaxBatch = 4 });
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress + "/") };
            var prompts = new[] { "one two", "trois quatre", "cinco seis", "seven eight" };
            var bodies = prompts.Select(p => new StringContent(
                $$"""{"model":"tiny","prompt":"{{p}}","max_tokens":200,"temperature":0.8,"seed":1}""", Encoding.UTF8, "application/json"));
            var responses = await Task.WhenAll(bodies.Select(b => http.PostAsync("completions", b)));
            Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
            Assert.True(server.Engines["tiny"].LargestBatch >= 2, $"the engine never ran more than {server.Engines["tiny"].LargestBatch} sequence(s) at once");
        }
        finally { await Stop(server, tmp); }
    }

    [Fact]
    public async Task A_client_that_goes_away_cancels_its_generation()
    {
        // The demo-sized model: slow enough (thousands of tokens take seconds) that the sequence is still
        // running when the connection closes; the tiny one can finish 4000 tokens before that is noticed.
        var (server, tmp) = await Start(new ServerOptions(), preset: "demo");
        try
        {
            // Disposing a half-read response would otherwise drain it (up to 1 MiB or 2 s) to reuse the
            // connection; on a fast machine that reads the whole stream and nothing is ever cancelled.
            using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.BaseAddress + "/") };
            var engine = server.Engines["tiny"];
            using (var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "completions") { Content = Body(4000, stream: true) }, HttpCompletionOption.ResponseHeadersRead))
            {
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                Assert.StartsWith("data: ", await reader.ReadLineAsync());
                Assert.Equal(1, engine.Active);
            }
            // The connection is closed: the sequence leaves the batch as cancelled, not after its 4000 tokens.
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (engine.Cancellations == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
            Assert.Equal(1, engine.Cancellations);
            while (engine.Active > 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
            Assert.Equal(0, engine.Active);
        }
        finally { await Stop(server, tmp); }
    }

    [Fact]
    public async Task More_choices_than_the_server_can_hold_is_a_bad_request()
    {
        var (server, tmp) = await Start(new ServerOptions { MaxBatch = 2, QueueCapacity = 1 });
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress + "/") };
            var response = await http.PostAsync("completions", new StringContent("""{"model":"tiny","prompt":["a","b","c","d"],"max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("at most 3", await response.Content.ReadAsStringAsync());
            var fits = await http.PostAsync("completions", new StringContent("""{"model":"tiny","prompt":["a","b","c"],"max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
        }
        finally { await Stop(server, tmp); }
    }

    [Fact]
    public async Task A_full_queue_answers_429_with_Retry_After()
    {
        var (server, tmp) = await Start(new ServerOptions { MaxBatch = 1, QueueCapacity = 0 });
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress + "/") };
            using var first = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "completions") { Content = Body(4000, stream: true) }, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            var second = await http.PostAsync("completions", Body(4));
            Assert.Equal((HttpStatusCode)429, second.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), second.Headers.RetryAfter!.Delta);
            Assert.Equal("rate_limit_exceeded", JsonNode.Parse(await second.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        }
        finally { await Stop(server, tmp); }
    }

    [Fact]
    public async Task Shutdown_lets_running_requests_finish_within_the_grace()
    {
        var (server, tmp) = await Start(new ServerOptions { ShutdownGrace = TimeSpan.FromSeconds(30) });
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress + "/") };
            var running = http.PostAsync("completions", Body(200));
            var engine = server.Engines["tiny"];
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (engine.Active == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
            var stopping = server.StopAsync();
            var response = await running;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            // Finished normally (the budget or the model's end token), not cut off.
            Assert.Contains(json["choices"]![0]!["finish_reason"]!.GetValue<string>(), new[] { "length", "stop" });
            Assert.InRange(json["usage"]!["completion_tokens"]!.GetValue<int>(), 1, 200);
            await stopping;
        }
        finally { await Stop(server, tmp); }
    }

    [Fact]
    public async Task Shutdown_cancels_what_outlives_the_grace()
    {
        // The demo shape decodes 4000 tokens in seconds, so the request surely outlives the grace (the tiny model, on a fast
        // moment of a free machine, finished within it and the test saw 200 instead of 503).
        var (server, tmp) = await Start(new ServerOptions { ShutdownGrace = TimeSpan.FromMilliseconds(200) }, preset: "demo");
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress + "/") };
            var running = http.PostAsync("completions", Body(4000));
            var engine = server.Engines["tiny"];
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (engine.Active == 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await server.StopAsync();
            var response = await running;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"stopping took {clock.Elapsed}");
        }
        finally { await Stop(server, tmp); }
    }
}
