using Attune.Models;
using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Evaluation;

/// <summary>Text a backend generated, why it ended, and how many tokens it took.</summary>
public sealed record GeneratedText(string Text, FinishReason Finish, int CompletionTokens)
{
    /// <summary>The most likely first tokens with their log-probabilities, when the request asked for them (<see cref="GenerationOptions.TopLogprobs"/>).</summary>
    public IReadOnlyList<TokenLogprob>? TopLogprobs { get; init; }
}

/// <summary>A token's text and its log-probability.</summary>
public sealed record TokenLogprob(string Token, double Logprob);

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

    /// <summary>What identifies its log-likelihoods, when another model scores exactly as it does (M(0) and the base); else <see cref="Identity"/>.</summary>
    string ScoringIdentity => Identity;

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

    /// <summary>
    /// Whole-text log-likelihoods (loglikelihood_rolling), in the order given. By default each text is one continuation of
    /// an empty context (the prefix token first), which is exact when it fits the model's context; a backend that
    /// knows its tokens scores longer texts in windows.
    /// </summary>
    async Task<IReadOnlyList<ScoreResult>> LoglikelihoodRollingManyAsync(IReadOnlyList<RollingRequest> requests, Action<int>? progress = null, CancellationToken cancel = default) =>
        await LoglikelihoodManyAsync(requests.Select(r => new LoglikelihoodRequest("", r.Text)).ToList(), progress, cancel);

    /// <summary>
    /// A conversation through the model's chat template as text (the named template, or the default), ending with the
    /// assistant's opening or continuing the last message; for prompts built as lm-evaluation-harness's
    /// --apply_chat_template builds them. A model without a template here (a served one) cannot.
    /// </summary>
    string RenderChat(IReadOnlyList<ChatMessage> conversation, string? templateName, bool continueFinalMessage) =>
        throw new AttuneException(null, "--apply-chat-template", $"{Identity}: the chat template is applied to task prompts for a local model (its tokenizer's template); a served model has none here");

    /// <summary>The text of the chat template <see cref="RenderChat"/> uses (the named one, or the default), for the results file.</summary>
    string? ChatTemplateSource(string? templateName) => null;

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
    /// <summary>A backend for a model reference: Attune's engine for a local model, llama.cpp for a <c>llamacpp:</c> file, the OpenAI-compatible API for a served one.</summary>
    public static IModelBackend Open(ModelReference model, RemoteOptions? remote = null) => model switch
    {
        ModelReference.Remote r => RemoteBackend.Open(r, remote ?? new RemoteOptions()),
        ModelReference.LlamaCpp l => LlamaCpp.LlamaCppBackend.Open(l.Path, model.LocalIdentity()),
        _ => OpenLocal(model),
    };

    /// <summary>
    /// A local model in the engine; an interpolation that answers as one of its sides loads that side and carries its
    /// identity (so the arms' caches meet), and M(0) shares the base's log-likelihoods when they are the same.
    /// </summary>
    static LocalBackend OpenLocal(ModelReference model)
    {
        var equivalent = Merging.ModelLoader.Equivalent(model);
        var identity = equivalent.LocalIdentity();
        return new LocalBackend(Merging.ModelLoader.Load(equivalent), identity)
        {
            ScoringIdentity = Merging.ModelLoader.ScoringEquivalent(equivalent)?.LocalIdentity() ?? identity,
        };
    }

    /// <summary>
    /// One reply to one user message in a prompt mode, through the backend's requests: chat through its chat
    /// template, URIAL as a completion of the URIAL prompt (cleaned to the answer), raw as a completion of the text.
    /// </summary>
    public static async Task<string> ReplyAsync(IModelBackend backend, PromptMode mode, UrialPrompt? urial, string prompt, int shots,
        GenerationOptions options, CancellationToken cancel = default)
    {
        var conversation = new[] { ChatMessage.User(prompt) };
        return mode switch
        {
            PromptMode.Chat => (await backend.ChatAsync(conversation, options, cancel)).Text,
            PromptMode.Urial => UrialPrompt.CleanAnswer((await backend.CompleteAsync((urial ?? throw new ArgumentNullException(nameof(urial))).Render(conversation, shots), options, cancel)).Text),
            _ => (await backend.CompleteAsync(prompt, options, cancel)).Text,
        };
    }
}
