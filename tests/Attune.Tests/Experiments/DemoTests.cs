using System.Diagnostics;
using Attune.Experiments;
using Attune.Tests.Cli;

namespace Attune.Tests.Experiments;

/// <summary><c>attune demo</c> end to end on the shipped demo models: the whole study and its report.</summary>
[Collection("Simd")]
public class DemoTests
{
    [Fact]
    public void Attune_demo_runs_the_whole_study_on_the_shipped_models()
    {
        using var tmp = new TempDir();
        var clock = Stopwatch.StartNew();
        var (code, text, err) = CliRunner.Run("", ["demo", "--out", tmp["demo"]]);
        Assert.True(code == 0, err);
        // Timed for the record (bench/RESULTS.md has the measured figure); not asserted.
        Console.WriteLine($"attune demo took {clock.Elapsed.TotalSeconds:F0} s");
        Assert.Contains("report.html", text);
        Assert.True(File.Exists(tmp["demo/report.html"]));
        using var store = new ResultsStore(tmp["demo/runs.db"]);
        var cells = store.Cells();
        // 11 λ values, the base with URIAL and the DPO model; ICL and IF; three languages.
        Assert.Equal(13 * 2 * 3, cells.Count);
        Assert.Equal(11, cells.Where(c => c.Lambda is not null).Select(c => c.Lambda).Distinct().Count());
        Assert.Contains(cells, c => c.Arm == "dpo");
        Assert.Contains(cells, c => c.Arm == "base-urial");
        // A second run finds every cell done.
        (code, _, err) = CliRunner.Run("", ["demo", "--out", tmp["demo"]]);
        Assert.True(code == 0, err);
        Assert.Contains("0 cells run, 78 resumed", err);
    }
}
