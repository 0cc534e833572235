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
        // 11 λ values, the base with URIAL and the DPO model; ICL and IF; three languages; and the token shift of every
        // arm but the base itself against the base.
        Assert.Equal(13 * 2 * 3 + 12 * 3, cells.Count);
        Assert.Equal(12 * 3, cells.Count(c => c.Suite == "shift"));
        Assert.True(File.ReadAllText(tmp["demo/report.html"]).Contains("Token distribution shift"));
        Assert.Equal(11, cells.Where(c => c.Lambda is not null).Select(c => c.Lambda).Distinct().Count());
        Assert.Contains(cells, c => c.Arm == "dpo");
        Assert.Contains(cells, c => c.Arm == "base-urial");
        // A second run finds every cell done.
        (code, _, err) = CliRunner.Run("", ["demo", "--out", tmp["demo"]]);
        Assert.True(code == 0, err);
        Assert.Contains("0 cells run, 114 resumed", err);
    }

    [Fact]
    public void A_rebuild_reproduces_its_models_bit_for_bit()
    {
        // The full rebuild (attune demo --rebuild, ~5 minutes) runs these same steps at a larger size; twice
        // at a small size here, each file of the three models must come out identical.
        using var tmp = new TempDir();
        var size = new DemoStudy.RebuildSize(Documents: 60, Instructions: 24, PretrainSteps: 3, SftSteps: 2, DpoSteps: 2);
        DemoStudy.Rebuild(tmp["a"], size);
        DemoStudy.Rebuild(tmp["b"], size);
        foreach (var model in new[] { "base", "instruct", "dpo" })
            foreach (var file in Directory.GetFiles(tmp[$"a/{model}"]).Select(Path.GetFileName))
                Assert.True(File.ReadAllBytes(tmp[$"a/{model}/{file}"]).AsSpan().SequenceEqual(File.ReadAllBytes(tmp[$"b/{model}/{file}"])), $"{model}/{file} differs");
        Assert.Equal(HashLines(tmp["a/BUILD.txt"]), HashLines(tmp["b/BUILD.txt"]));
    }

    [Fact]
    public void A_rebuild_cut_short_resumes_from_its_checkpoints_to_the_same_models()
    {
        using var tmp = new TempDir();
        var size = new DemoStudy.RebuildSize(Documents: 60, Instructions: 24, PretrainSteps: 4, SftSteps: 4, DpoSteps: 2, SaveEvery: 2);
        DemoStudy.Build(tmp["whole"], size, TextWriter.Null);
        // A run killed during SFT: base finished, instruct with its step-2 checkpoint only, DPO not started.
        DemoStudy.Build(tmp["cut"], size, TextWriter.Null);
        foreach (var f in Directory.GetFiles(tmp["cut/instruct"])) File.Delete(f);
        Directory.Delete(tmp["cut/instruct/checkpoint-4"], recursive: true);
        Directory.Delete(tmp["cut/dpo"], recursive: true);
        var log = new StringWriter();
        DemoStudy.Build(tmp["cut"], size, log);
        Assert.Contains("pretrain: done in an earlier run", log.ToString());
        Assert.Contains("sft (resuming)", log.ToString());
        foreach (var model in DemoStudy.ModelNames)
            foreach (var file in DemoStudy.ModelFiles)
                Assert.True(File.ReadAllBytes(tmp[$"whole/{model}/{file}"]).AsSpan().SequenceEqual(File.ReadAllBytes(tmp[$"cut/{model}/{file}"])), $"{model}/{file} differs");
    }

    [Fact]
    public void The_shipped_models_are_the_files_their_build_record_names()
    {
        var dir = Path.Combine(Repo.Root, "data", "demo");
        var lines = HashLines(Path.Combine(dir, "BUILD.txt"));
        Assert.Equal(15, lines.Count); // five files of each of the three models
        foreach (var line in lines)
        {
            var (hash, file) = (line[..64], line[66..]);
            using var f = File.OpenRead(Path.Combine(dir, file));
            Assert.Equal(hash, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(f)));
        }
    }

    static List<string> HashLines(string buildTxt) =>
        File.ReadAllLines(buildTxt).Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, "^[0-9a-f]{64}  ")).ToList();
}
