using System.Text.Json.Nodes;
using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Evaluation;

/// <summary>
/// What a task asks of a model — one of the two kinds every evaluation reduces to (the
/// harness's waist). Tasks build requests; backends answer them; metrics read the answers.
/// </summary>
public abstract record EvalRequest
{
    /// <summary>The request as canonical JSON: what it asks, nothing else (the cache key's body).</summary>
    public abstract JsonObject Describe();
}

/// <summary>log p(continuation | context), and whether greedy decoding would produce the continuation.</summary>
public sealed record LoglikelihoodRequest(string Context, string Continuation) : EvalRequest
{
    public override JsonObject Describe() => new() { ["kind"] = "loglikelihood", ["context"] = Context, ["continuation"] = Continuation };
}

/// <summary>
/// log p(text) of a whole text, every token predicted (the first after the model's prefix token), over windows of
/// the model's context as lm-evaluation-harness scores loglikelihood_rolling.
/// </summary>
public sealed record RollingRequest(string Text) : EvalRequest
{
    public override JsonObject Describe() => new() { ["kind"] = "loglikelihood_rolling", ["text"] = Text };
}

/// <summary>
/// Generation from a raw prompt, or (when <see cref="Messages"/> is set) from a conversation through the
/// model's chat template; it stops at the model's end token, at one of the options' stop strings, or at
/// the token budget.
/// </summary>
public sealed record GenerateRequest(string? Prompt, IReadOnlyList<ChatMessage>? Messages, GenerationOptions Options) : EvalRequest
{
    /// <summary>The raw prompt is already a chat template's rendering: it carries its special tokens, none are added.</summary>
    public bool Templated { get; init; }

    public static GenerateRequest Raw(string prompt, GenerationOptions options) => new(prompt, null, options);
    public static GenerateRequest Chat(IReadOnlyList<ChatMessage> messages, GenerationOptions options) => new(null, messages, options);

    public override JsonObject Describe()
    {
        var s = Options.Sampling;
        var description = new JsonObject
        {
            ["kind"] = "generate",
            ["prompt"] = Prompt,
            ["messages"] = Messages is null ? null : new JsonArray(Messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
            ["max_tokens"] = Options.MaxNewTokens,
            ["stop"] = new JsonArray(Options.StopStrings.Select(x => (JsonNode)x).ToArray()),
            ["stop_ids"] = new JsonArray(Options.StopTokenIds.Select(x => (JsonNode)x).ToArray()),
            ["temperature"] = s.Temperature, ["top_p"] = s.TopP, ["top_k"] = s.TopK, ["min_p"] = s.MinP,
            ["repetition_penalty"] = s.RepetitionPenalty, ["seed"] = s.Seed,
            ["ignore_eos"] = Options.IgnoreEos ? true : null,
            ["loop_guard"] = Options.RepetitionGuard is { } g ? $"{g.MaxPeriod}/{g.MinRepeats}/{g.MinSpan}" : null,
        };
        if (Options.TopLogprobs > 0) description["top_logprobs"] = Options.TopLogprobs;
        // Only when set, so the keys of the answers cached before this field existed stay the same.
        if (Templated) description["templated"] = true;
        return description;
    }
}
