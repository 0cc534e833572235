using Microsoft.Data.Sqlite;

namespace Attune.Formats;

/// <summary>
/// The SQLite files Attune keeps (the response cache, the results store): opened in WAL mode, so a
/// reader (a report) can read while a writer (a sweep) commits, with their schema created if missing.
/// </summary>
public static class SqliteDatabase
{
    /// <summary>Opens (creating the file and its folder if needed) and runs <paramref name="schema"/>. Throws SqliteException.</summary>
    public static SqliteConnection Open(string path, string schema)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        try
        {
            db.Open();
            Execute(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
            Execute(db, schema);
            return db;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    public static void Execute(SqliteConnection db, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }
}
