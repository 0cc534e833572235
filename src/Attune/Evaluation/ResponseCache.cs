using Attune.Formats;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Attune.Evaluation;

/// <summary>
/// Answers already computed, in SQLite: key = SHA-256 of (model identity, request as canonical JSON),
/// value = the answer as JSON. A rerun, or a second metric over the same requests, costs nothing.
/// Writes go in one transaction per batch; WAL lets a report read while a sweep writes.
/// </summary>
public sealed class ResponseCache : IDisposable
{
    readonly SqliteConnection _db;
    public string Path { get; }

    /// <summary>Where the cache lives unless told otherwise: <c>$XDG_CACHE_HOME/attune/responses.db</c>, else <c>~/.cache/attune/responses.db</c>.</summary>
    public static string DefaultPath() => System.IO.Path.Combine(CacheHome.Path, "attune", "responses.db");

    public ResponseCache(string path)
    {
        Path = path;
        try
        {
            _db = SqliteDatabase.Open(path, "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created TEXT NOT NULL)");
        }
        catch (SqliteException e)
        {
            throw new AttuneException(path, $"cannot open the response cache: {e.Message}");
        }
    }

    /// <summary>
    /// Raised when a change to Attune changes answers to the same request (tokenization, scoring,
    /// prompt rendering), so that answers cached by an older Attune are not served again.
    /// </summary>
    public const string AnswerVersion = "1";

    /// <summary>The key of a request for a model.</summary>
    public static string Key(string modelIdentity, EvalRequest request)
    {
        var text = "attune-answers/" + AnswerVersion + "\n" + modelIdentity + "\n" + request.Describe().ToJsonString();
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>The stored answers among <paramref name="keys"/>.</summary>
    public Dictionary<string, string> GetMany(IEnumerable<string> keys)
    {
        var found = new Dictionary<string, string>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT value FROM responses WHERE key = $key";
        var p = cmd.Parameters.Add("$key", SqliteType.Text);
        foreach (var key in keys)
        {
            p.Value = key;
            if (cmd.ExecuteScalar() is string value) found[key] = value;
        }
        return found;
    }

    /// <summary>Stores answers in one transaction.</summary>
    public void PutMany(string kind, IEnumerable<(string Key, string Value)> entries)
    {
        using var tx = _db.BeginTransaction();
        using var cmd = _db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT OR REPLACE INTO responses (key, kind, value, created) VALUES ($key, $kind, $value, $created)";
        var k = cmd.Parameters.Add("$key", SqliteType.Text);
        var kd = cmd.Parameters.Add("$kind", SqliteType.Text);
        var v = cmd.Parameters.Add("$value", SqliteType.Text);
        var c = cmd.Parameters.Add("$created", SqliteType.Text);
        var now = DateTime.UtcNow.ToString("O");
        foreach (var (key, value) in entries)
        {
            k.Value = key; kd.Value = kind; v.Value = value; c.Value = now;
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
    }

    public long Count()
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM responses";
        return (long)cmd.ExecuteScalar()!;
    }

    bool _temporary;

    /// <summary>A cache for one run only (a file in the temporary folder, deleted when disposed): answers shared between the run's parts.</summary>
    public static ResponseCache Temporary() =>
        new(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"attune-answers-{Guid.NewGuid():N}.db")) { _temporary = true };

    public void Dispose()
    {
        _db.Dispose();
        if (!_temporary) return;
        SqliteConnection.ClearAllPools();
        foreach (var suffix in (string[])["", "-wal", "-shm", "-journal"])
            try { File.Delete(Path + suffix); } catch (IOException) { } // best effort: a temporary file
    }
}
