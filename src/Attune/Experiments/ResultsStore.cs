using Attune.Formats;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace Attune.Experiments;

/// <summary>One finished cell of a study: a model arm on one suite in one language, and what it scored.</summary>
public sealed record CellResult(
    string Key,
    string Arm,
    double? Lambda,
    string Suite,
    string Language,
    string ModelIdentity,
    JsonObject Settings,
    IReadOnlyList<Aggregate> Aggregates,
    IReadOnlyList<JsonObject> Items,
    double Seconds);

/// <summary>A named score of a cell with its 95% interval (task/metric, or IF level, or judge rate).</summary>
public sealed record Aggregate(string Name, double Value, double? Low, double? High, int Count);

/// <summary>
/// The study's results in SQLite (WAL): runs (the command, versions), cells (arm, λ, suite, language,
/// exact model identity and settings), per-item records and aggregates. Each cell is written in one
/// transaction as soon as it finishes, so a killed sweep loses at most the cell it was running, and a
/// rerun skips every cell already here. Stores of sharded runs merge into one.
/// </summary>
public sealed class ResultsStore : IDisposable
{
    public const int SchemaVersion = 1;
    readonly SqliteConnection _db;
    public string Path { get; }

    public ResultsStore(string path)
    {
        Path = path;
        // A URL is not a file name: taken as one it would make a folder named after its scheme.
        if (System.Text.RegularExpressions.Regex.IsMatch(path, "^[A-Za-z][A-Za-z0-9+.-]*://"))
            throw new AttuneException(path, $"a {path[..path.IndexOf(':')]}:// store is not one this Attune opens; the results store is a SQLite file (give its path)");
        try
        {
            _db = SqliteDatabase.Open(path, """
                CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, started TEXT NOT NULL, command TEXT NOT NULL, version TEXT NOT NULL, plan TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS cells (
                    key TEXT PRIMARY KEY, run TEXT NOT NULL, arm TEXT NOT NULL, lambda REAL, suite TEXT NOT NULL, lang TEXT NOT NULL,
                    model TEXT NOT NULL, settings TEXT NOT NULL, seconds REAL NOT NULL, finished TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS aggregates (
                    cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE, name TEXT NOT NULL, value REAL, low REAL, high REAL, n INTEGER NOT NULL,
                    PRIMARY KEY (cell, name));
                CREATE TABLE IF NOT EXISTS items (
                    cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE, idx INTEGER NOT NULL, record TEXT NOT NULL,
                    PRIMARY KEY (cell, idx));
                CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, worker TEXT NOT NULL, expires TEXT NOT NULL);
                """);
            var version = Scalar("SELECT value FROM meta WHERE name = 'schema'");
            if (version is null) Execute($"INSERT INTO meta (name, value) VALUES ('schema', '{SchemaVersion}')");
            else if (version != SchemaVersion.ToString())
                throw new AttuneException(path, $"results store schema {version}; this Attune reads schema {SchemaVersion}");
        }
        catch (Exception e) when (e is SqliteException or AttuneException)
        {
            // A store refused after it was opened must not keep its file open (and locked) until a finalizer runs.
            _db?.Dispose();
            if (e is SqliteException sqlite) throw new AttuneException(path, $"not a results store (SQLite: {sqlite.Message})");
            throw;
        }
    }

    void Execute(string sql) => SqliteDatabase.Execute(_db, sql);

    string? Scalar(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar()?.ToString();
    }

    /// <summary>Records a run (a sweep command) and returns its id.</summary>
    public string BeginRun(string command, string version, JsonObject plan)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "INSERT INTO runs (id, started, command, version, plan) VALUES ($id, $started, $command, $version, $plan)";
        cmd.Parameters.AddWithValue("$id", id);
        cmd.Parameters.AddWithValue("$started", DateTime.UtcNow.ToString("O"));
        cmd.Parameters.AddWithValue("$command", command);
        cmd.Parameters.AddWithValue("$version", version);
        cmd.Parameters.AddWithValue("$plan", plan.ToJsonString());
        cmd.ExecuteNonQuery();
        return id;
    }

    /// <summary>The keys of the cells already finished.</summary>
    public HashSet<string> FinishedKeys() => Reading(() =>
    {
        var keys = new HashSet<string>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT key FROM cells";
        using var r = cmd.ExecuteReader();
        while (r.Read()) keys.Add(r.GetString(0));
        return keys;
    });

    /// <summary>
    /// Writes a finished cell, its aggregates and items, in one transaction, and ends its claim; false (nothing
    /// written) when another process sharing the store has committed it meanwhile.
    /// </summary>
    public bool Commit(string run, CellResult cell)
    {
        using var tx = _db.BeginTransaction(deferred: false);
        if (Exists(tx, cell.Key)) return false;
        Insert(tx, run, cell, DateTime.UtcNow.ToString("O"));
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "DELETE FROM claims WHERE key = $key";
            cmd.Parameters.AddWithValue("$key", cell.Key);
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
        return true;
    }

    bool Exists(SqliteTransaction tx, string key)
    {
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT 1 FROM cells WHERE key = $key";
        cmd.Parameters.AddWithValue("$key", key);
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>
    /// Claims a cell for <paramref name="worker"/> so that other processes sharing the store skip it: null when the cell
    /// is finished or another worker's lease on it has not expired. The returned lease renews itself while held (on a
    /// connection of its own) and gives the claim up when disposed; a worker killed mid-cell leaves a claim that
    /// expires after <paramref name="lease"/>, and the cell goes to whoever asks next.
    /// </summary>
    public CellLease? TryClaim(string key, string worker, TimeSpan lease)
    {
        using var tx = _db.BeginTransaction(deferred: false);
        if (Exists(tx, key)) return null;
        var now = DateTime.UtcNow;
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT worker, expires FROM claims WHERE key = $key";
            cmd.Parameters.AddWithValue("$key", key);
            using var r = cmd.ExecuteReader();
            if (r.Read() && r.GetString(0) != worker && DateTime.Parse(r.GetString(1), null, System.Globalization.DateTimeStyles.RoundtripKind) > now) return null;
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO claims (key, worker, expires) VALUES ($key, $worker, $expires) ON CONFLICT(key) DO UPDATE SET worker = excluded.worker, expires = excluded.expires";
            cmd.Parameters.AddWithValue("$key", key);
            cmd.Parameters.AddWithValue("$worker", worker);
            cmd.Parameters.AddWithValue("$expires", (now + lease).ToString("O"));
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
        return new CellLease(Path, key, worker, lease);
    }

    void Insert(SqliteTransaction tx, string run, CellResult cell, string finished)
    {
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO cells (key, run, arm, lambda, suite, lang, model, settings, seconds, finished)
                VALUES ($key, $run, $arm, $lambda, $suite, $lang, $model, $settings, $seconds, $finished)
                """;
            cmd.Parameters.AddWithValue("$key", cell.Key);
            cmd.Parameters.AddWithValue("$run", run);
            cmd.Parameters.AddWithValue("$arm", cell.Arm);
            cmd.Parameters.AddWithValue("$lambda", cell.Lambda is double l ? l : DBNull.Value);
            cmd.Parameters.AddWithValue("$suite", cell.Suite);
            cmd.Parameters.AddWithValue("$lang", cell.Language);
            cmd.Parameters.AddWithValue("$model", cell.ModelIdentity);
            cmd.Parameters.AddWithValue("$settings", cell.Settings.ToJsonString());
            cmd.Parameters.AddWithValue("$seconds", cell.Seconds);
            cmd.Parameters.AddWithValue("$finished", finished);
            cmd.ExecuteNonQuery();
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO aggregates (cell, name, value, low, high, n) VALUES ($cell, $name, $value, $low, $high, $n)";
            var (c, name, value, low, high, n) = (cmd.Parameters.Add("$cell", SqliteType.Text), cmd.Parameters.Add("$name", SqliteType.Text),
                cmd.Parameters.Add("$value", SqliteType.Real), cmd.Parameters.Add("$low", SqliteType.Real), cmd.Parameters.Add("$high", SqliteType.Real), cmd.Parameters.Add("$n", SqliteType.Integer));
            foreach (var a in cell.Aggregates)
            {
                c.Value = cell.Key; name.Value = a.Name;
                value.Value = double.IsFinite(a.Value) ? a.Value : DBNull.Value;
                low.Value = a.Low is double lo && double.IsFinite(lo) ? lo : DBNull.Value;
                high.Value = a.High is double hi && double.IsFinite(hi) ? hi : DBNull.Value;
                n.Value = a.Count;
                cmd.ExecuteNonQuery();
            }
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO items (cell, idx, record) VALUES ($cell, $idx, $record)";
            var (c, idx, record) = (cmd.Parameters.Add("$cell", SqliteType.Text), cmd.Parameters.Add("$idx", SqliteType.Integer), cmd.Parameters.Add("$record", SqliteType.Text));
            for (int i = 0; i < cell.Items.Count; i++)
            {
                c.Value = cell.Key; idx.Value = i; record.Value = cell.Items[i].ToJsonString();
                cmd.ExecuteNonQuery();
            }
        }
    }

    /// <summary>Every finished cell, with aggregates (and items when asked).</summary>
    public List<CellResult> Cells(bool withItems = false) => Reading(() =>
    {
        var cells = new List<CellResult>();
        var aggregates = new Dictionary<string, List<Aggregate>>();
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = "SELECT cell, name, value, low, high, n FROM aggregates ORDER BY cell, name";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                var list = aggregates.TryGetValue(r.GetString(0), out var l) ? l : aggregates[r.GetString(0)] = [];
                list.Add(new Aggregate(r.GetString(1), r.IsDBNull(2) ? double.NaN : r.GetDouble(2), r.IsDBNull(3) ? null : r.GetDouble(3),
                    r.IsDBNull(4) ? null : r.GetDouble(4), r.GetInt32(5)));
            }
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = "SELECT key, arm, lambda, suite, lang, model, settings, seconds FROM cells ORDER BY arm, lambda, suite, lang, key";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                var key = r.GetString(0);
                cells.Add(new CellResult(key, r.GetString(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.GetString(3), r.GetString(4), r.GetString(5),
                    ObjectColumn(r.GetString(6), $"cell {key}: settings"), aggregates.GetValueOrDefault(key) ?? [], [], r.GetDouble(7)));
            }
        }
        if (withItems) cells = cells.Select(c => c with { Items = Items(c.Key) }).ToList();
        return cells;
    });

    public List<JsonObject> Items(string cell) => Reading(() =>
    {
        var items = new List<JsonObject>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT record FROM items WHERE cell = $cell ORDER BY idx";
        cmd.Parameters.AddWithValue("$cell", cell);
        using var r = cmd.ExecuteReader();
        while (r.Read()) items.Add(ObjectColumn(r.GetString(0), $"cell {cell}: item {items.Count}"));
        return items;
    });

    /// <summary>
    /// Runs a read of the store; a file damaged on disk (SQLite's "malformed") or rows not as Attune writes them
    /// (NULL or out-of-range values put there by another tool) are an error naming the store.
    /// </summary>
    T Reading<T>(Func<T> read)
    {
        try { return read(); }
        catch (SqliteException e) { throw new AttuneException(Path, $"cannot read the results store (SQLite: {e.Message})"); }
        catch (Exception e) when (e is InvalidOperationException or InvalidCastException or OverflowException or FormatException)
        { throw new AttuneException(Path, $"a value in the results store is not as Attune writes it: {e.Message}"); }
    }

    JsonObject ObjectColumn(string json, string where)
    {
        try { if (JsonNode.Parse(json) is JsonObject o) return o; }
        catch (JsonException) { }
        throw new AttuneException(Path, where, "is not a JSON object (was the store edited by hand?)");
    }

    /// <summary>
    /// Copies into this store the runs and cells of <paramref name="other"/> that it lacks (shards of one
    /// sweep); a cell present in both is kept once. Returns the number of cells added.
    /// </summary>
    public int Merge(ResultsStore other)
    {
        var have = FinishedKeys();
        int added = 0;
        using var tx = _db.BeginTransaction();
        using (var cmd = other._db.CreateCommand())
        {
            cmd.CommandText = "SELECT id, started, command, version, plan FROM runs";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                using var insert = _db.CreateCommand();
                insert.Transaction = tx;
                insert.CommandText = "INSERT OR IGNORE INTO runs (id, started, command, version, plan) VALUES ($a, $b, $c, $d, $e)";
                for (int i = 0; i < 5; i++) insert.Parameters.AddWithValue("$" + (char)('a' + i), r.GetString(i));
                insert.ExecuteNonQuery();
            }
        }
        var runs = new Dictionary<string, (string Run, string Finished)>();
        using (var cmd = other._db.CreateCommand())
        {
            cmd.CommandText = "SELECT key, run, finished FROM cells";
            using var r = cmd.ExecuteReader();
            while (r.Read()) runs[r.GetString(0)] = (r.GetString(1), r.GetString(2));
        }
        foreach (var cell in other.Cells(withItems: true))
        {
            if (!have.Add(cell.Key)) continue;
            Insert(tx, runs[cell.Key].Run, cell, runs[cell.Key].Finished);
            added++;
        }
        tx.Commit();
        return added;
    }

    public void Dispose() => _db.Dispose();
}

/// <summary>A worker's hold on a cell of a shared store: renewed every third of the lease until disposed, then given up.</summary>
public sealed class CellLease : IDisposable
{
    readonly SqliteConnection _db;
    readonly Timer _renew;
    readonly object _gate = new();
    readonly string _key, _worker;
    readonly TimeSpan _lease;
    bool _disposed;

    internal CellLease(string path, string key, string worker, TimeSpan lease)
    {
        (_key, _worker, _lease) = (key, worker, lease);
        _db = SqliteDatabase.Open(path, "SELECT 1");
        _renew = new Timer(_ => Renew(), null, lease / 3, lease / 3);
    }

    void Renew()
    {
        lock (_gate)
        {
            if (_disposed) return;
            try { Run("UPDATE claims SET expires = $expires WHERE key = $key AND worker = $worker", (DateTime.UtcNow + _lease).ToString("O")); }
            catch (SqliteException) { } // busy past the timeout: the next renewal tries again, well before the lease ends
        }
    }

    void Run(string sql, string? expires = null)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$key", _key);
        cmd.Parameters.AddWithValue("$worker", _worker);
        if (expires is not null) cmd.Parameters.AddWithValue("$expires", expires);
        cmd.ExecuteNonQuery();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _renew.Dispose();
        try { Run("DELETE FROM claims WHERE key = $key AND worker = $worker"); }
        catch (SqliteException) { } // the claim expires by itself
        _db.Dispose();
    }
}
