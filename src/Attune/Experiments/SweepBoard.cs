using System.Globalization;

namespace Attune.Experiments;

/// <summary>
/// The state of a running sweep for its progress display: every cell as pending, running, finished (with
/// its score) or resumed from the store, laid out as arms (rows) × suite and language (columns), with the
/// elapsed time and an estimate of the time left.
/// </summary>
public sealed class SweepBoard
{
    enum State { Pending, Running, Done, Resumed }

    readonly IReadOnlyList<Cell> _cells;
    readonly Dictionary<string, (State State, double? Score, double Seconds)> _status = [];
    readonly List<string> _arms;
    readonly List<(string Suite, string Language)> _columns;

    public SweepBoard(IReadOnlyList<Cell> cells, IReadOnlySet<string> resumed)
    {
        _cells = cells;
        foreach (var c in cells) _status[c.Key] = (resumed.Contains(c.Key) ? State.Resumed : State.Pending, null, 0);
        _arms = cells.Select(c => c.Arm.Name).Distinct().ToList();
        _columns = cells.Select(c => (c.Suite, c.Language)).Distinct().ToList();
    }

    public int Total => _cells.Count;
    public int Finished => _status.Values.Count(s => s.State is State.Done or State.Resumed);

    public void Update(Sweep.Progress p) =>
        _status[p.Cell.Key] = p.Finished ? (State.Done, p.Score, p.Seconds) : (State.Running, null, 0);

    /// <summary>
    /// Time left: each suite's cells still to run times the mean time of that suite's cells finished in this
    /// run (ICL and IF cells differ several-fold); a suite with none finished yet counts at the mean of all.
    /// Null until a cell has finished.
    /// </summary>
    public TimeSpan? Eta()
    {
        var ran = _cells.Where(c => _status[c.Key].State == State.Done).ToList();
        if (ran.Count == 0) return null;
        double overall = ran.Average(c => _status[c.Key].Seconds);
        double seconds = 0;
        foreach (var suite in _cells.GroupBy(c => c.Suite))
        {
            var finished = suite.Where(c => _status[c.Key].State == State.Done).Select(c => _status[c.Key].Seconds).ToList();
            double mean = finished.Count > 0 ? finished.Average() : overall;
            seconds += mean * suite.Count(c => _status[c.Key].State is State.Pending or State.Running);
        }
        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>The column headers: "arm", then suite/language.</summary>
    public List<string> Header() => ["arm", .. _columns.Select(c => $"{c.Suite} {c.Language}")];

    /// <summary>
    /// One row per arm: the cell's score when finished (resumed ones marked ↺), "…" while running, "·"
    /// pending, blank where the arm has no such cell (another shard's).
    /// </summary>
    public List<string[]> Rows() => _arms.Select(arm => new[] { arm }.Concat(_columns.Select(col =>
    {
        var cell = _cells.FirstOrDefault(c => c.Arm.Name == arm && c.Suite == col.Suite && c.Language == col.Language);
        if (cell is null) return "";
        var (state, score, _) = _status[cell.Key];
        return state switch
        {
            State.Done => Score(score) is { } s ? s : "done",
            State.Resumed => "↺",
            State.Running => "…",
            _ => "·",
        };
    })).ToArray()).ToList();

    /// <summary>A cell's headline score as the board shows it (three decimals), or null when it has none.</summary>
    public static string? Score(double? value) =>
        value is double v && double.IsFinite(v) ? v.ToString("F3", CultureInfo.InvariantCulture) : null;

    /// <summary>"12/78 cells · 00:01:23 elapsed · ETA 00:03:10".</summary>
    public string Summary(TimeSpan elapsed) =>
        $"{Finished}/{Total} cells · {elapsed:hh\\:mm\\:ss} elapsed · ETA {(Eta() is { } eta ? eta.ToString(@"hh\:mm\:ss") : "–")}";
}
