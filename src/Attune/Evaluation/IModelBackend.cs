using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Evaluation;

/// <summary>Text a backend generated, why it ended, and how many tokens it took.</summary>
public sealed record GeneratedText(string Text, FinishReason Finish, int CompletionTokens);

/// <summary>
/// A model that answers the two requests evaluation is built on — the log-likelihood of a
/// continuation, and generation (from a raw prompt, or from a conversation through the model's chat
/// template) — whether it runs in this process or behind an OpenAI-compatible server.
/// Implementations are safe to call from several threads.
/// </summary>
public interface IModelBackend : IDisposable
{
    /// <summary>What identifies the model's answers (for caches): a path, or a server address and model name.</summary>
    string Identity { get; }

    /// <summary>Σ log p(continuation | context) and whether greedy decoding would produce it.</summary>
    Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default);

    /// <summary>Continues a raw text prompt (special tokens added as the tokenizer adds them).</summary>
    Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default);

    /// <summary>The assistant's reply to a conversation, through the model's chat template.</summary>
    Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default);

    /// <summary>Many log-likelihoods, in the order given; a backend that can share work between them (common prefixes) does.</summary>
    async Task<IReadOnlyList<ScoreResult>> LoglikelihoodManyAsync(IReadOnlyList<LoglikelihoodRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        int done = 0;
        return await Task.WhenAll(requests.Select(async r =>
        {
            var result = await LoglikelihoodAsync(r.Context, r.Continuation, cancel);
            progress?.Invoke(Interlocked.Increment(ref done));
            return result;
        }));
    }

    /// <summary>Many generations, in the order given; a backend that can batch them does.</summary>
    async Task<IReadOnlyList<GeneratedText>> GenerateManyAsync(IReadOnlyList<GenerateRequest> requests, Action<int>? progress = null, CancellationToken cancel = default)
    {
        int done = 0;
        return await Task.WhenAll(requests.Select(async r =>
        {
            var result = r.Messages is { } messages ? await ChatAsync(messages, r.Options, cancel) : await CompleteAsync(r.Prompt ?? "", r.Options, cancel);
            progress?.Invoke(Interlocked.Increment(ref done));
            return result;
        }));
    }
}

public static class ModelBackends
{
    /// <summary>True when <paramref name="spec"/> names a remote model (http://host:port/v1#name).</summary>
    public static bool IsRemote(string spec) =>
        spec.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || spec.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>A backend for a model argument: a checkpoint folder, a GGUF file, BASE+INSTRUCT@λ, or a remote URL#name.</summary>
    public static IModelBackend Open(string spec, RemoteOptions? remote = null) =>
        IsRemote(spec) ? RemoteBackend.Open(spec, remote ?? new RemoteOptions()) : new LocalBackend(Merging.ModelSpec.Load(spec), LocalIdentity(spec));

    /// <summary>
    /// A local model's identity for caches: its spec with full paths, and each path's files by name, size
    /// and modification time, so a retrained or re-merged model in the same folder is a different model.
    /// </summary>
    public static string LocalIdentity(string spec)
    {
        var sb = new System.Text.StringBuilder("local:").Append(spec);
        foreach (var part in spec.Split('+', '@'))
        {
            if (Directory.Exists(part))
                foreach (var f in new DirectoryInfo(part).GetFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
                    sb.Append('|').Append(f.FullName).Append(':').Append(f.Length).Append(':').Append(f.LastWriteTimeUtc.Ticks);
            else if (File.Exists(part))
            {
                var f = new FileInfo(part);
                sb.Append('|').Append(f.FullName).Append(':').Append(f.Length).Append(':').Append(f.LastWriteTimeUtc.Ticks);
            }
        }
        return "local:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(sb.ToString())))[..16] + ":" + spec;
    }
}
