using System.Diagnostics;

namespace Attune.Tests.Conformance;

/// <summary>Runs a script of tests/conformance under Node.js (the peers are npm packages).</summary>
public static class NodePeer
{
    /// <summary>Runs a script that answers one JSON object per input line.</summary>
    public static List<System.Text.Json.Nodes.JsonObject> RunJsonl(string script, string args, string stdinFile) =>
        Run(script, args, stdinFile).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!.AsObject()).ToList();

    public static string Run(string script, string args, string stdinFile)
    {
        if (!Directory.Exists(Path.Combine(Repo.Conformance, "node_modules")))
            throw new InvalidOperationException("tests/conformance/node_modules is missing: run `npm ci` there (.ci/run does)");
        var psi = new ProcessStartInfo("node", $"{script} {args}")
        {
            WorkingDirectory = Repo.Conformance,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start node");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using (var input = File.OpenRead(stdinFile)) input.CopyTo(p.StandardInput.BaseStream);
        p.StandardInput.Close();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException($"node {script} {args}"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {script} {args} failed ({p.ExitCode}): {stderr.Result}");
        return stdout.Result;
    }
}
