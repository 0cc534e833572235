using System.Globalization;
using Attune.Models;

namespace Attune.Experiments;

/// <summary>One sentence of a study's findings in a language, and whether its difference is significant at 95% (null: descriptive).</summary>
public sealed record Finding(string Language, string Text, bool? Significant);

/// <summary>
/// What a study found, per language, computed from its cells whatever the study: the λ with the best ICL score and its
/// gain over the instruct end, the IF cost at that λ, URIAL's IF against the instruct model's, DPO's effect, and the
/// shifted-token share when the shift suite ran. A difference is significant at 95% when its 95% interval excludes 0:
/// the arms answer the same items, so when the cells carry their items the interval is a paired bootstrap over them
/// (within each task for ICL, as the ICL score itself is resampled); otherwise each score's standard error is read
/// from its interval (width / 3.92) and the two are taken as independent, which is conservative.
/// </summary>
public static class Findings
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The arm the others are compared with: λ = 1 when the sweep has it, else the instruct model.</summary>
    static string? InstructArm(IReadOnlyList<CellResult> cells) =>
        cells.FirstOrDefault(c => c.Lambda == 1)?.Arm ?? cells.FirstOrDefault(c => c.Arm == "instruct")?.Arm;

    static Aggregate? Score(IReadOnlyList<CellResult> cells, string arm, string suite) =>
        cells.FirstOrDefault(c => c.Arm == arm && c.Suite == suite)?.Aggregates.FirstOrDefault(a => a.Name == suite);

    static CellResult? CellOf(IReadOnlyList<CellResult> cells, string arm, string suite) => cells.FirstOrDefault(c => c.Arm == arm && c.Suite == suite);

    /// <summary>
    /// a − b on the items both cells answered, with a paired bootstrap 95% interval (1000 resamples, seeded): the ICL
    /// score's per-task main metric (acc, else exact match) paired by task and document, the IF prompt-level loose verdict
    /// paired by prompt, the judge's preference paired by instruction. Null when the items do not pair up.
    /// </summary>
    public static (double Difference, double Low, double High, bool Significant)? PairedDifference(CellResult a, CellResult b, string suite)
    {
        if (a.Items.Count == 0 || a.Items.Count != b.Items.Count) return null;
        Evaluation.Metrics.Estimate e;
        switch (suite)
        {
            case "icl":
            {
                var groups = new List<IReadOnlyList<double>>();
                foreach (var task in a.Items.Select(i => i["task"]?.ToString()).Distinct())
                {
                    var ai = a.Items.Where(i => i["task"]?.ToString() == task).OrderBy(i => i["doc"]?.ToJsonString(), StringComparer.Ordinal).ToList();
                    var bi = b.Items.Where(i => i["task"]?.ToString() == task).OrderBy(i => i["doc"]?.ToJsonString(), StringComparer.Ordinal).ToList();
                    if (ai.Count != bi.Count || ai.Zip(bi).Any(p => p.First["doc"]?.ToJsonString() != p.Second["doc"]?.ToJsonString())) return null;
                    var metric = ai.Count > 0 && ai[0]["scores"]?["acc"] is not null ? "acc" : "exact_match";
                    if (ai.Any(i => i["scores"]?[metric] is null) || bi.Any(i => i["scores"]?[metric] is null)) continue;
                    groups.Add(ai.Zip(bi, (x, y) => (double)x["scores"]![metric]! - (double)y["scores"]![metric]!).ToList());
                }
                if (groups.Count == 0) return null;
                e = Evaluation.Metrics.Bootstrap.MeanOfMeans(groups);
                break;
            }
            case "if" or "judge":
            {
                var byKey = b.Items.GroupBy(i => i["key"]?.ToString() ?? "").ToDictionary(g => g.Key, g => g.First());
                var diffs = new List<double>();
                foreach (var x in a.Items)
                {
                    if (!byKey.TryGetValue(x["key"]?.ToString() ?? "", out var y)) return null;
                    double? va = Value(x), vb = Value(y);
                    if (va is null || vb is null) continue;
                    diffs.Add(va.Value - vb.Value);
                }
                if (diffs.Count == 0) return null;
                e = Evaluation.Metrics.Bootstrap.Mean(diffs);
                break;

                double? Value(System.Text.Json.Nodes.JsonObject item) => suite == "if"
                    ? item["loose"] is System.Text.Json.Nodes.JsonArray loose ? loose.All(v => (bool)v!) ? 1 : 0 : null
                    : item["preference"] is System.Text.Json.Nodes.JsonValue p && p.TryGetValue<double>(out var d) ? d : null;
            }
            default:
                return null;
        }
        return (e.Value, e.Low, e.High, e.Low > 0 || e.High < 0);
    }

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

    static Finding Compare(string lang, string what, Aggregate a, Aggregate b, CellResult? cellA = null, CellResult? cellB = null, string? suite = null)
    {
        var paired = cellA is not null && cellB is not null && suite is not null ? PairedDifference(cellA, cellB, suite) : null;
        if ((paired ?? Difference(a, b)) is not { } d) return new Finding(lang, $"{what}: {F(a.Value)} against {F(b.Value)}", null);
        return new Finding(lang, $"{what}: {F(a.Value)} against {F(b.Value)}, {Signed(d.Difference)} [{Signed(d.Low)}, {Signed(d.High)}]{(paired is null ? "" : " paired")}", d.Significant);
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
            findings.Add(Compare(lang, $"ICL is best at λ = {new Lambda(best.Lambda).Text}; against {referenceName}", best.Icl!, refIcl,
                CellOf(cells, best.Arm, "icl"), CellOf(cells, reference, "icl"), "icl"));
            if (Score(cells, best.Arm, "if") is { } bestIf && Score(cells, reference, "if") is { } refIf)
                findings.Add(Compare(lang, $"IF (prompt-level loose) at λ = {new Lambda(best.Lambda).Text} against {referenceName}", bestIf, refIf,
                    CellOf(cells, best.Arm, "if"), CellOf(cells, reference, "if"), "if"));
        }
        // URIAL: the base prompted in context against the instruct model.
        if (Score(cells, "base-urial", "if") is { } urialIf && Score(cells, reference, "if") is { } instructIf)
            findings.Add(Compare(lang, $"IF of the base with URIAL against {referenceName}", urialIf, instructIf, CellOf(cells, "base-urial", "if"), CellOf(cells, reference, "if"), "if"));
        // DPO against the instruct model, on both suites.
        foreach (var suite in new[] { "if", "icl", "judge" })
            if (Score(cells, "dpo", suite) is { } dpo && Score(cells, reference, suite) is { } r)
                findings.Add(Compare(lang, $"{suite.ToUpperInvariant()} of the DPO model against {referenceName}", dpo, r, CellOf(cells, "dpo", suite), CellOf(cells, reference, suite), suite));
        // The token shift: descriptive.
        var shifts = cells.Where(c => c.Suite == "shift").Select(c => (c.Arm, Shift: c.Aggregates.FirstOrDefault(a => a.Name == "shift"))).Where(x => x.Shift is not null).ToList();
        var named = shifts.Where(s => s.Arm == reference || s.Arm == "dpo" || s.Arm == "instruct").ToList();
        if (named.Count > 0)
            findings.Add(new Finding(lang, "Shifted answer tokens against the base: " + string.Join(", ", named.Select(s => $"{s.Arm} {s.Shift!.Value.ToString("P1", Inv)}")), null));
        return findings;
    }
}
