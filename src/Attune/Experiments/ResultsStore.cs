using System.Data;
using System.Data.Common;
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
/// The study's results: runs (the command, versions), cells (arm, λ, suite, language, exact model identity and
/// settings), per-item records and aggregates — in a SQLite file (WAL; the default) or a PostgreSQL database shared by
/// workers on many machines. Each cell is written in one transaction as soon as it finishes, so a killed sweep loses
/// at most the cell it was running, and a rerun skips every cell already here. Workers sharing a store claim each cell
/// with a lease before running it (<see cref="TryClaim"/>); a cell is committed at most once. Stores of sharded runs
/// merge into one, and a study copies between the two kinds.
/// </summary>
public sealed class ResultsStore : IDisposable
{
    public const int SchemaVersion = 1;
    DbConnection _db;
    public StoreLocation Location { get; }
    /// <summary>How messages name the store: the file's path, or the URL without a password.</summary>
    public string Path => Location.Display;
    bool IsPostgres => Location is StoreLocation.Postgres;

    public ResultsStore(string location) : this(StoreLocation.Parse(location)) { }

    /// <param name="create">Create the tables when missing (a sweep, a merge target); false for a store that is only read.</param>
    public ResultsStore(StoreLocation location, bool create = true)
    {
        Location = location;
        try
        {
            _db = location.Open("attune");
        }
        catch (SqliteException e) { throw new AttuneException(Path, $"not a results store (SQLite: {e.Message})"); }
        try
        {
            // A database that already holds the tables is not asked to create anything (a role may read and write rows
            // without the right to create tables in its schema).
            bool present = IsPostgres ? Scalar("SELECT to_regclass('meta') IS NOT NULL") == "True"
                : Scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'") is not null;
            if (!present && !create) throw new AttuneException(Path, "not a results store (no Attune tables in it)");
            if (!present || !IsPostgres) CreateSchema();
            var version = Scalar("SELECT value FROM meta WHERE name = 'schema'");
            if (version != SchemaVersion.ToString())
                throw new AttuneException(Path, int.TryParse(version, out var v) && v > SchemaVersion
                    ? $"was written by a newer Attune (results store schema {version}; this one reads schema {SchemaVersion}): update Attune to read it"
                    : $"results store schema {version}; this Attune reads schema {SchemaVersion}");
        }
        catch (Exception e) when (e is DbException or AttuneException)
        {
            // A store refused after it was opened must not keep its file open (and locked) until a finalizer runs.
            _db.Dispose();
            if (e is DbException db) throw new AttuneException(Path, $"not a results store ({Dialect}: {StoreLocation.Message(db)})");
            throw;
        }
    }

    string Dialect => IsPostgres ? "PostgreSQL" : "SQLite";

    /// <summary>
    /// The tables, created when missing. The two kinds differ only in types: PostgreSQL's REAL is single precision, so
    /// scores are DOUBLE PRECISION there, and a claim's expiry is the database server's time (workers' clocks may
    /// differ) where SQLite, on one machine, keeps it as text.
    /// </summary>
    void CreateSchema()
    {
        var real = IsPostgres ? "DOUBLE PRECISION" : "REAL";
        var schema = $"""
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, started TEXT NOT NULL, command TEXT NOT NULL, version TEXT NOT NULL, plan TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cells (
                key TEXT PRIMARY KEY, run TEXT NOT NULL, arm TEXT NOT NULL, lambda {real}, suite TEXT NOT NULL, lang TEXT NOT NULL,
                model TEXT NOT NULL, settings TEXT NOT NULL, seconds {real} NOT NULL, finished TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS aggregates (
                cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE, name TEXT NOT NULL, value {real}, low {real}, high {real}, n INTEGER NOT NULL,
                PRIMARY KEY (cell, name));
            CREATE TABLE IF NOT EXISTS items (
                cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE, idx INTEGER NOT NULL, record TEXT NOT NULL,
                PRIMARY KEY (cell, idx));
            CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, worker TEXT NOT NULL, expires {(IsPostgres ? "TIMESTAMPTZ" : "TEXT")} NOT NULL);
            INSERT INTO meta (name, value) VALUES ('schema', '{SchemaVersion}') ON CONFLICT (name) DO NOTHING;
            """;
        using var tx = Begin();
        // Workers starting together on a new database would race to create the same tables: one at a time.
        if (IsPostgres) Execute("SELECT pg_advisory_xact_lock(4747202601)", tx);
        Execute(schema, tx);
        tx.Commit();
    }

    /// <summary>A write transaction: SQLite's takes the write lock at once (BEGIN IMMEDIATE), so two processes never deadlock upgrading.</summary>
    DbTransaction Begin() => _db is SqliteConnection sqlite ? sqlite.BeginTransaction(deferred: false) : _db.BeginTransaction();

    DbCommand Command(string sql, DbTransaction? tx, params (string Name, object? Value)[] parameters)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (name, value) in parameters) AddParameter(cmd, name, value);
        return cmd;
    }

    static DbParameter AddParameter(DbCommand cmd, string name, object? value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value ?? DBNull.Value;
        cmd.Parameters.Add(p);
        return p;
    }

    int Execute(string sql, DbTransaction? tx = null, params (string, object?)[] parameters)
    {
        using var cmd = Command(sql, tx, parameters);
        return cmd.ExecuteNonQuery();
    }

    string? Scalar(string sql, DbTransaction? tx = null, params (string, object?)[] parameters)
    {
        using var cmd = Command(sql, tx, parameters);
        return cmd.ExecuteScalar()?.ToString();
    }

    /// <summary>Records a run (a sweep command) and returns its id.</summary>
    public string BeginRun(string command, string version, JsonObject plan)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        Writing(() => Execute("INSERT INTO runs (id, started, command, version, plan) VALUES (@id, @started, @command, @version, @plan)", null,
            ("@id", id), ("@started", DateTime.UtcNow.ToString("O")), ("@command", command), ("@version", version), ("@plan", plan.ToJsonString())));
        return id;
    }

    /// <summary>A run as recorded: its id, when it started, the command line, Attune's version and the plan.</summary>
    public sealed record Run(string Id, string Started, string Command, string Version, string Plan);

    /// <summary>Every run recorded in the store, in the order they started.</summary>
    public List<Run> Runs() => Reading(() =>
    {
        var runs = new List<Run>();
        using var cmd = Command("SELECT id, started, command, version, plan FROM runs", null);
        using var r = cmd.ExecuteReader();
        while (r.Read()) runs.Add(new Run(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4)));
        return runs.OrderBy(x => x.Started, StringComparer.Ordinal).ThenBy(x => x.Id, StringComparer.Ordinal).ToList();
    });

    /// <summary>The keys of the cells already finished.</summary>
    public HashSet<string> FinishedKeys() => Reading(() =>
    {
        var keys = new HashSet<string>();
        using var cmd = Command("SELECT key FROM cells", null);
        using var r = cmd.ExecuteReader();
        while (r.Read()) keys.Add(r.GetString(0));
        return keys;
    });

    /// <summary>
    /// Writes a finished cell, its aggregates and items, in one transaction, and ends its claim; false (nothing
    /// written) when another process sharing the store has committed it meanwhile.
    /// </summary>
    public bool Commit(string run, CellResult cell) => Writing(() =>
    {
        using var tx = Begin();
        if (!Insert(tx, run, cell, DateTime.UtcNow.ToString("O"))) return false;
        Execute("DELETE FROM claims WHERE key = @key", tx, ("@key", cell.Key));
        tx.Commit();
        return true;
    });

    bool Exists(DbTransaction tx, string key) => Scalar("SELECT 1 FROM cells WHERE key = @key", tx, ("@key", key)) is not null;

    /// <summary>
    /// Claims a cell for <paramref name="worker"/> so that other processes sharing the store skip it: null when the cell
    /// is finished or another worker holds it (its lease has not expired, or it is claiming it this moment). The
    /// returned lease renews itself while held (on a connection of its own) and gives the claim up when disposed; a
    /// worker killed mid-cell leaves a claim that expires after <paramref name="lease"/>, and the cell goes to whoever
    /// asks next. On PostgreSQL the claim row is locked with <c>FOR UPDATE SKIP LOCKED</c> and expiry is the server's
    /// clock; on SQLite the write lock (BEGIN IMMEDIATE) serialises claims and expiry is this machine's clock.
    /// </summary>
    public CellLease? TryClaim(string key, string worker, TimeSpan lease) => Writing(() =>
    {
        using var tx = Begin();
        if (Exists(tx, key)) return null;
        if (IsPostgres)
        {
            Execute("INSERT INTO claims (key, worker, expires) VALUES (@key, '', '-infinity') ON CONFLICT (key) DO NOTHING", tx, ("@key", key));
            using (var cmd = Command("SELECT worker, expires > now() FROM claims WHERE key = @key FOR UPDATE SKIP LOCKED", tx, ("@key", key)))
            using (var r = cmd.ExecuteReader())
            {
                if (!r.Read()) return null; // another worker is claiming it right now
                if (r.GetString(0) != worker && r.GetBoolean(1)) return null;
            }
            if (Exists(tx, key)) return null; // finished by the worker whose claim was just let go
            Execute("UPDATE claims SET worker = @worker, expires = now() + make_interval(secs => @secs) WHERE key = @key", tx,
                ("@key", key), ("@worker", worker), ("@secs", lease.TotalSeconds));
        }
        else
        {
            var now = DateTime.UtcNow;
            using (var cmd = Command("SELECT worker, expires FROM claims WHERE key = @key", tx, ("@key", key)))
            using (var r = cmd.ExecuteReader())
                if (r.Read() && r.GetString(0) != worker && DateTime.Parse(r.GetString(1), null, System.Globalization.DateTimeStyles.RoundtripKind) > now) return null;
            Execute("INSERT INTO claims (key, worker, expires) VALUES (@key, @worker, @expires) ON CONFLICT (key) DO UPDATE SET worker = excluded.worker, expires = excluded.expires", tx,
                ("@key", key), ("@worker", worker), ("@expires", (now + lease).ToString("O")));
        }
        tx.Commit();
        return new CellLease(Location, key, worker, lease);
    });

    /// <summary>The cells claimed now: key, worker, and whether the lease is still live (for tests and the bench).</summary>
    public List<(string Key, string Worker, bool Live)> Claims() => Reading(() =>
    {
        var claims = new List<(string, string, bool)>();
        using var cmd = Command(IsPostgres ? "SELECT key, worker, expires > now() FROM claims" : "SELECT key, worker, expires FROM claims", null);
        using var r = cmd.ExecuteReader();
        while (r.Read())
            claims.Add((r.GetString(0), r.GetString(1), IsPostgres ? r.GetBoolean(2)
                : DateTime.Parse(r.GetString(2), null, System.Globalization.DateTimeStyles.RoundtripKind) > DateTime.UtcNow));
        return claims;
    });

    /// <summary>Inserts a cell with its aggregates and items; false (nothing written) when the store has the cell already.</summary>
    bool Insert(DbTransaction tx, string run, CellResult cell, string finished)
    {
        int added = Execute("""
            INSERT INTO cells (key, run, arm, lambda, suite, lang, model, settings, seconds, finished)
            VALUES (@key, @run, @arm, @lambda, @suite, @lang, @model, @settings, @seconds, @finished)
            ON CONFLICT (key) DO NOTHING
            """, tx,
            ("@key", cell.Key), ("@run", run), ("@arm", cell.Arm), ("@lambda", cell.Lambda), ("@suite", cell.Suite), ("@lang", cell.Language),
            ("@model", cell.ModelIdentity), ("@settings", cell.Settings.ToJsonString()), ("@seconds", cell.Seconds), ("@finished", finished));
        if (added == 0) return false;
        using (var cmd = Command("INSERT INTO aggregates (cell, name, value, low, high, n) VALUES (@cell, @name, @value, @low, @high, @n)", tx))
        {
            var (c, name, value, low, high, n) = (Typed(cmd, "@cell", DbType.String), Typed(cmd, "@name", DbType.String), Typed(cmd, "@value", DbType.Double),
                Typed(cmd, "@low", DbType.Double), Typed(cmd, "@high", DbType.Double), Typed(cmd, "@n", DbType.Int32));
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
        using (var cmd = Command("INSERT INTO items (cell, idx, record) VALUES (@cell, @idx, @record)", tx))
        {
            var (c, idx, record) = (Typed(cmd, "@cell", DbType.String), Typed(cmd, "@idx", DbType.Int32), Typed(cmd, "@record", DbType.String));
            for (int i = 0; i < cell.Items.Count; i++)
            {
                c.Value = cell.Key; idx.Value = i; record.Value = cell.Items[i].ToJsonString();
                cmd.ExecuteNonQuery();
            }
        }
        return true;
    }

    static DbParameter Typed(DbCommand cmd, string name, DbType type)
    {
        var p = AddParameter(cmd, name, null);
        p.DbType = type;
        return p;
    }

    /// <summary>
    /// Every finished cell, with aggregates (and items when asked), in a fixed order (arm, λ with none first, suite,
    /// language, key; aggregates by name) compared ordinally, so both kinds of store list a study alike.
    /// </summary>
    public List<CellResult> Cells(bool withItems = false) => Reading(() =>
    {
        var cells = new List<CellResult>();
        var aggregates = new Dictionary<string, List<Aggregate>>();
        using (var cmd = Command("SELECT cell, name, value, low, high, n FROM aggregates", null))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var list = aggregates.TryGetValue(r.GetString(0), out var l) ? l : aggregates[r.GetString(0)] = [];
                list.Add(new Aggregate(r.GetString(1), r.IsDBNull(2) ? double.NaN : r.GetDouble(2), r.IsDBNull(3) ? null : r.GetDouble(3),
                    r.IsDBNull(4) ? null : r.GetDouble(4), r.GetInt32(5)));
            }
        foreach (var list in aggregates.Values) list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        using (var cmd = Command("SELECT key, arm, lambda, suite, lang, model, settings, seconds FROM cells", null))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var key = r.GetString(0);
                cells.Add(new CellResult(key, r.GetString(1), r.IsDBNull(2) ? null : r.GetDouble(2), r.GetString(3), r.GetString(4), r.GetString(5),
                    ObjectColumn(r.GetString(6), $"cell {key}: settings"), aggregates.GetValueOrDefault(key) ?? [], [], r.GetDouble(7)));
            }
        cells = cells.OrderBy(c => c.Arm, StringComparer.Ordinal).ThenBy(c => c.Lambda is null ? 0 : 1).ThenBy(c => c.Lambda)
            .ThenBy(c => c.Suite, StringComparer.Ordinal).ThenBy(c => c.Language, StringComparer.Ordinal).ThenBy(c => c.Key, StringComparer.Ordinal).ToList();
        if (withItems) cells = cells.Select(c => c with { Items = Items(c.Key) }).ToList();
        return cells;
    });

    public List<JsonObject> Items(string cell) => Reading(() =>
    {
        var items = new List<JsonObject>();
        using var cmd = Command("SELECT record FROM items WHERE cell = @cell ORDER BY idx", null, ("@cell", cell));
        using var r = cmd.ExecuteReader();
        while (r.Read()) items.Add(ObjectColumn(r.GetString(0), $"cell {cell}: item {items.Count}"));
        return items;
    });

    /// <summary>Which run committed each cell, and when.</summary>
    public Dictionary<string, (string Run, string Finished)> CellRuns() => Reading(() =>
    {
        var runs = new Dictionary<string, (string, string)>();
        using var cmd = Command("SELECT key, run, finished FROM cells", null);
        using var r = cmd.ExecuteReader();
        while (r.Read()) runs[r.GetString(0)] = (r.GetString(1), r.GetString(2));
        return runs;
    });

    /// <summary>
    /// Runs a read of the store; a file damaged on disk (SQLite's "malformed"), a lost connection, or rows not as Attune
    /// writes them (NULL or out-of-range values put there by another tool) are an error naming the store.
    /// </summary>
    T Reading<T>(Func<T> read)
    {
        try { return Reconnecting(read); }
        catch (DbException e) { throw new AttuneException(Path, $"cannot read the results store ({Dialect}: {StoreLocation.Message(e)})"); }
        catch (Exception e) when (e is InvalidOperationException or InvalidCastException or OverflowException or FormatException)
        { throw new AttuneException(Path, $"a value in the results store is not as Attune writes it: {e.Message}"); }
    }

    /// <summary>Runs a write; a database error (a lost connection, a full disk) is one line naming the store.</summary>
    T Writing<T>(Func<T> write)
    {
        try { return Reconnecting(write); }
        catch (DbException e) { throw new AttuneException(Path, $"cannot write to the results store ({Dialect}: {StoreLocation.Message(e)})"); }
    }

    /// <summary>
    /// Runs a read or a write once more on a new connection when the PostgreSQL connection was lost (a server restart, a
    /// proxy dropping it during a long cell). Every write here is one transaction that is idempotent or refused whole
    /// (a cell committed twice is skipped), so repeating it is safe.
    /// </summary>
    T Reconnecting<T>(Func<T> action)
    {
        try { return action(); }
        catch (Exception e) when (IsPostgres && ConnectionLost(e))
        {
            _db.Dispose();
            _db = Location.Open("attune");
            return action();
        }
    }

    /// <summary>A lost connection: a transient network error, the server ending the session (SQLSTATE class 08, or 57P: shutdown or termination), or a connection no longer open.</summary>
    bool ConnectionLost(Exception e) => e switch
    {
        Npgsql.PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("57P", StringComparison.Ordinal),
        Npgsql.NpgsqlException { IsTransient: true } => true,
        DbException or InvalidOperationException => _db.State != System.Data.ConnectionState.Open,
        _ => false,
    };

    JsonObject ObjectColumn(string json, string where)
    {
        try { if (JsonNode.Parse(json) is JsonObject o) return o; }
        catch (JsonException) { }
        throw new AttuneException(Path, where, "is not a JSON object (was the store edited by hand?)");
    }

    /// <summary>
    /// Copies into this store the runs and cells of <paramref name="other"/> that it lacks (shards of one sweep, or a
    /// study moving between SQLite and PostgreSQL), each cell with the run and finishing time it had; a cell present in
    /// both is kept once. All in one transaction. Returns the number of cells added.
    /// </summary>
    public int Merge(ResultsStore other)
    {
        // Cells first, then which run committed each: a cell another worker commits between the two reads is simply not copied yet.
        var runs = other.Runs();
        var cells = other.Cells(withItems: true);
        var cellRuns = other.CellRuns();
        cells = cells.Where(c => cellRuns.ContainsKey(c.Key)).ToList();
        return Writing(() =>
        {
            int added = 0;
            using var tx = Begin();
            foreach (var run in runs)
                Execute("INSERT INTO runs (id, started, command, version, plan) VALUES (@id, @started, @command, @version, @plan) ON CONFLICT (id) DO NOTHING", tx,
                    ("@id", run.Id), ("@started", run.Started), ("@command", run.Command), ("@version", run.Version), ("@plan", run.Plan));
            foreach (var cell in cells)
                if (Insert(tx, cellRuns[cell.Key].Run, cell, cellRuns[cell.Key].Finished)) added++;
            tx.Commit();
            return added;
        });
    }

    public void Dispose() => _db.Dispose();
}

/// <summary>A worker's hold on a cell of a shared store: renewed every third of the lease (a heartbeat) until disposed, then given up.</summary>
public sealed class CellLease : IDisposable
{
    DbConnection _db;
    readonly Timer _renew;
    readonly object _gate = new();
    readonly string _key, _worker;
    readonly TimeSpan _lease;
    readonly bool _postgres;
    bool _disposed;

    internal CellLease(StoreLocation location, string key, string worker, TimeSpan lease)
    {
        (_key, _worker, _lease, _postgres, _location) = (key, worker, lease, location is StoreLocation.Postgres, location);
        _db = location.Open("attune-lease");
        _renew = new Timer(_ => Renew(), null, lease / 3, lease / 3);
    }

    readonly StoreLocation _location;

    /// <summary>Heartbeats so far (for tests).</summary>
    public int Renewals { get; private set; }

    void Renew()
    {
        lock (_gate)
        {
            if (_disposed) return;
            // A timer callback must not throw (it would end the process): any failure — busy past the timeout, a dropped
            // connection — waits for the next heartbeat, well before the lease ends, on a connection opened again if needed.
            try
            {
                if (_db.State != System.Data.ConnectionState.Open)
                {
                    _db.Dispose();
                    _db = _location.Open("attune-lease");
                }
                Run(_postgres ? "UPDATE claims SET expires = now() + make_interval(secs => @secs) WHERE key = @key AND worker = @worker"
                    : "UPDATE claims SET expires = @expires WHERE key = @key AND worker = @worker", renew: true);
                Renewals++;
            }
            catch (Exception e) when (e is DbException or InvalidOperationException or AttuneException or IOException) { }
        }
    }

    void Run(string sql, bool renew = false)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in new (string, object)[] { ("@key", _key), ("@worker", _worker) })
        {
            var p = cmd.CreateParameter();
            (p.ParameterName, p.Value) = (name, value);
            cmd.Parameters.Add(p);
        }
        if (renew)
        {
            var p = cmd.CreateParameter();
            (p.ParameterName, p.Value) = _postgres ? ("@secs", (object)_lease.TotalSeconds) : ("@expires", (DateTime.UtcNow + _lease).ToString("O"));
            cmd.Parameters.Add(p);
        }
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
        try { Run("DELETE FROM claims WHERE key = @key AND worker = @worker"); }
        catch (Exception e) when (e is DbException or InvalidOperationException) { } // the claim expires by itself
        _db.Dispose();
    }
}
