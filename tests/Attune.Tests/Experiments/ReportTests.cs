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
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Artifacts, "report.png"), FullPage = true });
        Assert.Empty(errors);
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
