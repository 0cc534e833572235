using System.Text;
using Attune.Tensors;

namespace Attune.Prompting;

/// <summary>
/// How a few-shot prompt is laid out, in lm-evaluation-harness's terms: an optional description, then
/// the shots — each its input, the target delimiter and its answer — joined by the shot separator, then
/// the evaluated input and the target delimiter's lead (the answer is what the model continues with).
/// </summary>
public sealed record FewShotFormat
{
    public string Description { get; init; } = "";
    /// <summary>Between one shot and the next, and between the last shot and the query (harness: "\n\n").</summary>
    public string ShotSeparator { get; init; } = "\n\n";
    /// <summary>Between an input and its answer (harness: " ").</summary>
    public string TargetDelimiter { get; init; } = " ";
    /// <summary>
    /// How one example is written: <c>{input}</c>, <c>{delimiter}</c> (the target delimiter) and <c>{answer}</c>
    /// are replaced. The query is the part before <c>{answer}</c> — without a <c>{delimiter}</c> right before it,
    /// which belongs to the continuation — so the model continues where an answer would go.
    /// </summary>
    public string ExampleTemplate { get; init; } = "{input}{delimiter}{answer}";
}

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

    /// <summary>The prompt text; the model's continuation is scored or generated after it.</summary>
    public static string Build(FewShotFormat format, IEnumerable<(string Input, string Answer)> shots, string query)
    {
        var raw = format.ExampleTemplate;
        int rawAnswerAt = raw.IndexOf("{answer}", StringComparison.Ordinal);
        if (rawAnswerAt < 0 || !raw.Contains("{input}", StringComparison.Ordinal))
            throw new AttuneException(null, "example template", "must contain {input} and {answer}");
        // As in the harness, the target delimiter belongs to the continuation (" cold"), not to the context.
        var queryTemplate = raw[..rawAnswerAt];
        if (queryTemplate.EndsWith("{delimiter}", StringComparison.Ordinal)) queryTemplate = queryTemplate[..^"{delimiter}".Length];
        queryTemplate = queryTemplate.Replace("{delimiter}", format.TargetDelimiter, StringComparison.Ordinal);
        var template = raw.Replace("{delimiter}", format.TargetDelimiter, StringComparison.Ordinal);
        var sb = new StringBuilder();
        if (format.Description.Length > 0) sb.Append(format.Description);
        foreach (var (input, answer) in shots)
            sb.Append(template.Replace("{input}", input, StringComparison.Ordinal).Replace("{answer}", answer, StringComparison.Ordinal)).Append(format.ShotSeparator);
        sb.Append(queryTemplate.Replace("{input}", query, StringComparison.Ordinal));
        return sb.ToString();
    }
}
