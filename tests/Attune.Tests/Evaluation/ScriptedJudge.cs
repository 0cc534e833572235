using System.Text.RegularExpressions;
using Attune.Evaluation;
using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Tests.Evaluation;

/// <summary>A judge whose replies a test writes as a function of the prompt and the attempt (0: greedy; later: sampled).</summary>
sealed class ScriptedJudge(Func<string, int, string> reply) : IModelBackend
{
    public readonly List<string> Prompts = [];
    public string Identity => "scripted-judge";
    public Task<ScoreResult> LoglikelihoodAsync(string c, string x, CancellationToken t = default) => throw new NotSupportedException();
    public Task<GeneratedText> CompleteAsync(string p, GenerationOptions o, CancellationToken t = default) => throw new NotSupportedException();
    public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> m, GenerationOptions o, CancellationToken t = default) =>
        Task.FromResult(new GeneratedText(Reply(m[^1].Content, o.Sampling.Temperature == 0 ? 0 : 1), FinishReason.Stop, 10));

    /// <summary>The reply to a prompt (also for a test's HTTP server), recorded in <see cref="Prompts"/>.</summary>
    public string Reply(string prompt, int attempt)
    {
        lock (Prompts) Prompts.Add(prompt);
        return reply(prompt, attempt);
    }
    public void Dispose() { }

    /// <summary>The two answers of a pairwise prompt as the judge saw them.</summary>
    public static (string A, string B) Answers(string prompt)
    {
        var m = Regex.Match(prompt, @"(?:Answer|Réponse|Respuesta) A ?:\n(.*?)\n\n(?:Answer|Réponse|Respuesta) B ?:\n(.*)\n\n(?:Reply|Réponds|Responde)", RegexOptions.Singleline);
        return (m.Groups[1].Value, m.Groups[2].Value);
    }

    public static int Words(string s) => s.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Length;

    /// <summary>
    /// A judge that prefers the longer answer (a tie at equal length) and scores an answer's aspects by its
    /// length (1 + words / 5, at most 5): deterministic, and it tells the arms apart.
    /// </summary>
    public static ScriptedJudge LengthLoving() => new((prompt, _) =>
    {
        if (prompt.Contains("Answer A") || prompt.Contains("Réponse A") || prompt.Contains("Respuesta A"))
        {
            var (a, b) = Answers(prompt);
            return Words(a) == Words(b) ? """{"winner": "tie"}""" : $$"""{"winner": "{{(Words(a) > Words(b) ? "A" : "B")}}"}""";
        }
        var m = Regex.Match(prompt, @"(?:Answer|Réponse|Respuesta) ?:\n(.*)\n\n(?:Reply|Réponds|Responde)", RegexOptions.Singleline);
        int score = Math.Min(5, 1 + Words(m.Groups[1].Value) / 5);
        return "{" + string.Join(", ", Attune.Evaluation.Judging.Judge.Aspects.Select(x => $$"""
            "{{x}}": {"rationale": "by length", "score": {{score}}}
            """)) + "}";
    });
}
