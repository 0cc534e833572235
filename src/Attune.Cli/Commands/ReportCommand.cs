using System.CommandLine;
using Attune.Experiments;
using Attune.Formats;

namespace Attune.Cli.Commands;

/// <summary><c>attune report STORE.db --out FILE --format html|md|json|csv</c>.</summary>
public static class ReportCommand
{
    public static Command Build()
    {
        var store = new Argument<string>("store") { Description = "The results store of a sweep (a SQLite file or a postgresql:// URL)" };
        var output = new Option<string?>("--out") { Description = "Where to write the report (default: stdout)" };
        var format = new Option<string?>("--format") { Description = "html | md | json | csv (default: from --out's extension, else md)" };
        var cmd = new Command("report", "The study's report: a self-contained HTML page with inline SVG charts, or Markdown, JSON or CSV") { store, output, format };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var path = parse.GetValue(store)!;
            var outPath = parse.GetValue(output);
            var fmt = parse.GetValue(format) ?? Path.GetExtension(outPath ?? "").TrimStart('.').ToLowerInvariant() switch
            {
                "html" or "htm" => "html", "json" => "json", "csv" => "csv", _ => "md",
            };
            using var results = SweepCommand.OpenExisting(path);
            var text = Report.Render(results, fmt);
            if (outPath is null) io.Out.Write(text);
            else
            {
                AtomicFile.WriteAllText(outPath, text);
                io.Error.WriteLine($"wrote {outPath} ({fmt}, {results.Cells().Count} cells)");
            }
            return Program.Success;
        });
        return cmd;
    }
}
