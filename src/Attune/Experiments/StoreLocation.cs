using System.Data.Common;
using System.Text.RegularExpressions;
using Attune.Formats;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Attune.Experiments;

/// <summary>
/// Where a results store lives, parsed once from <c>--store</c>: a SQLite file (a path), or a PostgreSQL database
/// (<c>postgresql://user@host:port/db?sslmode=…</c>, libpq's URL form). A PostgreSQL password comes only from the
/// environment (<c>PGPASSWORD</c>) or a password file (<c>PGPASSFILE</c>, <c>~/.pgpass</c>), as libpq reads them;
/// a password written in the URL is refused, so that it never reaches a shell history, a log or a store's run record.
/// </summary>
public abstract record StoreLocation
{
    /// <summary>How messages and run records name the store (never a password).</summary>
    public abstract string Display { get; }

    public sealed override string ToString() => Display;

    public sealed record SqliteFile(string Path) : StoreLocation
    {
        public override string Display => Path;
    }

    public sealed record Postgres(string Host, int Port, string Database, string? User, IReadOnlyDictionary<string, string> Options) : StoreLocation
    {
        public override string Display =>
            $"postgresql://{(User is null ? "" : Uri.EscapeDataString(User) + "@")}{Host}:{Port}/{Uri.EscapeDataString(Database)}"
            + (Options.Count == 0 ? "" : "?" + string.Join('&', Options.Select(o => $"{o.Key}={Uri.EscapeDataString(o.Value)}")));

        /// <summary>Npgsql's connection string: the password is left to PGPASSWORD or the password file, as libpq does.</summary>
        public string ConnectionString(string application)
        {
            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = Host, Port = Port, Database = Database, ApplicationName = application,
                // A worker holds one connection for the store and one per lease heartbeat.
                MaxPoolSize = 8, Timeout = 15, CommandTimeout = 120,
                // A connection idles for as long as a cell runs: keepalives stop proxies and load balancers dropping it.
                KeepAlive = 30,
            };
            if ((User ?? Environment.GetEnvironmentVariable("PGUSER")) is { } user) builder.Username = user;
            if (Environment.GetEnvironmentVariable("PGPASSWORD") is { Length: > 0 } password) builder.Password = password;
            if (Environment.GetEnvironmentVariable("PGPASSFILE") is { Length: > 0 } passfile) builder.Passfile = passfile;
            foreach (var (name, value) in Options)
                switch (name)
                {
                    case "sslmode": builder.SslMode = SslModes[value]; break;
                    case "sslrootcert": builder.RootCertificate = value; break;
                    case "connect_timeout": builder.Timeout = int.Parse(value); break;
                }
            return builder.ConnectionString;
        }
    }

    static readonly Dictionary<string, SslMode> SslModes = new()
    {
        ["disable"] = SslMode.Disable, ["allow"] = SslMode.Allow, ["prefer"] = SslMode.Prefer, ["require"] = SslMode.Require,
        ["verify-ca"] = SslMode.VerifyCA, ["verify-full"] = SslMode.VerifyFull,
    };

    /// <summary>
    /// Parses <c>--store</c>: <c>postgresql://</c> or <c>postgres://</c> URLs, otherwise a file path; any other URL scheme
    /// is refused rather than taken as a path (which would make a folder named after the scheme).
    /// </summary>
    public static StoreLocation Parse(string text, string field = "--store")
    {
        var scheme = Regex.Match(text, "^([A-Za-z][A-Za-z0-9+.-]*)://");
        if (!scheme.Success) return new SqliteFile(text);
        if (scheme.Groups[1].Value.ToLowerInvariant() is not ("postgresql" or "postgres"))
            throw new AttuneException(null, field, $"a {scheme.Groups[1].Value}:// store is not one Attune opens: give a SQLite file's path or a postgresql:// URL");
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Host.Length == 0)
            throw new AttuneException(null, field, $"\"{Redacted(text)}\" is not a URL of the form postgresql://user@host:port/database");
        string? user = null;
        if (uri.UserInfo.Length > 0)
        {
            if (uri.UserInfo.Contains(':'))
                throw new AttuneException(null, field, "a password in the URL is refused (it would be kept in shell histories and logs): set PGPASSWORD or use a password file (~/.pgpass, PGPASSFILE)");
            user = Uri.UnescapeDataString(uri.UserInfo);
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/'));
        if (database.Length == 0 || database.Contains('/'))
            throw new AttuneException(null, field, $"\"{Redacted(text)}\" names no database: write postgresql://user@host:port/database");
        var options = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (name, value) = pair.IndexOf('=') is var eq and >= 0 ? (pair[..eq], Uri.UnescapeDataString(pair[(eq + 1)..])) : (pair, "");
            var known = name switch
            {
                "sslmode" => SslModes.ContainsKey(value) ? null : $"sslmode {value} is not one of {string.Join(", ", SslModes.Keys)}",
                "sslrootcert" => null,
                "connect_timeout" => int.TryParse(value, out var t) && t > 0 ? null : "connect_timeout must be a whole number of seconds",
                "password" => "a password in the URL is refused: set PGPASSWORD or use a password file (~/.pgpass, PGPASSFILE)",
                _ => $"the URL parameter {name} is not one Attune passes on (sslmode, sslrootcert, connect_timeout)",
            };
            if (known is not null) throw new AttuneException(null, field, known);
            options[name] = value;
        }
        return new Postgres(uri.Host.Trim('[', ']'), uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port, database, user, options);
    }

    /// <summary>A URL with any password blanked, for messages.</summary>
    static string Redacted(string text) => Regex.Replace(text, "^([^:]+://[^:@/]*):[^@/]*@", "$1:***@");

    /// <summary>Opens a connection, creating a SQLite file's folder when needed.</summary>
    internal DbConnection Open(string application) => this switch
    {
        SqliteFile f => SqliteDatabase.Open(f.Path, "SELECT 1"),
        Postgres p => OpenPostgres(p, application),
        _ => throw new InvalidOperationException(),
    };

    static NpgsqlConnection OpenPostgres(Postgres p, string application)
    {
        var db = new NpgsqlConnection(p.ConnectionString(application));
        try
        {
            db.Open();
            return db;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or ArgumentException)
        {
            db.Dispose();
            throw new AttuneException(p.Display, $"cannot connect to PostgreSQL: {Message(e)}");
        }
    }

    /// <summary>A driver's error in one line (PostgreSQL's message with its SQLSTATE; inner socket errors unwrapped).</summary>
    internal static string Message(Exception e) => e switch
    {
        PostgresException pg => $"{pg.MessageText} (SQLSTATE {pg.SqlState})",
        SqliteException sqlite => sqlite.Message,
        { InnerException: { } inner } when e is NpgsqlException => $"{e.Message.TrimEnd('.')}: {inner.Message}",
        _ => e.Message,
    };
}
