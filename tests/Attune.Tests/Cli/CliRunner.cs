using Attune.Cli;

namespace Attune.Tests.Cli;

/// <summary>Runs the <c>attune</c> command in-process with captured streams.</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, new StringReader(stdin), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>Runs the <c>attune</c> command as a user does: its own process (the built CLI next to the tests), output redirected.</summary>
public static class CliProcess
{
    public static System.Diagnostics.Process Start(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Attune.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        return System.Diagnostics.Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet");
    }

    /// <summary>The address <c>attune serve</c> prints when it listens; a server silent for 60 s fails the test with what it printed.</summary>
    public static async Task<Uri> ServeAddress(System.Diagnostics.Process serve)
    {
        var log = new List<string>();
        using var startup = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await serve.StandardError.ReadLineAsync(startup.Token) is { } line)
        {
            log.Add(line);
            if (System.Text.RegularExpressions.Regex.Match(line, @"on (http://127\.0\.0\.1:\d+/v1)") is { Success: true } m) return new Uri(m.Groups[1].Value);
        }
        throw new Xunit.Sdk.XunitException("no address in: " + string.Join(" | ", log));
    }
}
