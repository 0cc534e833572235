using Attune.Experiments;

namespace Attune.Tests.Experiments;

public class DemoGatesTests
{
    static CellResult Cell(string arm, double lambda, string suite, string lang, params Aggregate[] aggregates) =>
        new($"{arm}/{suite}/{lang}", arm, lambda, suite, lang, "model", [], aggregates, [], 1);

    static Aggregate A(string name, double value, double halfWidth) => new(name, value, value - halfWidth, value + halfWidth, 150);

    [Fact]
    public void Gates_read_the_base_ICL_and_the_instruct_IF_with_their_bars_and_interval_widths()
    {
        var cells = new List<CellResult>
        {
            // English base: sentiment clears chance + 0.25 (0.75), topic does not (chance 0.25, bar 0.50).
            Cell("lambda-0.00", 0, "icl", "en", A("icl", 0.60, 0.03), A("icl/sentiment_en/acc", 0.80, 0.06), A("icl/topic_en/acc", 0.45, 0.08),
                A("icl/antonyms_en/exact_match", 0.2, 0.05), A("icl/reading_en/exact_match", 0.5, 0.05)),
            // French base: sentiment needs chance + 0.15 = 0.65.
            Cell("lambda-0.00", 0, "icl", "fr", A("icl", 0.50, 0.07), A("icl/sentiment_fr/acc", 0.66, 0.07)),
            Cell("lambda-1.00", 1, "if", "en", A("if/prompt_loose", 0.55, 0.05)),
            Cell("lambda-1.00", 1, "if", "es", A("if/prompt_loose", 0.40, 0.09)),
            // Another arm's scores are not read.
            Cell("lambda-0.50", 0.5, "if", "fr", A("if/prompt_loose", 0.99, 0.01)),
        };
        var gates = DemoGates.Check(cells).ToDictionary(g => g.Name);
        Assert.True(gates["base sentiment_en acc (chance + 0.25)"].Passed);
        Assert.Equal(0.75, gates["base sentiment_en acc (chance + 0.25)"].Bar, 9);
        Assert.False(gates["base topic_en acc (chance + 0.25)"].Passed);
        Assert.Equal(0.50, gates["base topic_en acc (chance + 0.25)"].Bar, 9);
        Assert.True(gates["base sentiment_fr acc (chance + 0.15)"].Passed);
        Assert.Equal(0.35, gates["base mean exact match over 2 generation tasks, en"].Value, 9);
        Assert.True(gates["base mean exact match over 2 generation tasks, en"].Passed);
        Assert.True(gates["base ICL score, en"].Passed);
        Assert.False(gates["base ICL score, fr"].Passed); // ±0.07 is wider than ±0.06
        Assert.True(gates["instruct IF prompt-level loose, en"].Passed);
        Assert.False(gates["instruct IF prompt-level loose, es"].Passed); // above 0.35, but ±0.09
        Assert.DoesNotContain("instruct IF prompt-level loose, fr", gates.Keys);
        Assert.StartsWith("FAIL  instruct IF prompt-level loose, es: 0.400 ±0.090 (≤ ±0.06), bar 0.35", gates["instruct IF prompt-level loose, es"].ToString());
    }
}
