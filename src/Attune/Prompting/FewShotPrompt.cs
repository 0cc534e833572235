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
    /// <summary>After each shot (harness: "\n\n").</summary>
    public string ShotSeparator { get; init; } = "\n\n";
    /// <summary>Between an input and its answer (harness: " ").</summary>
    public string TargetDelimiter { get; init; } = " ";
}

/// <summary>One question of a few-shot prompt: its text, its answer (none for the evaluated one), and the text that starts the answer (the harness's gen_prefix).</summary>
public sealed record FewShotTurn(string Question, string? Answer = null, string? Prefix = null);

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
    /// The prompt as the harness lays its turns out as plain text: the description; each shot as its question, the
    /// target delimiter, its answer and the shot separator (a shot without an answer is its question alone); then the
    /// evaluated question. A gen_prefix follows a question after the delimiter (<paramref name="queryDelimiter"/> for the
    /// evaluated one) when neither side has white space there, and leads a shot's answer with a space between on the
    /// same rule. The model's continuation is scored or generated after the prompt.
    /// </summary>
    public static string Build(FewShotFormat format, IEnumerable<FewShotTurn> shots, FewShotTurn query, string? queryDelimiter = null)
    {
        var sb = new StringBuilder(format.Description);
        foreach (var shot in shots)
        {
            sb.Append(shot.Question);
            if (string.IsNullOrEmpty(shot.Answer)) continue;
            if (shot.Prefix is null || RequiresDelimiter(shot.Question, shot.Prefix)) sb.Append(format.TargetDelimiter);
            sb.Append(MaybeDelimit(shot.Prefix, shot.Answer, " ")).Append(format.ShotSeparator);
        }
        sb.Append(query.Question);
        if (query.Prefix is not null)
        {
            if (RequiresDelimiter(query.Question, query.Prefix)) sb.Append(queryDelimiter ?? format.TargetDelimiter);
            sb.Append(query.Prefix);
        }
        return sb.ToString();
    }

    static bool RequiresDelimiter(string before, string after) => before.Length > 0 && !char.IsWhiteSpace(before[^1]) && !(after.Length > 0 && char.IsWhiteSpace(after[0]));

    static string MaybeDelimit(string? prefix, string suffix, string delimiter) =>
        string.IsNullOrEmpty(prefix) ? suffix : suffix.Length == 0 ? prefix : RequiresDelimiter(prefix, suffix) ? prefix + delimiter + suffix : prefix + suffix;
}
