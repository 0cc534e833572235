using System.Diagnostics;
using Attune.Experiments;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Attune.Cli.Commands;

/// <summary>
/// A sweep's progress on stderr: on a terminal, a live table of its cells (arms × suite and language,
/// each cell's score as it finishes) with the elapsed time and ETA; when stderr is redirected (logs, CI),
/// one line per finished cell with the same ETA.
/// </summary>
static class SweepDisplay
{
    public static int Run(CliIO io, IReadOnlyList<Cell> cells, IReadOnlySet<string> resumed, Func<Action<Sweep.Progress>, int> sweep)
    {
        var board = new SweepBoard(cells, resumed);
        var clock = Stopwatch.StartNew();
        if (!ReferenceEquals(io.Error, Console.Error) || Console.IsErrorRedirected)
            return sweep(p =>
            {
                board.Update(p);
                if (p.Finished)
                    io.Error.WriteLine($"  [{p.Done,3}/{p.Total}] {p.Cell.Arm.Name,-12} {p.Cell.Suite,-5} {p.Cell.Language}  {SweepBoard.Score(p.Score) ?? "–",6}  {p.Seconds,6:F1} s   {board.Summary(clock.Elapsed)}");
            });

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        int ran = 0;
        console.Live(Table(board, clock.Elapsed)).AutoClear(false).Start(live =>
        {
            ran = sweep(p =>
            {
                board.Update(p);
                live.UpdateTarget(Table(board, clock.Elapsed));
            });
            live.UpdateTarget(Table(board, clock.Elapsed));
        });
        return ran;
    }

    static IRenderable Table(SweepBoard board, TimeSpan elapsed)
    {
        var table = new Table().Border(TableBorder.Simple).Caption(Markup.Escape(board.Summary(elapsed)));
        foreach (var (h, i) in board.Header().Select((h, i) => (h, i)))
            table.AddColumn(new TableColumn(Markup.Escape(h)) { Alignment = i == 0 ? Justify.Left : Justify.Right });
        foreach (var row in board.Rows())
            table.AddRow(row.Select(c => (IRenderable)new Spectre.Console.Text(c)).ToArray());
        return table;
    }
}
