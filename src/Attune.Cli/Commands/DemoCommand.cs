using System.CommandLine;
using System.Diagnostics;
using Attune.Evaluation;
using Attune.Experiments;
using Attune.Formats;

namespace Attune.Cli.Commands;

/// <summary>
/// <c>attune demo</c>: the whole study on the demo world's models (<see cref="DemoStudy"/>) and its report;
/// <c>--rebuild</c> regenerates the world and retrains the models first.
/// </summary>
public static class DemoCommand
{
    public static Command Build()
    {
        var output = new Option<string>("--out") { Description = "Where the store and the report go", DefaultValueFactory = _ => "attune-demo" };
        var rebuild = new Option<bool>("--rebuild") { Description = "Regenerate the world and retrain the demo models (in DIR/build, resumed there when cut short), then run the study" };
        var data = new Option<string?>("--data") { Description = "The demo world's folder (default: data/demo in the source tree)" };
        var quick = new Option<bool>("--quick") { Description = "A smaller study (3 λ values, fewer items) for tests" };
        var cmd = new Command("demo", "The whole study on the built-in demo world (sweep, URIAL and DPO arms, three languages, ICL and IF) and its report") { output, rebuild, data, quick };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var dir = Path.GetFullPath(parse.GetValue(data) ?? DemoStudy.DefaultDataDir());
            if (parse.GetValue(rebuild)) DemoStudy.Rebuild(dir, log: io.Error, workDir: Path.Combine(dir, "build"));
            DemoStudy.CheckModels(dir);
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            Directory.CreateDirectory(outDir);
            var clock = Stopwatch.StartNew();
            var store = Path.Combine(outDir, "runs.db");
            int code = SweepCommand.RunPlan(io, DemoStudy.Plan(dir, parse.GetValue(quick)), store, shard: null, cachePath: null, new RemoteOptions());
            if (code != Program.Success) return code;
            var report = Path.Combine(outDir, "report.html");
            using (var results = new ResultsStore(store))
            {
                AtomicFile.WriteAllText(report, Report.Render(results, "html"));
                // Whether the demo models can do what the suites ask (the instruments, not the findings).
                foreach (var gate in DemoGates.Check(results.Cells())) io.Out.WriteLine("demo gate: " + gate);
            }
            io.Out.WriteLine($"demo: study and report in {clock.Elapsed.TotalSeconds:F0} s → {report}");
            return Program.Success;
        });
        return cmd;
    }
}
