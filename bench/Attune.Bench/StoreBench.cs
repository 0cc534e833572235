using System.Diagnostics;
using Attune.Experiments;
using Attune.Modeling;
using Attune.Models;
using Attune.Tensors;
using Attune.Tests;

namespace Attune.Bench;

/// <summary>
/// One study shared by several <c>attune sweep</c> processes through one PostgreSQL store (a throwaway cluster on
/// loopback, started as the tests start theirs): cells per minute with 1, 2 and 4 workers, the cost of a claim per
/// cell against SQLite, and a run where a worker is killed every KILL seconds (and replaced) — no cell lost, none twice.
/// </summary>
static class StoreBench
{
    public static void Table(string root, int killEvery, bool killsOnly = false)
    {
        var dir = Path.Combine(root, "bench", "out", "store");
        Directory.CreateDirectory(dir);
        var (baseModel, instruct) = (Path.Combine(dir, "base"), Path.Combine(dir, "instruct"));
        if (!File.Exists(Path.Combine(baseModel, "config.json")))
        {
            ModelInitializer.Write(baseModel, Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
            ModelInitializer.Write(instruct, Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        }
        string[] plan = ["--base", baseModel, "--instruct", instruct, "--lambdas", "0:1:0.1", "--langs", "en,fr,es", "--icl", "builtin:nli,builtin:symbols",
            "--icl-limit", "40", "--if", "builtin", "--if-limit", "6", "--max-tokens", "64", "--urial-shots", "1"];
        int planned = new Sweep(new SweepPlan
        {
            Base = ModelReference.Parse(baseModel), Instruct = ModelReference.Parse(instruct), Lambdas = Lambda.ParseList("0:1:0.1"), Languages = ["en", "fr", "es"],
            Icl = "builtin:nli,builtin:symbols", If = "builtin",
        }).Cells().Count;
        if (killsOnly)
        {
            KilledWorkers(root, plan, planned, killEvery);
            return;
        }
        Console.WriteLine($"Plan: tiny llama pair (random F32), λ 0:1:0.1 + the base with URIAL, ICL (nli, symbols; 40 items) and IF (6 prompts, 64 tokens) × en/fr/es = {planned} cells.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores shared by the workers and the PostgreSQL server (a throwaway cluster on loopback, fsync off).");
        Console.WriteLine();
        Console.WriteLine("| workers | wall s | cells | cells/min | vs 1 worker | cells per worker |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---|");
        double one = 0;
        foreach (int workers in new[] { 1, 2, 4 })
        {
            var url = TestPostgres.NewDatabase();
            var clock = Stopwatch.StartNew();
            var procs = Enumerable.Range(0, workers).Select(_ => Sweep(root, [.. plan, "--store", url])).ToList();
            var logs = procs.Select(p => p.StandardError.ReadToEndAsync()).ToList();
            foreach (var p in procs) p.WaitForExit();
            double wall = clock.Elapsed.TotalSeconds;
            if (procs.Any(p => p.ExitCode != 0)) throw new InvalidOperationException(string.Join("\n", logs.Select(l => l.Result)));
            using var store = new ResultsStore(url);
            int cells = store.FinishedKeys().Count;
            double perMinute = cells / wall * 60;
            if (workers == 1) one = perMinute;
            var byRun = store.CellRuns().Values.GroupBy(v => v.Run).Select(g => g.Count()).OrderDescending();
            Console.WriteLine($"| {workers} | {wall:F1} | {cells} | {perMinute:F0} | {perMinute / one:F2}× | {string.Join(" + ", byRun)} |");
        }
        Console.WriteLine();
        ClaimCost();
        Console.WriteLine();
        KilledWorkers(root, plan, planned, killEvery);
    }

    static Process Sweep(string root, string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(root, "attune"));
        psi.ArgumentList.Add("sweep");
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("cannot start attune");
    }

    /// <summary>What a claim adds to each cell: claim, heartbeat connection, release, and the commit, on each kind of store.</summary>
    static void ClaimCost()
    {
        const int n = 200;
        Console.WriteLine($"| store | claim + release per cell | commit per cell (20 aggregates, 50 items) |");
        Console.WriteLine("|---|---:|---:|");
        var tmp = Path.Combine(Path.GetTempPath(), $"attune-claims-{Guid.NewGuid():N}.db");
        foreach (var (name, location) in new[] { ("PostgreSQL (loopback)", TestPostgres.NewDatabase()), ("SQLite (WAL)", tmp) })
        {
            using var store = new ResultsStore(location);
            var run = store.BeginRun("bench", "bench", []);
            var claim = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) store.TryClaim($"claim-{i}", "bench/1", TimeSpan.FromMinutes(2))!.Dispose();
            double claimMs = claim.Elapsed.TotalMilliseconds / n;
            var commit = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
                store.Commit(run, new CellResult($"cell-{i}", "arm", 0.5, "icl", "en", "model", [],
                    Enumerable.Range(0, 20).Select(k => new Aggregate($"a{k}", k, 0, 1, 50)).ToList(),
                    Enumerable.Range(0, 50).Select(k => new System.Text.Json.Nodes.JsonObject { ["i"] = k, ["text"] = new string('x', 200) }).ToList(), 1));
            Console.WriteLine($"| {name} | {claimMs:F2} ms | {commit.Elapsed.TotalMilliseconds / n:F2} ms |");
        }
        File.Delete(tmp);
    }

    /// <summary>Three workers with a short lease; every <paramref name="killEvery"/> s one is killed with SIGKILL and a new one started.</summary>
    static void KilledWorkers(string root, string[] plan, int planned, int killEvery)
    {
        var url = TestPostgres.NewDatabase();
        // Longer cells than above (all nine built-in ICL tasks, 60 items each; 20 IF prompts of 128 tokens), so that the run outlasts several kills.
        var heavier = plan.Select(a => a).ToArray();
        foreach (var (option, value) in new[] { ("--icl", "builtin:all"), ("--icl-limit", "60"), ("--if-limit", "20"), ("--max-tokens", "128") }) heavier[Array.IndexOf(heavier, option) + 1] = value;
        string[] args = [.. heavier, "--store", url, "--lease", "6"];
        var workers = Enumerable.Range(0, 3).Select(_ => Sweep(root, args)).ToList();
        foreach (var w in workers) { w.StandardError.ReadToEndAsync(); }
        var clock = Stopwatch.StartNew();
        int kills = 0, started = 3, killedHolding = 0;
        var rng = new Random(5);
        using var store = new ResultsStore(url);
        while (workers.Any(w => !w.HasExited))
        {
            Thread.Sleep(200);
            if (clock.Elapsed.TotalSeconds < (kills + 1) * killEvery) continue;
            var alive = workers.Where(w => !w.HasExited).ToList();
            if (alive.Count == 0) break;
            var victim = alive[rng.Next(alive.Count)];
            if (store.Claims().Any(c => c.Worker.Contains($"/{victim.Id}/"))) killedHolding++;
            victim.Kill();
            victim.WaitForExit();
            kills++;
            var replacement = Sweep(root, args);
            replacement.StandardError.ReadToEndAsync();
            workers.Add(replacement);
            started++;
        }
        double wall = clock.Elapsed.TotalSeconds;
        int cells = store.FinishedKeys().Count;
        int failed = workers.Count(w => w.ExitCode != 0 && w.ExitCode != 137 && w.ExitCode != -1);
        Console.WriteLine($"Killed workers (the plan with all nine built-in ICL tasks, 60 items each, and 20 IF prompts of 128 tokens): a worker killed with SIGKILL every {killEvery} s and replaced (3 running, --lease 6): {kills} kills ({killedHolding} holding a cell), " +
            $"{started} workers started, {wall:F0} s; cells committed {cells} of {planned} planned, each once (the key is the primary key; " +
            $"{store.CellRuns().Count} rows), claims left {store.Claims().Count}, surviving workers failed: {failed}.");
    }
}
