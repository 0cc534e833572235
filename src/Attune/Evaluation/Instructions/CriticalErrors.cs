using System.Text.RegularExpressions;
using Attune.Modeling;

namespace Attune.Evaluation.Instructions;

/// <summary>The failures the seed paper counts on every generation, whatever the task asked.</summary>
[Flags]
public enum CriticalError
{
    None = 0,
    /// <summary>The output fell into a loop (the engine's guard fired, or its end repeats a block).</summary>
    Repetition = 1,
    /// <summary>Nothing but white space.</summary>
    Empty = 2,
    /// <summary>Clearly in another language than the request (too little text to tell is not counted).</summary>
    WrongLanguage = 4,
    /// <summary>Code (a fenced block or code-like lines) when the request did not ask for any.</summary>
    UnaskedCode = 8,
}

public static class CriticalErrors
{
    /// <summary>How many of the responses show each critical error (every error named, zeros included).</summary>
    public static Dictionary<string, int> Count(IEnumerable<CriticalError> responses)
    {
        var list = responses as IReadOnlyCollection<CriticalError> ?? responses.ToList();
        return Enum.GetValues<CriticalError>().Where(e => e != CriticalError.None).ToDictionary(e => e.ToString(), e => list.Count(x => x.HasFlag(e)));
    }

    static readonly RepetitionGuard Loop = new();

    static readonly Regex CodeLine = new(@"^\s*(def |class |import |from \S+ import |#include|public |private |function |const |let |var |return |for \(|while \(|if \(|console\.|System\.|print\(|\}\s*$|\{\s*$|<\/?[a-z]+>)", RegexOptions.Multiline);

    static readonly Regex AsksForCode = new(@"\b(code|program|function|script|python|javascript|java|c\+\+|sql|html|json|programme|código|programa|función|fonction)\b", RegexOptions.IgnoreCase);

    /// <summary>
    /// The critical errors of one generation. <paramref name="tokens"/> (when known) lets the loop check
    /// read the token ids, as the generation guard does; otherwise the words are checked for a repeating block.
    /// </summary>
    public static CriticalError Detect(string request, string response, string language, FinishReason? finish = null, IReadOnlyList<int>? tokens = null)
    {
        var errors = CriticalError.None;
        if (response.Trim().Length == 0) return CriticalError.Empty;
        var words = TextUnits.Words(response);
        var ids = tokens ?? words.Select(w => w.ToLowerInvariant().GetHashCode()).ToList();
        if (finish == FinishReason.Repetition || (tokens is null ? WordLoop(ids) : Loop.IsLooping(ids))) errors |= CriticalError.Repetition;
        var detected = TextUnits.Identify(response);
        // Eight different words at least: a loop of one word says nothing about the language it is in.
        if (detected != "unknown" && detected != language && words.Select(w => w.ToLowerInvariant()).Distinct().Count() >= 8) errors |= CriticalError.WrongLanguage;
        bool code = response.Contains("```") || CodeLine.Matches(response).Count >= 3;
        if (code && !AsksForCode.IsMatch(request)) errors |= CriticalError.UnaskedCode;
        return errors;
    }

    /// <summary>Words at the end repeat a block of 1–16 words at least four times (and over at least 16 words).</summary>
    static bool WordLoop(IReadOnlyList<int> words) => new RepetitionGuard { MinSpan = 16 }.IsLooping(words);
}
