using System.Net;
using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Modeling;
using Attune.Prompting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Attune.Tests.Server;

[Collection("Simd")]
public class RemoteBackendTests(ServedTinyModel served) : IClassFixture<ServedTinyModel>
{
    const string KeyVariable = "ATTUNE_TEST_REMOTE_KEY";

    RemoteBackend Open(RemoteOptions? options = null)
    {
        Environment.SetEnvironmentVariable(KeyVariable, ServedTinyModel.ApiKey);
        return RemoteBackend.Open($"{served.Server.BaseAddress}#tiny", (options ?? new RemoteOptions()) with { ApiKeyEnv = KeyVariable });
    }

    static GenerationOptions Greedy(int maxTokens) => new() { MaxNewTokens = maxTokens };

    [Theory]
    [InlineData("The capital of France is", " Paris")]
    [InlineData("2 + 2 =", " 4")]
    [InlineData("Él dijo: «", "¡Qué año! ñandú»")]
    public async Task Loglikelihood_through_echo_matches_the_engine(string context, string continuation)
    {
        using var remote = Open();
        var r = await remote.LoglikelihoodAsync(context, continuation);
        var local = served.Local.Score(context, continuation);
        Assert.Equal(local.Tokens, r.Tokens);
        Assert.Equal(local.LogProb, r.LogProb, 1e-4);
        Assert.Equal(local.IsGreedy, r.IsGreedy);
    }

    [Fact]
    public async Task An_empty_context_needs_a_BOS_token_from_the_server()
    {
        // The tiny tokenizer adds no BOS, so the continuation's first token has nothing to be predicted from;
        // the engine scores it after a BOS of its own, which a remote prompt cannot carry.
        using var remote = Open();
        var e = await Assert.ThrowsAsync<AttuneException>(() => remote.LoglikelihoodAsync("", "Hola"));
        Assert.Contains("needs a model that adds a BOS token", e.Message);
    }

    [Fact]
    public async Task Generation_through_completions_and_chat_matches_the_engine()
    {
        using var remote = Open();
        var text = await remote.CompleteAsync("Il était une fois", Greedy(10));
        Assert.Equal(served.Local.Generate(served.Local.Tokenizer.Encode("Il était une fois"), Greedy(10)).Text, text.Text);

        var conversation = new[] { ChatMessage.User("¿Cómo estás?") };
        var reply = await remote.ChatAsync(conversation, Greedy(8));
        var ids = ChatPrompt.Encode(served.Local.Tokenizer, PromptMode.Chat, null, conversation);
        var expected = served.Local.Generate(ids, Greedy(8));
        Assert.Equal(expected.Text, reply.Text);
        Assert.Equal(expected.Tokens.Count, reply.CompletionTokens);
    }

    [Fact]
    public async Task A_wrong_key_fails_in_one_line_that_does_not_show_the_key()
    {
        Environment.SetEnvironmentVariable("ATTUNE_TEST_WRONG_KEY", "sk-wrong-secret-123");
        using var remote = RemoteBackend.Open($"{served.Server.BaseAddress}#tiny", new RemoteOptions { ApiKeyEnv = "ATTUNE_TEST_WRONG_KEY" });
        var e = await Assert.ThrowsAsync<AttuneException>(() => remote.CompleteAsync("hi", Greedy(2)));
        Assert.Contains("401", e.Message);
        Assert.DoesNotContain("sk-wrong-secret-123", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(0, remote.Retries); // a 401 is not worth retrying
    }

    [Fact]
    public void The_identity_carries_the_served_files_fingerprint()
    {
        using var remote = Open();
        Assert.Equal($"remote:{served.Server.BaseAddress}#tiny@{ServedTinyModel.Fingerprint}", remote.Identity);
        Environment.SetEnvironmentVariable("ATTUNE_TEST_EMPTY_KEY", null);
        var e = Assert.Throws<AttuneException>(() => RemoteBackend.Open($"{served.Server.BaseAddress}#tiny", new RemoteOptions { ApiKeyEnv = "ATTUNE_TEST_EMPTY_KEY" }));
        Assert.Contains("ATTUNE_TEST_EMPTY_KEY is not set", e.Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:1/v1")]
    [InlineData("ftp://host/v1#m")]
    [InlineData("http://127.0.0.1:1/v1#")]
    public void Bad_remote_addresses_are_refused_clearly(string spec)
    {
        var e = Assert.Throws<AttuneException>(() => RemoteBackend.Open(spec, new RemoteOptions()));
        Assert.Contains("--model", e.Message);
    }
}

/// <summary>The remote backend against scripted servers: retries, Retry-After, timeouts, the concurrency limit, missing echo.</summary>
public class RemoteResilienceTests
{
    static readonly string Completion = new JsonObject
    {
        ["id"] = "x", ["object"] = "text_completion", ["model"] = "m",
        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["text"] = " ok", ["finish_reason"] = "stop" }),
        ["usage"] = new JsonObject { ["prompt_tokens"] = 1, ["completion_tokens"] = 1, ["total_tokens"] = 2 },
    }.ToJsonString();

    static RemoteOptions Fast => new() { BaseDelay = TimeSpan.FromMilliseconds(10) };

    [Theory]
    [InlineData(429)]
    [InlineData(500)]
    [InlineData(503)]
    public async Task Transient_failures_are_retried(int status)
    {
        int calls = 0;
        await using var server = await ScriptedServer.Start(async ctx =>
        {
            if (Interlocked.Increment(ref calls) <= 2)
            {
                ctx.Response.StatusCode = status;
                if (status == 429) ctx.Response.Headers.RetryAfter = "0";
                await ctx.Response.WriteAsync("{\"error\":{\"message\":\"busy\"}}");
                return;
            }
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(Completion);
        });
        using var remote = RemoteBackend.Open(server.Spec, Fast);
        var r = await remote.CompleteAsync("hi", new GenerationOptions { MaxNewTokens = 2 });
        Assert.Equal(" ok", r.Text);
        Assert.Equal(2, remote.Retries);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task A_bad_request_is_not_retried_and_its_message_is_shown()
    {
        int calls = 0;
        await using var server = await ScriptedServer.Start(async ctx =>
        {
            Interlocked.Increment(ref calls);
            ctx.Response.StatusCode = 400;
            await ctx.Response.WriteAsync("{\"error\":{\"message\":\"max_tokens is too large\"}}");
        });
        using var remote = RemoteBackend.Open(server.Spec, Fast);
        var e = await Assert.ThrowsAsync<AttuneException>(() => remote.CompleteAsync("hi", new GenerationOptions()));
        Assert.Contains("400: max_tokens is too large", e.Message);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task A_server_that_does_not_answer_in_time_fails_after_its_retries()
    {
        int calls = 0;
        await using var server = await ScriptedServer.Start(async ctx =>
        {
            Interlocked.Increment(ref calls);
            await Task.Delay(TimeSpan.FromSeconds(10), ctx.RequestAborted).ContinueWith(_ => { });
        });
        using var remote = RemoteBackend.Open(server.Spec, Fast with { Timeout = TimeSpan.FromMilliseconds(200), MaxRetries = 1 });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<AttuneException>(() => remote.CompleteAsync("hi", new GenerationOptions()));
        Assert.Contains("did not answer in time", e.Message);
        Assert.Equal(2, calls);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task No_more_than_the_concurrency_limit_is_in_flight()
    {
        int inFlight = 0, most = 0;
        await using var server = await ScriptedServer.Start(async ctx =>
        {
            int now = Interlocked.Increment(ref inFlight);
            int seen;
            while ((seen = Volatile.Read(ref most)) < now && Interlocked.CompareExchange(ref most, now, seen) != seen) { }
            await Task.Delay(30);
            Interlocked.Decrement(ref inFlight);
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(Completion);
        });
        using var remote = RemoteBackend.Open(server.Spec, Fast with { MaxConcurrency = 2 });
        await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => remote.CompleteAsync("hi", new GenerationOptions())));
        Assert.Equal(2, most);
    }

    [Fact]
    public async Task A_server_without_echo_logprobs_gets_a_clear_error()
    {
        await using var server = await ScriptedServer.Start(async ctx =>
        {
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(Completion); // no logprobs at all, as llama.cpp's server answers
        });
        using var remote = RemoteBackend.Open(server.Spec, Fast);
        var e = await Assert.ThrowsAsync<AttuneException>(() => remote.LoglikelihoodAsync("a", " b"));
        Assert.Contains("lacks echo with logprobs", e.Message);
    }
}
