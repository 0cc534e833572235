using System.Globalization;
using Attune.Evaluation.Tasks;

namespace Attune.Experiments;

/// <summary>One gate of the demo world: a score of the study, the bar it must reach, and the half-width of its 95% interval.</summary>
public sealed record DemoGate(string Name, double Value, double Bar, double? HalfWidth, double? MaxHalfWidth)
{
    public bool Passed => Value >= Bar && (MaxHalfWidth is not { } max || HalfWidth is { } h && h <= max);

    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        var interval = HalfWidth is { } h ? string.Create(inv, $" ±{h:F3}") + (MaxHalfWidth is { } m ? string.Create(inv, $" (≤ ±{m:F2})") : "") : "";
        return string.Create(inv, $"{(Passed ? "pass" : "FAIL")}  {Name}: {Value:F3}{interval}, bar {Bar:F2}");
    }
}

/// <summary>
/// Whether the demo world's instruments are alive, read from a study's cells: the base model (λ = 0), few-shot, at least
/// chance + 0.25 on every multiple-choice task in English and chance + 0.15 in French and Spanish, and a mean exact match
/// of at least 0.30 over the generation tasks in English; the instruct model (λ = 1, else the instruct arm) at least 0.50
/// IF prompt-level loose accuracy in English and 0.35 in French and Spanish; the headline scores (each language's ICL
/// score of the base, IF score of the instruct model) with 95% intervals no wider than ±0.06. These gate the instruments,
/// not the findings: nothing here looks at the λ curve between the ends.
/// </summary>
public static class DemoGates
{
    public const double MaxHalfWidth = 0.06;

    static readonly string[] Choice = ["sentiment", "topic", "nli", "paraphrase"];
    static readonly string[] Generation = ["antonyms", "translation", "arithmetic", "symbols", "reading"];

    public static List<DemoGate> Check(IReadOnlyList<CellResult> cells)
    {
        var gates = new List<DemoGate>();
        var baseArm = cells.FirstOrDefault(c => c.Lambda == 0)?.Arm;
        var instructArm = cells.FirstOrDefault(c => c.Lambda == 1)?.Arm ?? cells.FirstOrDefault(c => c.Arm == "instruct")?.Arm;
        foreach (var lang in BuiltinSuite.Languages)
        {
            var icl = cells.FirstOrDefault(c => c.Arm == baseArm && c.Suite == "icl" && c.Language == lang);
            if (icl is not null)
            {
                Aggregate? Find(string name) => icl.Aggregates.FirstOrDefault(a => a.Name == name);
                if (Find("icl") is { } head) gates.Add(new($"base ICL score, {lang}", head.Value, 0, HalfWidth(head), MaxHalfWidth));
                double margin = lang == "en" ? 0.25 : 0.15;
                foreach (var type in Choice)
                    if (Find($"icl/{type}_{lang}/acc") is { } acc)
                        gates.Add(new($"base {type}_{lang} acc (chance + {margin:F2})", acc.Value, 1.0 / BuiltinSuite.Config(type, lang).DocToChoice!.Value!.AsArray().Count + margin, HalfWidth(acc), null));
                if (lang == "en")
                {
                    var matches = Generation.Select(t => Find($"icl/{t}_{lang}/exact_match")).OfType<Aggregate>().ToList();
                    if (matches.Count > 0) gates.Add(new($"base mean exact match over {matches.Count} generation tasks, {lang}", matches.Average(a => a.Value), 0.30, null, null));
                }
            }
            var ifCell = cells.FirstOrDefault(c => c.Arm == instructArm && c.Suite == "if" && c.Language == lang);
            if (ifCell?.Aggregates.FirstOrDefault(a => a.Name == "if/prompt_loose") is { } loose)
                gates.Add(new($"instruct IF prompt-level loose, {lang}", loose.Value, lang == "en" ? 0.50 : 0.35, HalfWidth(loose), MaxHalfWidth));
        }
        return gates;
    }

    static double? HalfWidth(Aggregate a) => a.Low is { } lo && a.High is { } hi ? (hi - lo) / 2 : null;
}
