using System.Text.Json.Nodes;
using Attune.Experiments;
using Attune.Modeling;
using Attune.Models;
using Attune.Tests.Evaluation;
using Attune.Tensors;
using Microsoft.Playwright;

namespace Attune.Tests.Experiments;

[Collection("Simd")]
public class ReportTests
{
    /// <summary>Where test artifacts (the report's screenshot) are kept: TestResults/ at the repository root.</summary>
    static string Artifacts => Directory.CreateDirectory(Path.Combine(Repo.Root, "TestResults")).FullName;

    static async Task<string> SmallStudy(TempDir tmp)
    {
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["instruct"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        var sweep = new Sweep(new SweepPlan
        {
            Base = ModelReference.Parse(tmp["base"]), Instruct = ModelReference.Parse(tmp["instruct"]), Lambdas = [0, 0.5, 1], Languages = ["en", "es"],
            Icl = "builtin:nli", If = "builtin", IclLimit = 4, IfLimit = 3, IfMaxTokens = 12, UrialShots = 1,
            Judge = TestModels.ScriptedJudge, JudgeLimit = 3,
        });
        using var store = new ResultsStore(tmp["runs.db"]);
        await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), sweep.Cells(), judge: ScriptedJudge.LengthLoving());
        return tmp["runs.db"];
    }

    [Fact]
    public async Task The_report_opens_in_Chromium_with_every_point_drawn_and_no_console_error()
    {
        using var tmp = new TempDir();
        var db = await SmallStudy(tmp);
        string html;
        using (var store = new ResultsStore(db)) html = Report.Render(store, "html");
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", ""));
        Assert.DoesNotContain("https://", html);
        File.WriteAllText(tmp["report.html"], html);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium(), Headless = true, Args = ["--no-sandbox"],
        });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, m) => { if (m.Type == "error") errors.Add(m.Text); };
        page.PageError += (_, e) => errors.Add(e);
        await page.GotoAsync("file://" + tmp["report.html"]);
        // Two languages: a trade-off chart each with 3 λ points and the base-with-URIAL marker,
        // and three charts against λ (ICL, IF, judge) with 3 points each.
        var tradeoffs = page.Locator("svg.tradeoff");
        Assert.Equal(2, await tradeoffs.CountAsync());
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(4, await tradeoffs.Nth(i).Locator(".point").CountAsync());
            var box = await tradeoffs.Nth(i).BoundingBoxAsync();
            Assert.True(box is { Width: > 100, Height: > 100 });
        }
        Assert.Equal(6, await page.Locator("svg.lambda").CountAsync());
        Assert.All(await page.Locator("svg.lambda").AllAsync(), async svg => Assert.Equal(3, await svg.Locator("circle.point").CountAsync()));
        Assert.True(await page.Locator("table.gen").CountAsync() >= 2);
        // The findings block: one row per language, each with its sentences.
        Assert.Equal(2, await page.Locator("table.findings tr.finding-row").CountAsync());
        Assert.All(await page.Locator("table.findings tr.finding-row").AllAsync(), async row => Assert.True(await row.Locator("li").CountAsync() >= 3));
        // Wide tables scroll in their own box: the page itself is no wider than the window.
        Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth + 1"));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Artifacts, "report.png"), FullPage = true });
        Assert.Empty(errors);
    }

    static CellResult Cell(string arm, double? lambda, string suite, double value, double halfWidth) =>
        new(arm + suite, arm, lambda, suite, "fr", "m", [], [new Aggregate(suite, value, value - halfWidth, value + halfWidth, 100)], [], 0);

    [Fact]
    public void Findings_say_which_differences_are_significant()
    {
        // ICL best at λ = 0 by 0.20 with narrow intervals (significant); the IF cost there 0.04 with wide ones (not).
        CellResult[] cells =
        [
            Cell("lambda-0.00", 0, "icl", 0.60, 0.04), Cell("lambda-0.50", 0.5, "icl", 0.50, 0.04), Cell("lambda-1.00", 1, "icl", 0.40, 0.04),
            Cell("lambda-0.00", 0, "if", 0.30, 0.10), Cell("lambda-1.00", 1, "if", 0.34, 0.10),
            Cell("base-urial", null, "if", 0.10, 0.03), Cell("dpo", null, "if", 0.36, 0.10),
        ];
        var findings = Findings.For(cells, "fr");
        Assert.StartsWith("ICL is best at λ = 0.00", findings[0].Text);
        Assert.Contains("+0.200", findings[0].Text);
        Assert.True(findings[0].Significant);
        Assert.Contains("IF (prompt-level loose) at λ = 0.00", findings[1].Text);
        Assert.False(findings[1].Significant);
        Assert.Contains("URIAL", findings[2].Text);
        Assert.True(findings[2].Significant); // 0.10 against 0.34, intervals ±0.03 and ±0.10
        Assert.Contains("DPO", findings[3].Text);
        Assert.False(findings[3].Significant);
        Assert.Empty(Findings.For(cells.Where(c => c.Lambda != 1).ToList(), "fr")); // nothing to compare with
        var difference = Findings.Difference(cells[0].Aggregates[0], cells[2].Aggregates[0])!.Value;
        Assert.Equal(0.2, difference.Difference, 1e-12);
        Assert.Equal(0.2 - 1.96 * Math.Sqrt(2) * 0.04 / 1.96, difference.Low, 1e-9);
    }

    [Fact]
    public void With_the_items_the_difference_is_a_paired_bootstrap()
    {
        // 20 prompts: the instruct model follows 8, URIAL the same 8 and 4 more. Apart, the two scores' intervals overlap
        // (0.60 and 0.40, ±0.22 each: not significant); paired, the 4 extra prompts are a difference the interval keeps.
        static CellResult IfCell(string arm, double? lambda, int followed) => new(arm, arm, lambda, "if", "fr", "m", [],
            [new Aggregate("if", followed / 20.0, followed / 20.0 - 0.22, followed / 20.0 + 0.22, 20)],
            Enumerable.Range(0, 20).Select(i => new JsonObject { ["key"] = $"p{i}", ["loose"] = new JsonArray(i < followed) }).ToList(), 0);
        CellResult[] cells = [IfCell("lambda-1.00", 1, 8), IfCell("base-urial", null, 12)];
        Assert.False(Findings.Difference(cells[1].Aggregates[0], cells[0].Aggregates[0])!.Value.Significant);
        var paired = Findings.PairedDifference(cells[1], cells[0], "if")!.Value;
        Assert.Equal(0.2, paired.Difference, 1e-12);
        Assert.True(paired.Significant, $"[{paired.Low}, {paired.High}]");
        var finding = Findings.For(cells, "fr").Single();
        Assert.Contains("URIAL", finding.Text);
        Assert.Contains("paired", finding.Text);
        Assert.True(finding.Significant);
        // Items that do not pair up (another prompt set) fall back to the intervals.
        var other = cells[0] with { Items = cells[0].Items.Select((it, i) => new JsonObject { ["key"] = $"q{i}", ["loose"] = it["loose"]!.DeepClone() }).ToList() };
        Assert.Null(Findings.PairedDifference(cells[1], other, "if"));
    }

    /// <summary>Debian's chromium, which .ci/run installs.</summary>
    static string Chromium()
    {
        foreach (var p in new[] { Environment.GetEnvironmentVariable("ATTUNE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" })
            if (p is not null && File.Exists(p)) return p;
        throw new InvalidOperationException("Chromium is not installed: apt-get install chromium (.ci/run does), or set ATTUNE_CHROMIUM");
    }

    [Fact]
    public async Task The_report_also_comes_as_markdown_json_and_csv()
    {
        using var tmp = new TempDir();
        var db = await SmallStudy(tmp);
        using var store = new ResultsStore(db);
        var md = Report.Render(store, "md");
        Assert.Contains("| lambda-0.50 | 0.50 |", md);
        Assert.Contains("judge win rate (95% CI) | length-controlled |", md);
        var json = JsonNode.Parse(Report.Render(store, "json"))!;
        Assert.Equal(store.Cells().Count, json["cells"]!.AsArray().Count);
        var csv = Report.Render(store, "csv").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("arm,lambda,suite,lang,metric,value,ci_low,ci_high,n", csv[0]);
        Assert.Contains(csv, l => l.StartsWith("base-urial,,if,es,if,"));
        Assert.Contains(csv, l => l.StartsWith("lambda-1.00,1,judge,en,judge/aspect/clarity,"));
        Assert.Throws<AttuneException>(() => Report.Render(store, "pdf"));
    }
}
