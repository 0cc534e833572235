using System.Globalization;
using Attune.Models;

namespace Attune.Experiments;

/// <summary>One sentence of a study's findings in a language, and whether its difference is significant at 95% (null: descriptive).</summary>
public sealed record Finding(string Language, string Text, bool? Significant);

/// <summary>
/// What a study found, per language, computed from its cells whatever the study: the λ with the best ICL score and its
/// gain over the instruct end, the IF cost at that λ, URIAL's IF against the instruct model's, DPO's effect, and the
/// shifted-token share when the shift suite ran. A difference is significant at 95% when it is more than 1.96 of its
/// standard errors from 0, each score's standard error read from its 95% interval (width / 3.92) and the two taken
/// as independent — a conservative reading, since the arms answer the same items.
/// </summary>
public static class Findings
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The arm the others are compared with: λ = 1 when the sweep has it, else the instruct model.</summary>
    static string? InstructArm(IReadOnlyList<CellResult> cells) =>
        cells.FirstOrDefault(c => c.Lambda == 1)?.Arm ?? cells.FirstOrDefault(c => c.Arm == "instruct")?.Arm;

    static Aggregate? Score(IReadOnlyList<CellResult> cells, string arm, string suite) =>
        cells.FirstOrDefault(c => c.Arm == arm && c.Suite == suite)?.Aggregates.FirstOrDefault(a => a.Name == suite);

    /// <summary>a − b with a 95% interval, and whether it excludes 0; null when either score has no interval.</summary>
    public static (double Difference, double Low, double High, bool Significant)? Difference(Aggregate a, Aggregate b)
    {
        if (a.Low is not { } al || a.High is not { } ah || b.Low is not { } bl || b.High is not { } bh) return null;
        double se = Math.Sqrt(Math.Pow((ah - al) / 3.92, 2) + Math.Pow((bh - bl) / 3.92, 2));
        double d = a.Value - b.Value;
        return (d, d - 1.96 * se, d + 1.96 * se, se > 0 ? Math.Abs(d) > 1.96 * se : d != 0);
    }

    static string F(double v) => v.ToString("F3", Inv);
    static string Signed(double v) => (v >= 0 ? "+" : "−") + Math.Abs(v).ToString("F3", Inv);

    static Finding Compare(string lang, string what, Aggregate a, Aggregate b)
    {
        if (Difference(a, b) is not { } d) return new Finding(lang, $"{what}: {F(a.Value)} against {F(b.Value)}", null);
        return new Finding(lang, $"{what}: {F(a.Value)} against {F(b.Value)}, {Signed(d.Difference)} [{Signed(d.Low)}, {Signed(d.High)}]", d.Significant);
    }

    /// <summary>The findings of one language, in a fixed order; scores the study lacks are left out.</summary>
    public static List<Finding> For(IReadOnlyList<CellResult> allCells, string lang)
    {
        var cells = allCells.Where(c => c.Language == lang).ToList();
        var findings = new List<Finding>();
        var reference = InstructArm(cells);
        if (reference is null) return findings;
        var referenceName = cells.First(c => c.Arm == reference).Lambda is double rl ? $"λ = {new Lambda(rl).Text}" : "the instruct model";

        // The λ with the best ICL score, against the instruct end.
        var lambdas = cells.Where(c => c.Suite == "icl" && c.Lambda is not null)
            .Select(c => (c.Arm, Lambda: c.Lambda!.Value, Icl: c.Aggregates.FirstOrDefault(a => a.Name == "icl")))
            .Where(x => x.Icl is not null).OrderBy(x => x.Lambda).ToList();
        if (lambdas.Count > 0 && Score(cells, reference, "icl") is { } refIcl)
        {
            var best = lambdas.MaxBy(x => x.Icl!.Value);
            findings.Add(Compare(lang, $"ICL is best at λ = {new Lambda(best.Lambda).Text}; against {referenceName}", best.Icl!, refIcl));
            if (Score(cells, best.Arm, "if") is { } bestIf && Score(cells, reference, "if") is { } refIf)
                findings.Add(Compare(lang, $"IF (prompt-level loose) at λ = {new Lambda(best.Lambda).Text} against {referenceName}", bestIf, refIf));
        }
        // URIAL: the base prompted in context against the instruct model.
        if (Score(cells, "base-urial", "if") is { } urialIf && Score(cells, reference, "if") is { } instructIf)
            findings.Add(Compare(lang, $"IF of the base with URIAL against {referenceName}", urialIf, instructIf));
        // DPO against the instruct model, on both suites.
        foreach (var suite in new[] { "if", "icl", "judge" })
            if (Score(cells, "dpo", suite) is { } dpo && Score(cells, reference, suite) is { } r)
                findings.Add(Compare(lang, $"{suite.ToUpperInvariant()} of the DPO model against {referenceName}", dpo, r));
        // The token shift: descriptive.
        var shifts = cells.Where(c => c.Suite == "shift").Select(c => (c.Arm, Shift: c.Aggregates.FirstOrDefault(a => a.Name == "shift"))).Where(x => x.Shift is not null).ToList();
        var named = shifts.Where(s => s.Arm == reference || s.Arm == "dpo" || s.Arm == "instruct").ToList();
        if (named.Count > 0)
            findings.Add(new Finding(lang, "Shifted answer tokens against the base: " + string.Join(", ", named.Select(s => $"{s.Arm} {s.Shift!.Value.ToString("P1", Inv)}")), null));
        return findings;
    }
}
