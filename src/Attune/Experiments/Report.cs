using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Models;

namespace Attune.Experiments;

/// <summary>
/// The study's report from a results store: one self-contained HTML file (inline CSS and SVG, no
/// scripts, fonts or links to fetch) with the trade-off curve per language, ICL and IF scores against λ
/// with their 95% intervals, per-task and per-checker tables, critical errors and side-by-side
/// generations; or the same numbers as Markdown, JSON or CSV.
/// </summary>
public static class Report
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>An arm's point: its scores in one language.</summary>
    sealed record Point(string Arm, double? Lambda, Aggregate? Icl, Aggregate? If, Aggregate? Judge, Aggregate? JudgeLc, Aggregate? Shift);

    static Aggregate? Find(IGrouping<string, CellResult> arm, string suite, string name) =>
        arm.FirstOrDefault(c => c.Suite == suite)?.Aggregates.FirstOrDefault(a => a.Name == name);

    static List<Point> Points(IReadOnlyList<CellResult> cells, string lang) =>
        cells.Where(c => c.Language == lang).GroupBy(c => c.Arm).Select(g => new Point(g.Key, g.First().Lambda,
            Find(g, "icl", "icl"), Find(g, "if", "if"), Find(g, "judge", "judge"), Find(g, "judge", "judge/length_controlled"), Find(g, "shift", "shift")))
        .OrderBy(p => p.Lambda ?? double.MaxValue).ThenBy(p => p.Arm, StringComparer.Ordinal).ToList();

    static string F(double v, int decimals = 3) => double.IsFinite(v) ? v.ToString("F" + decimals, Inv) : "–";
    static string H(string s) => WebUtility.HtmlEncode(s);

    /// <summary>Writes the report in the given format (html, md, json, csv).</summary>
    public static string Render(ResultsStore store, string format) => format switch
    {
        "html" => Html(store),
        "md" => Markdown(store.Cells(withItems: true)),
        "json" => Json(store.Cells()).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }),
        "csv" => Csv(store.Cells()),
        _ => throw new AttuneException(null, "--format", $"\"{format}\" is not html, md, json or csv"),
    };

    // ---- Numbers ---------------------------------------------------------------------------

    public static JsonObject Json(IReadOnlyList<CellResult> cells) => new()
    {
        ["cells"] = new JsonArray(cells.Select(c => (JsonNode)new JsonObject
        {
            ["key"] = c.Key, ["arm"] = c.Arm, ["lambda"] = c.Lambda, ["suite"] = c.Suite, ["lang"] = c.Language, ["model"] = c.ModelIdentity,
            ["seconds"] = c.Seconds, ["settings"] = c.Settings.DeepClone(),
            ["aggregates"] = new JsonObject(c.Aggregates.Select(a => KeyValuePair.Create(a.Name, (JsonNode?)new JsonObject
            {
                ["value"] = double.IsFinite(a.Value) ? a.Value : null, ["ci_low"] = a.Low, ["ci_high"] = a.High, ["n"] = a.Count,
            }))),
        }).ToArray()),
    };

    public static string Csv(IReadOnlyList<CellResult> cells)
    {
        var sb = new StringBuilder("arm,lambda,suite,lang,metric,value,ci_low,ci_high,n\n");
        static string Q(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
        foreach (var c in cells)
            foreach (var a in c.Aggregates)
                sb.Append(Q(c.Arm)).Append(',').Append(c.Lambda?.ToString("R", Inv)).Append(',').Append(c.Suite).Append(',').Append(c.Language).Append(',')
                    .Append(Q(a.Name)).Append(',').Append(double.IsFinite(a.Value) ? a.Value.ToString("R", Inv) : "").Append(',')
                    .Append(a.Low?.ToString("R", Inv)).Append(',').Append(a.High?.ToString("R", Inv)).Append(',').Append(a.Count).Append('\n');
        return sb.ToString();
    }

    public static string Markdown(IReadOnlyList<CellResult> cells)
    {
        var sb = new StringBuilder("# The ICL ↔ instruction-following trade-off\n\n## Findings\n\n");
        foreach (var lang in cells.Select(c => c.Language).Distinct().Order())
            foreach (var f in Findings.For(cells, lang))
                sb.Append($"- {lang}: {f.Text}{(f.Significant switch { true => " (significant at 95%)", false => " (not significant at 95%)", null => "" })}\n");
        sb.Append('\n');
        foreach (var lang in cells.Select(c => c.Language).Distinct().Order())
        {
            bool judged = cells.Any(c => c.Language == lang && c.Suite == "judge");
            bool shifted = cells.Any(c => c.Language == lang && c.Suite == "shift");
            sb.Append($"## {lang}\n\n| arm | λ | ICL (95% CI) | IF prompt-level loose (95% CI) |{(judged ? " judge win rate (95% CI) | length-controlled |" : "")}{(shifted ? " shifted tokens (95% CI) |" : "")}\n" +
                $"|---|---:|---|---|{(judged ? "---|---:|" : "")}{(shifted ? "---|" : "")}\n");
            foreach (var p in Points(cells, lang))
                sb.Append($"| {p.Arm} | {(p.Lambda is double l ? new Lambda(l).Text : "")} | {Cell(p.Icl)} | {Cell(p.If)} |{(judged ? $" {Cell(p.Judge)} | {(p.JudgeLc is { } lc ? F(lc.Value) : "")} |" : "")}{(shifted ? $" {Cell(p.Shift)} |" : "")}\n");
            sb.Append('\n');
        }
        return sb.ToString();

        static string Cell(Aggregate? a) => a is null ? "" : $"{F(a.Value)} [{F(a.Low ?? double.NaN)}, {F(a.High ?? double.NaN)}]";
    }

    // ---- HTML ------------------------------------------------------------------------------

    static string Html(ResultsStore store)
    {
        var cells = store.Cells(withItems: true);
        var langs = cells.Select(c => c.Language).Distinct().OrderBy(l => Array.IndexOf(["en", "fr", "es"], l)).ToList();
        var sb = new StringBuilder();
        sb.Append("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Attune: the ICL ↔ instruction-following trade-off</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
            h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{margin-top:1.4rem}
            table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
            th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:1rem}
            figure{margin:0}figcaption{font-size:.8rem;color:#555;text-align:center}svg text{font-size:11px;fill:#333}
            .gen td{text-align:left;white-space:pre-wrap;max-width:320px;font-family:ui-monospace,monospace;font-size:.75rem}.muted{color:#777}
            .scroll{overflow-x:auto;max-width:100%}.findings td,.findings th{text-align:left}.findings li{margin:.15rem 0}.sig{font-weight:600;color:#1a5e20}.ns{color:#777}
            </style></head><body>
            <h1>The ICL ↔ instruction-following trade-off</h1>
            """);
        if (cells.Count == 0)
        {
            sb.Append("<p>The store holds no finished cell yet.</p></body></html>");
            return sb.ToString();
        }
        var arms = cells.Select(c => c.Arm).Distinct().ToList();
        sb.Append($"<p class=\"muted\">{cells.Count} cells: {arms.Count} arms × {cells.Select(c => c.Suite).Distinct().Count()} suites × {langs.Count} languages. " +
            "ICL: mean over tasks of each task's accuracy (or exact match); IF: prompt-level loose accuracy; judge (when run): win rate against the reference answers. " +
            "Intervals are bootstrap 95% (the win rate's: ±1.96 standard errors).</p>");
        sb.Append(FindingsTable(cells, langs));
        foreach (var lang in langs)
        {
            var points = Points(cells, lang);
            sb.Append($"<h2>Language: {H(lang)}</h2><div class=\"charts\">");
            sb.Append(Figure(TradeOff(points), $"Trade-off ({lang}): ICL score against IF score, one point per λ; ◆ base with URIAL, ■ instruct/tuned arms"));
            sb.Append(Figure(AgainstLambda(points, p => p.Icl, "ICL score"), $"ICL score against λ ({lang}), 95% intervals"));
            sb.Append(Figure(AgainstLambda(points, p => p.If, "IF score"), $"IF score against λ ({lang}), 95% intervals"));
            if (points.Any(p => p.Judge is not null))
                sb.Append(Figure(AgainstLambda(points, p => p.Judge, "judge win rate"), $"Judge win rate against the references by λ ({lang}), 95% intervals"));
            if (points.Any(p => p.Shift is not null))
                sb.Append(Figure(AgainstLambda(points, p => p.Shift, "shifted tokens"), $"Token distribution shift against the base by λ ({lang}): share of answer tokens outside the base model's top 3, 95% intervals"));
            sb.Append("</div>");
            sb.Append(ScoreTable(points));
            sb.Append(Breakdown(cells, lang, "judge", "judge/aspect/", "Judge: aspect scores (1–5)", _ => true));
            sb.Append(Breakdown(cells, lang, "shift", "shift/", "Token distribution shift against the base (shares of answer tokens; by position along the answer)", _ => true));
            sb.Append(Breakdown(cells, lang, "icl", "icl/", "Per task", name => name.EndsWith("/acc") || name.EndsWith("/exact_match")));
            sb.Append(Breakdown(cells, lang, "if", "if/checker/", "Per instruction (strict)", _ => true));
            sb.Append(Breakdown(cells, lang, "if", "errors/", "Critical errors (count of responses)", _ => true, integers: true));
            sb.Append(Generations(cells, lang));
        }
        sb.Append("<p class=\"muted\">Written by attune report from ").Append(H(Path.GetFileName(store.Path))).Append(".</p></body></html>");
        // Wide tables scroll inside their own box rather than pushing the page sideways.
        return sb.ToString().Replace("<table", "<div class=\"scroll\"><table").Replace("</table>", "</table></div>");
    }

    static string Mark(bool? significant) => significant switch
    {
        true => " <span class=\"sig\">(significant at 95%)</span>",
        false => " <span class=\"ns\">(not significant at 95%)</span>",
        null => "",
    };

    /// <summary>The findings block: one row per language, each finding with its significance (<see cref="Findings"/>).</summary>
    static string FindingsTable(List<CellResult> cells, List<string> langs)
    {
        var sb = new StringBuilder("<h2>Findings</h2><table class=\"findings\"><tr><th>language</th><th>what the study shows</th></tr>");
        foreach (var lang in langs)
        {
            var findings = Findings.For(cells, lang);
            sb.Append($"<tr class=\"finding-row\"><td>{H(lang)}</td><td>");
            sb.Append(findings.Count == 0 ? "<span class=\"muted\">no instruct arm to compare with</span>"
                : "<ul>" + string.Concat(findings.Select(f => $"<li>{H(f.Text)}{Mark(f.Significant)}</li>")) + "</ul>");
            sb.Append("</td></tr>");
        }
        return sb.Append("</table>").ToString();
    }

    static string Figure(string svg, string caption) => $"<figure>{svg}<figcaption>{H(caption)}</figcaption></figure>";

    static string ScoreTable(List<Point> points)
    {
        bool judged = points.Any(p => p.Judge is not null);
        var sb = new StringBuilder("<table><tr><th>arm</th><th>λ</th><th>ICL</th><th>95% CI</th><th>IF</th><th>95% CI</th>" +
            (judged ? "<th>judge win rate</th><th>95% CI</th><th>length-controlled</th>" : "") + "</tr>");
        static string Value(Aggregate? a) => a is null ? "" : F(a.Value);
        static string Interval(Aggregate? a) => a is null ? "" : $"[{F(a.Low ?? double.NaN)}, {F(a.High ?? double.NaN)}]";
        foreach (var p in points)
            sb.Append($"<tr><td>{H(p.Arm)}</td><td>{(p.Lambda is double l ? new Lambda(l).Text : "")}</td>" +
                $"<td>{Value(p.Icl)}</td><td>{Interval(p.Icl)}</td><td>{Value(p.If)}</td><td>{Interval(p.If)}</td>" +
                (judged ? $"<td>{Value(p.Judge)}</td><td>{Interval(p.Judge)}</td><td>{Value(p.JudgeLc)}</td>" : "") + "</tr>");
        return sb.Append("</table>").ToString();
    }

    /// <summary>A table of one family of aggregates (rows) across arms (columns).</summary>
    static string Breakdown(List<CellResult> cells, string lang, string suite, string prefix, string title, Func<string, bool> keep, bool integers = false)
    {
        var bySuite = cells.Where(c => c.Language == lang && c.Suite == suite).OrderBy(c => c.Lambda ?? double.MaxValue).ThenBy(c => c.Arm, StringComparer.Ordinal).ToList();
        var names = bySuite.SelectMany(c => c.Aggregates).Select(a => a.Name).Where(n => n.StartsWith(prefix) && keep(n)).Distinct().Order(StringComparer.Ordinal).ToList();
        if (names.Count == 0) return "";
        var sb = new StringBuilder($"<h3>{H(title)}</h3><table><tr><th></th>");
        foreach (var c in bySuite) sb.Append($"<th>{H(c.Arm)}</th>");
        sb.Append("</tr>");
        foreach (var name in names)
        {
            sb.Append($"<tr><td>{H(name[prefix.Length..])}</td>");
            foreach (var c in bySuite)
                sb.Append("<td>").Append(c.Aggregates.FirstOrDefault(a => a.Name == name) is { } a ? integers ? ((int)a.Value).ToString(Inv) : F(a.Value) : "").Append("</td>");
            sb.Append("</tr>");
        }
        return sb.Append("</table>").ToString();
    }

    /// <summary>The same IF prompts answered by every arm, side by side (the first three of the language).</summary>
    static string Generations(List<CellResult> cells, string lang)
    {
        var ifCells = cells.Where(c => c.Language == lang && c.Suite == "if" && c.Items.Count > 0)
            .OrderBy(c => c.Lambda ?? double.MaxValue).ThenBy(c => c.Arm, StringComparer.Ordinal).ToList();
        if (ifCells.Count == 0) return "";
        var keys = ifCells[0].Items.Take(3).Select(i => i["key"]?.ToString()).ToList();
        var sb = new StringBuilder("<h3>Sample generations</h3>");
        foreach (var key in keys)
        {
            var prompt = ifCells[0].Items.First(i => i["key"]?.ToString() == key)["prompt"]?.ToString() ?? "";
            sb.Append($"<p><b>{H(key ?? "")}</b>: {H(prompt)}</p><table class=\"gen\"><tr>");
            foreach (var c in ifCells) sb.Append($"<th>{H(c.Arm)}</th>");
            sb.Append("</tr><tr>");
            foreach (var c in ifCells)
            {
                var item = c.Items.FirstOrDefault(i => i["key"]?.ToString() == key);
                var text = item?["response"]?.ToString() ?? "";
                if (text.Length > 600) text = text[..600] + " …";
                sb.Append($"<td>{H(text)}</td>");
            }
            sb.Append("</tr></table>");
        }
        return sb.ToString();
    }

    // ---- Charts ----------------------------------------------------------------------------

    const int W = 340, Hh = 260, Left = 46, Right = 14, Top = 14, Bottom = 40;

    static double X(double v, double lo, double hi) => Left + (v - lo) / Math.Max(1e-9, hi - lo) * (W - Left - Right);
    static double Y(double v, double lo, double hi) => Hh - Bottom - (v - lo) / Math.Max(1e-9, hi - lo) * (Hh - Top - Bottom);
    static string N(double v) => v.ToString("F1", Inv);

    /// <summary>Axis range around the values with a little room, within [0, 1].</summary>
    static (double Lo, double Hi) Range(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToList();
        if (v.Count == 0) return (0, 1);
        double lo = v.Min(), hi = v.Max(), pad = Math.Max(0.02, (hi - lo) * 0.1);
        return (Math.Max(0, lo - pad), Math.Min(1, hi + pad) <= Math.Max(0, lo - pad) ? Math.Max(0, lo - pad) + 0.05 : Math.Min(1, hi + pad));
    }

    static string Axes(StringBuilder sb, (double Lo, double Hi) x, (double Lo, double Hi) y, string xLabel, string yLabel)
    {
        sb.Append($"<line x1=\"{Left}\" y1=\"{Hh - Bottom}\" x2=\"{W - Right}\" y2=\"{Hh - Bottom}\" stroke=\"#888\"/>");
        sb.Append($"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Hh - Bottom}\" stroke=\"#888\"/>");
        // Tick labels with as many decimals as a quarter of the range needs.
        static string Tick(double v, double range) => v.ToString("F" + Math.Clamp((int)Math.Ceiling(-Math.Log10(Math.Max(1e-6, range / 4))), 0, 4), Inv);
        for (int i = 0; i <= 4; i++)
        {
            double xv = x.Lo + (x.Hi - x.Lo) * i / 4, yv = y.Lo + (y.Hi - y.Lo) * i / 4;
            sb.Append($"<text x=\"{N(X(xv, x.Lo, x.Hi))}\" y=\"{Hh - Bottom + 14}\" text-anchor=\"middle\">{Tick(xv, x.Hi - x.Lo)}</text>");
            sb.Append($"<text x=\"{Left - 4}\" y=\"{N(Y(yv, y.Lo, y.Hi) + 4)}\" text-anchor=\"end\">{Tick(yv, y.Hi - y.Lo)}</text>");
        }
        sb.Append($"<text x=\"{(Left + W - Right) / 2}\" y=\"{Hh - 6}\" text-anchor=\"middle\">{H(xLabel)}</text>");
        sb.Append($"<text transform=\"translate(12,{(Top + Hh - Bottom) / 2}) rotate(-90)\" text-anchor=\"middle\">{H(yLabel)}</text>");
        return "";
    }

    /// <summary>ICL (x) against IF (y): the λ arms joined in λ order, other arms marked on their own.</summary>
    static string TradeOff(List<Point> points)
    {
        var usable = points.Where(p => p.Icl is { } i && double.IsFinite(i.Value) && p.If is { } f && double.IsFinite(f.Value)).ToList();
        var x = Range(usable.Select(p => p.Icl!.Value));
        var y = Range(usable.Select(p => p.If!.Value));
        var sb = new StringBuilder($"<svg class=\"tradeoff\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{Hh}\" viewBox=\"0 0 {W} {Hh}\" role=\"img\">");
        Axes(sb, x, y, "ICL score", "IF score");
        var curve = usable.Where(p => p.Lambda is not null).ToList();
        if (curve.Count > 1)
            sb.Append("<polyline fill=\"none\" stroke=\"#4a7bd0\" stroke-width=\"1.5\" points=\"")
              .Append(string.Join(' ', curve.Select(p => $"{N(X(p.Icl!.Value, x.Lo, x.Hi))},{N(Y(p.If!.Value, y.Lo, y.Hi))}"))).Append("\"/>");
        // Labels on the curve's ends and middle and on the other arms only (every point has its tooltip),
        // so that eleven λ values close together stay readable.
        var labelled = new HashSet<Point>(curve.Count > 0 ? [curve[0], curve[curve.Count / 2], curve[^1]] : []);
        foreach (var p in usable)
        {
            double cx = X(p.Icl!.Value, x.Lo, x.Hi), cy = Y(p.If!.Value, y.Lo, y.Hi);
            var label = p.Lambda is double l ? $"λ={new Lambda(l)}" : p.Arm;
            bool showLabel = p.Lambda is null || labelled.Contains(p);
            if (p.Lambda is not null)
                sb.Append($"<circle class=\"point\" data-arm=\"{H(p.Arm)}\" cx=\"{N(cx)}\" cy=\"{N(cy)}\" r=\"4\" fill=\"#4a7bd0\"><title>{H(label)}: ICL {F(p.Icl.Value)}, IF {F(p.If.Value)}</title></circle>");
            else if (p.Arm == "base-urial")
                sb.Append($"<path class=\"point\" data-arm=\"{H(p.Arm)}\" d=\"M{N(cx)},{N(cy - 6)} L{N(cx + 6)},{N(cy)} L{N(cx)},{N(cy + 6)} L{N(cx - 6)},{N(cy)} Z\" fill=\"#d0764a\"><title>{H(label)}: ICL {F(p.Icl.Value)}, IF {F(p.If.Value)}</title></path>");
            else
                sb.Append($"<rect class=\"point\" data-arm=\"{H(p.Arm)}\" x=\"{N(cx - 5)}\" y=\"{N(cy - 5)}\" width=\"10\" height=\"10\" fill=\"#3a9a5b\"><title>{H(label)}: ICL {F(p.Icl.Value)}, IF {F(p.If.Value)}</title></rect>");
            if (showLabel) sb.Append($"<text x=\"{N(cx + 7)}\" y=\"{N(cy - 6)}\">{H(label)}</text>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>One score against λ with its interval as error bars; arms without λ as dashed lines.</summary>
    static string AgainstLambda(List<Point> points, Func<Point, Aggregate?> pick, string yLabel)
    {
        var curve = points.Where(p => p.Lambda is not null && pick(p) is { } a && double.IsFinite(a.Value)).ToList();
        var others = points.Where(p => p.Lambda is null && pick(p) is { } a && double.IsFinite(a.Value)).ToList();
        var x = curve.Count > 0 ? (curve.Min(p => p.Lambda!.Value), curve.Max(p => p.Lambda!.Value)) : (0.0, 1.0);
        if (x.Item2 <= x.Item1) x = (x.Item1 - 0.5, x.Item2 + 0.5);
        var y = Range(curve.Concat(others).SelectMany(p => new[] { pick(p)!.Value, pick(p)!.Low ?? double.NaN, pick(p)!.High ?? double.NaN }));
        var sb = new StringBuilder($"<svg class=\"lambda\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{Hh}\" viewBox=\"0 0 {W} {Hh}\" role=\"img\">");
        Axes(sb, x, y, "λ", yLabel);
        foreach (var o in others)
        {
            double oy = Y(pick(o)!.Value, y.Lo, y.Hi);
            sb.Append($"<line x1=\"{Left}\" y1=\"{N(oy)}\" x2=\"{W - Right}\" y2=\"{N(oy)}\" stroke=\"#d0764a\" stroke-dasharray=\"4 3\"/><text x=\"{W - Right}\" y=\"{N(oy - 3)}\" text-anchor=\"end\">{H(o.Arm)}</text>");
        }
        if (curve.Count > 1)
            sb.Append("<polyline fill=\"none\" stroke=\"#4a7bd0\" stroke-width=\"1.5\" points=\"")
              .Append(string.Join(' ', curve.Select(p => $"{N(X(p.Lambda!.Value, x.Item1, x.Item2))},{N(Y(pick(p)!.Value, y.Lo, y.Hi))}"))).Append("\"/>");
        foreach (var p in curve)
        {
            var a = pick(p)!;
            double cx = X(p.Lambda!.Value, x.Item1, x.Item2);
            if (a.Low is double lo && a.High is double hi && double.IsFinite(lo) && double.IsFinite(hi))
                sb.Append($"<line x1=\"{N(cx)}\" y1=\"{N(Y(lo, y.Lo, y.Hi))}\" x2=\"{N(cx)}\" y2=\"{N(Y(hi, y.Lo, y.Hi))}\" stroke=\"#4a7bd0\"/>");
            sb.Append($"<circle class=\"point\" cx=\"{N(cx)}\" cy=\"{N(Y(a.Value, y.Lo, y.Hi))}\" r=\"3.5\" fill=\"#4a7bd0\"><title>λ={new Lambda(p.Lambda!.Value)}: {F(a.Value)}</title></circle>");
        }
        return sb.Append("</svg>").ToString();
    }
}
