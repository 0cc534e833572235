using System.Text;
using Attune.Tensors;

namespace Attune.Prompting;

/// <summary>
/// How a few-shot prompt is laid out, in lm-evaluation-harness's terms: an optional description, then
/// the shots — each its input, the target delimiter and its answer — each followed by the shot separator, then
/// the evaluated input (the target delimiter leads the continuation the model is scored or generates on).
/// </summary>
public sealed record FewShotFormat
{
    public string Description { get; init; } = "";
    /// <summary>A system instruction put before the description (the harness's --system_instruction), the shot separator between them.</summary>
    public string? SystemInstruction { get; init; }
    /// <summary>After each shot (harness: "\n\n").</summary>
    public string ShotSeparator { get; init; } = "\n\n";
    /// <summary>Between an input and its answer (harness: " ").</summary>
    public string TargetDelimiter { get; init; } = " ";
}

/// <summary>One question of a few-shot prompt: its text, its answer (none for the evaluated one), and the text that starts the answer (the harness's gen_prefix).</summary>
public sealed record FewShotTurn(string Question, string? Answer = null, string? Prefix = null);

/// <summary>One message of a few-shot prompt with the text that follows it when the prompt is written as plain text.</summary>
public sealed record PromptPart(string Role, string Content, string Delimiter = "");

/// <summary>Few-shot prompts with seeded shot sampling that never includes the evaluated item.</summary>
public static class FewShotPrompt
{
    /// <summary>
    /// Indices of <paramref name="shots"/> examples drawn without replacement from <paramref name="poolSize"/>,
    /// excluding <paramref name="exclude"/> (the evaluated item when the pool is its own split). The same
    /// seed and item give the same shots on every machine.
    /// </summary>
    public static int[] SampleShots(int poolSize, int shots, ulong seed, int exclude = -1)
    {
        int available = poolSize - (exclude >= 0 && exclude < poolSize ? 1 : 0);
        if (shots < 0 || shots > available)
            throw new AttuneException(null, "--shots", $"{shots} shots requested but only {available} examples are available");
        var candidates = Enumerable.Range(0, poolSize).Where(i => i != exclude).ToArray();
        // A partial Fisher–Yates shuffle seeded by (seed, evaluated item).
        var rng = new Rng(seed * 0x9E3779B97F4A7C15UL ^ (ulong)(exclude + 1));
        for (int i = 0; i < shots; i++)
        {
            int j = i + rng.Next(candidates.Length - i);
            (candidates[i], candidates[j]) = (candidates[j], candidates[i]);
        }
        return candidates[..shots];
    }

    /// <summary>
    /// The prompt's messages as the harness builds its turns: a system message (the system instruction and the
    /// description); each shot as a user message (its question, followed by the target delimiter) and an assistant
    /// message (its answer after the gen_prefix, a space between when neither side has one; followed by the shot
    /// separator) — a shot without an answer is its question alone; then the evaluated question, and its gen_prefix as
    /// an open assistant message. With a gen_prefix, a question is followed by the delimiter (<paramref name="queryDelimiter"/>
    /// for the evaluated one) only when neither side has white space there.
    /// </summary>
    public static List<PromptPart> Parts(FewShotFormat format, IEnumerable<FewShotTurn> shots, FewShotTurn query, string? queryDelimiter = null)
    {
        var parts = new List<PromptPart>();
        var system = MaybeDelimit(format.SystemInstruction, format.Description, format.ShotSeparator);
        if (system.Length > 0) parts.Add(new("system", system));
        foreach (var shot in shots)
        {
            bool answered = !string.IsNullOrEmpty(shot.Answer);
            bool delimited = shot.Prefix is null ? answered : RequiresDelimiter(shot.Question, shot.Prefix);
            parts.Add(new("user", shot.Question, delimited ? format.TargetDelimiter : ""));
            if (answered) parts.Add(new("assistant", MaybeDelimit(shot.Prefix, shot.Answer!, " "), format.ShotSeparator));
            else if (shot.Prefix is not null) parts.Add(new("assistant", shot.Prefix));
        }
        parts.Add(new("user", query.Question, query.Prefix is not null && RequiresDelimiter(query.Question, query.Prefix) ? queryDelimiter ?? format.TargetDelimiter : ""));
        if (query.Prefix is not null) parts.Add(new("assistant", query.Prefix));
        return parts;
    }

    /// <summary>The prompt as plain text: every part followed by its delimiter. The model's continuation is scored or generated after it.</summary>
    public static string Build(FewShotFormat format, IEnumerable<FewShotTurn> shots, FewShotTurn query, string? queryDelimiter = null) =>
        Text(Parts(format, shots, query, queryDelimiter));

    public static string Text(IEnumerable<PromptPart> parts) => string.Concat(parts.Select(p => p.Content + p.Delimiter));

    /// <summary>
    /// The parts as a conversation for a chat template, as the harness hands them over: each part its own message
    /// (multi-turn), or the system message kept and everything else joined as plain text into one user message
    /// (the last part's delimiter dropped), an open assistant message (a gen_prefix) staying the last.
    /// </summary>
    public static List<ChatMessage> Conversation(IReadOnlyList<PromptPart> parts, bool multiturn)
    {
        if (multiturn) return parts.Select(p => new ChatMessage(p.Role, p.Content)).ToList();
        var messages = new List<ChatMessage>();
        int start = parts.Count > 0 && parts[0].Role == "system" ? 1 : 0;
        if (start == 1) messages.Add(new ChatMessage("system", parts[0].Content));
        int end = parts[^1].Role == "assistant" ? parts.Count - 1 : parts.Count;
        var joined = parts.Skip(start).Take(end - start).ToList();
        if (joined.Count > 0) joined[^1] = joined[^1] with { Delimiter = "" };
        messages.Add(new ChatMessage("user", Text(joined)));
        if (end < parts.Count) messages.Add(new ChatMessage("assistant", parts[^1].Content));
        return messages;
    }

    static bool RequiresDelimiter(string before, string after) => before.Length > 0 && !char.IsWhiteSpace(before[^1]) && !(after.Length > 0 && char.IsWhiteSpace(after[0]));

    static string MaybeDelimit(string? prefix, string suffix, string delimiter) =>
        string.IsNullOrEmpty(prefix) ? suffix : suffix.Length == 0 ? prefix : RequiresDelimiter(prefix, suffix) ? prefix + delimiter + suffix : prefix + suffix;
}
