using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Attune.Tests;

/// <summary>
/// PostgreSQL for the tests that need one: the server named by ATTUNE_TEST_POSTGRES (a postgresql:// URL whose user may
/// create databases) when set; otherwise a throwaway cluster this process starts on loopback — initdb into a temporary
/// folder (as the postgres user when the tests run as root, since PostgreSQL refuses to run as root), a free port,
/// stopped and deleted when the test process exits. ./test.sh installs Debian's postgresql when it is missing. When no
/// server can be had, the tests that need one fail saying why; they never pass silently.
/// </summary>
public static class TestPostgres
{
    static readonly Lazy<(string Host, int Port, string User)> Server = new(Start);
    static int _databases;

    /// <summary>A new, empty database on the server, as the URL Attune's --store takes.</summary>
    public static string NewDatabase()
    {
        var (host, port, user) = Server.Value;
        var name = $"attune_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid().ToString("N")[..6]}";
        using (var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder { Host = host, Port = port, Username = user, Database = "postgres", Pooling = false }.ConnectionString))
        {
            admin.Open();
            using var cmd = admin.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE {name}";
            cmd.ExecuteNonQuery();
        }
        return $"postgresql://{user}@{host}:{port}/{name}";
    }

    static (string, int, string) Start()
    {
        if (Environment.GetEnvironmentVariable("ATTUNE_TEST_POSTGRES") is { Length: > 0 } url)
        {
            var uri = new Uri(url);
            return (uri.Host, uri.Port > 0 ? uri.Port : 5432, uri.UserInfo.Length > 0 ? uri.UserInfo : Environment.UserName);
        }
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).FirstOrDefault()
            : null;
        bin ??= Environment.GetEnvironmentVariable("PATH")?.Split(':').FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException("PostgreSQL is not installed (no initdb): ./test.sh installs it (apt-get install postgresql), or set ATTUNE_TEST_POSTGRES to a server's URL");
        var dir = Path.Combine(Path.GetTempPath(), $"attune-pg-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dir);
        // PostgreSQL will not run as root: the cluster belongs to the postgres user then (Debian's package creates it).
        string[] asUser = Environment.UserName == "root" ? ["runuser", "-u", "postgres", "--"] : [];
        if (asUser.Length > 0) Run(["chown", "postgres", dir], "chown");
        int port = FreePort();
        Run([.. asUser, Path.Combine(bin, "initdb"), "-D", Path.Combine(dir, "data"), "-A", "trust", "-U", "attune", "-E", "UTF8", "--locale=C", "--no-sync"], "initdb");
        Run([.. asUser, Path.Combine(bin, "pg_ctl"), "-D", Path.Combine(dir, "data"), "-l", Path.Combine(dir, "log"), "-w", "-t", "60",
            "-o", $"-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", "start"], "pg_ctl start");
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Run([.. asUser, Path.Combine(bin, "pg_ctl"), "-D", Path.Combine(dir, "data"), "-m", "immediate", "stop"], "pg_ctl stop"); }
            catch (InvalidOperationException) { }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return ("127.0.0.1", port, "attune");
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    static void Run(string[] command, string what)
    {
        var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in command.Skip(1)) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new InvalidOperationException($"PostgreSQL for the tests: {what} did not start");
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"PostgreSQL for the tests: {what} failed ({p.ExitCode}): {error.Trim()} {output.Result.Trim()}");
    }
}
