using System.ClientModel;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Attune.Modeling;
using Attune.Tensors;
using OpenAI;
using OpenAI.Chat;

namespace Attune.Tests.Server;

/// <summary><c>attune serve</c> as a user runs it: its own process, a free port, stopped with SIGTERM.</summary>
public class ServeCommandTests
{
    static Process StartServe(params string[] args) =>
        Attune.Tests.Cli.CliProcess.Start(new Dictionary<string, string> { ["ATTUNE_TEST_SERVE_KEY"] = "serve-key-42" }, ["serve", .. args]);

    [Fact]
    public async Task Serve_answers_the_OpenAI_client_and_stops_cleanly_on_SIGTERM()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["tiny"], Presets.Find("tiny", "qwen2").Config, seed: 3, DType.F32);
        using var serve = StartServe("--model", $"small={tmp["tiny"]}", "--port", "0", "--api-key-env", "ATTUNE_TEST_SERVE_KEY", "--shutdown-grace", "5");
        var address = await Attune.Tests.Cli.CliProcess.ServeAddress(serve); // a silent server fails the test, not hangs it
        try
        {
            var client = new ChatClient("small", new ApiKeyCredential("serve-key-42"), new OpenAIClientOptions { Endpoint = address });
            var reply = (await client.CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 5, Temperature = 0 })).Value;
            Assert.InRange(reply.Usage.OutputTokenCount, 1, 5);

            var refused = await Assert.ThrowsAsync<ClientResultException>(() => new ChatClient("small", new ApiKeyCredential("nope"),
                new OpenAIClientOptions { Endpoint = address, RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) })
                .CompleteChatAsync([new UserChatMessage("Hello")]));
            Assert.Equal(401, refused.Status);
        }
        finally
        {
            using var kill = Process.Start("kill", ["-TERM", serve.Id.ToString()]);
            kill!.WaitForExit();
        }
        Assert.True(serve.WaitForExit(30_000), "serve did not stop within 30 s of SIGTERM");
        var rest = await serve.StandardError.ReadToEndAsync();
        Assert.Equal(0, serve.ExitCode);
        Assert.Contains("stopping", rest);
    }

    [Fact]
    public void Serve_refuses_a_missing_key_variable_and_a_bad_model_in_one_line()
    {
        using var serve = StartServe("--model", "x=/nonexistent/model", "--port", "0");
        Assert.True(serve.WaitForExit(60_000));
        var err = serve.StandardError.ReadToEnd().Trim().Split('\n').Last();
        Assert.Equal(2, serve.ExitCode);
        Assert.StartsWith("error: ", err);

        using var noKey = StartServe("--model", "x=/nonexistent/model", "--api-key-env", "ATTUNE_TEST_NO_SUCH_VARIABLE");
        Assert.True(noKey.WaitForExit(60_000));
        Assert.Equal(2, noKey.ExitCode);
        Assert.Contains("ATTUNE_TEST_NO_SUCH_VARIABLE is not set", noKey.StandardError.ReadToEnd());
    }
}
