using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Evaluation;

/// <summary>A model in this process. Calls are serialized: the engine runs one forward pass at a time and uses every core for it.</summary>
public sealed class LocalBackend(LanguageModel model) : IModelBackend
{
    readonly SemaphoreSlim _gate = new(1, 1);

    public LanguageModel Model => model;
    public string Identity => "local:" + Path.GetFullPath(model.Source);

    public Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default) =>
        Run(() => model.Score(context, continuation), cancel);

    public Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default) =>
        Run(() => Generate(model.Tokenizer.Encode(prompt, addSpecialTokens: true), options), cancel);

    public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
        Run(() => Generate(ChatPrompt.Encode(model.Tokenizer, PromptMode.Chat, null, conversation), options), cancel);

    GeneratedText Generate(int[] ids, GenerationOptions options)
    {
        var r = model.Generate(ids, options);
        return new GeneratedText(r.Text, r.Finish, r.Tokens.Count);
    }

    async Task<T> Run<T>(Func<T> work, CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel);
        try { return work(); }
        finally { _gate.Release(); }
    }

    public void Dispose()
    {
        model.Dispose();
        _gate.Dispose();
    }
}
