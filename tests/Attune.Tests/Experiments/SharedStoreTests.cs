using System.Diagnostics;
using Attune.Experiments;
using Attune.Modeling;
using Attune.Models;
using Attune.Tensors;
using Npgsql;

namespace Attune.Tests.Experiments;

/// <summary>
/// One study shared by many workers through a PostgreSQL store (a throwaway cluster on loopback, <see cref="TestPostgres"/>):
/// every cell exactly once, the same results as one process, a killed worker's cell rerun, copies between the two kinds
/// of store.
/// </summary>
[Collection("Simd")] // compares results computed in separate runs value for value
public class SharedStoreTests
{
    sealed class Models : IDisposable
    {
        readonly TempDir _tmp = new();
        public string this[string name] => _tmp[name];
        public Models()
        {
            ModelInitializer.Write(_tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
            ModelInitializer.Write(_tmp["instruct"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        }
        public void Dispose() => _tmp.Dispose();
    }

    static SweepPlan Plan(Models m) => new()
    {
        Base = ModelReference.Parse(m["base"]), Instruct = ModelReference.Parse(m["instruct"]), Lambdas = [0, 0.5, 1], Languages = ["fr", "es"],
        Icl = "builtin:nli", If = "builtin", IclLimit = 3, IfLimit = 2, IfMaxTokens = 8, UrialShots = 1,
    };

    /// <summary>Everything a store holds about its cells, in one text: keys, arms, scores to the last bit, items.</summary>
    static string Snapshot(ResultsStore s) => string.Join("\n", s.Cells(withItems: true).Select(c =>
        $"{c.Key} {c.Arm} {c.Lambda} {c.Suite} {c.Language} {c.ModelIdentity} {c.Settings.ToJsonString()} "
        + $"{string.Join(",", c.Aggregates.Select(a => $"{a.Name}={a.Value:R}[{a.Low:R},{a.High:R}]/{a.Count}"))} {string.Join("|", c.Items.Select(i => i.ToJsonString()))}"));

    static async Task<int> RunWorker(SweepPlan plan, string store, List<Cell> cells, TimeSpan? lease = null)
    {
        var sweep = new Sweep(plan) { Lease = lease ?? Sweep.DefaultLease };
        using var results = new ResultsStore(store);
        return await sweep.RunAsync(results, results.BeginRun("test", "test", plan.ToJson()), cells);
    }

    [Fact]
    public async Task Three_workers_on_one_PostgreSQL_store_run_every_cell_once_and_equal_one_process()
    {
        using var m = new Models();
        var plan = Plan(m);
        var cells = new Sweep(plan).Cells();
        await RunWorker(plan, m["single.db"], cells);
        var url = TestPostgres.NewDatabase();
        var ran = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => RunWorker(plan, url, cells))));
        Assert.Equal(cells.Count, ran.Sum()); // none twice, none lost
        Assert.Contains(ran, r => r > 0);
        using var shared = new ResultsStore(url);
        using var single = new ResultsStore(m["single.db"]);
        Assert.Equal(cells.Select(c => c.Key).Order(), shared.Cells().Select(c => c.Key).Order());
        Assert.Equal(Snapshot(single), Snapshot(shared));
        Assert.Empty(shared.Claims());
        Assert.Equal(3, shared.Runs().Count);
        // The report reads PostgreSQL as it reads SQLite (the JSON report also gives each cell's seconds, which differ between runs).
        foreach (var format in new[] { "md", "csv" })
            Assert.Equal(Report.Render(single, format), Report.Render(shared, format));
    }

    [Fact]
    public void A_claim_on_PostgreSQL_is_held_by_one_worker_until_it_expires_or_is_let_go()
    {
        using var m = new Models();
        var cells = new Sweep(Plan(m)).Cells();
        using var store = new ResultsStore(TestPostgres.NewDatabase());
        using (var first = store.TryClaim(cells[0].Key, "w/1", TimeSpan.FromMinutes(5)))
        {
            Assert.NotNull(first);
            Assert.Null(store.TryClaim(cells[0].Key, "w/2", TimeSpan.FromMinutes(5)));
            Assert.NotNull(store.TryClaim(cells[1].Key, "w/2", TimeSpan.FromMinutes(5))); // left unreleased, as by a killed worker
            Assert.Equal([(cells[0].Key, "w/1", true), (cells[1].Key, "w/2", true)], store.Claims().OrderBy(c => c.Worker));
        }
        // Let go: anyone's. A short lease that is not renewed expires by the server's clock.
        using (var again = store.TryClaim(cells[0].Key, "w/3", TimeSpan.FromSeconds(1)))
        {
            Assert.NotNull(again);
            again!.Dispose(); // releases
        }
        // A worker killed long ago: its claim's expiry has passed by the server's clock.
        using (var db = new NpgsqlConnection(((StoreLocation.Postgres)store.Location).ConnectionString("test")))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"INSERT INTO claims (key, worker, expires) VALUES ('{cells[2].Key}', 'dead/4', now() - interval '1 second')";
            cmd.ExecuteNonQuery();
        }
        Assert.Contains(store.Claims(), c => c.Key == cells[2].Key && !c.Live);
        using var taken = store.TryClaim(cells[2].Key, "w/5", TimeSpan.FromMinutes(5));
        Assert.NotNull(taken);
    }

    [Fact]
    public async Task A_lease_is_kept_alive_by_its_heartbeat_while_the_cell_runs()
    {
        using var m = new Models();
        var cells = new Sweep(Plan(m)).Cells();
        using var store = new ResultsStore(TestPostgres.NewDatabase());
        using var lease = store.TryClaim(cells[0].Key, "w/1", TimeSpan.FromMilliseconds(600));
        Assert.NotNull(lease);
        await Task.Delay(1500); // well past the lease: only the heartbeats (every 200 ms) keep it
        Assert.True(lease!.Renewals >= 3, $"{lease.Renewals} heartbeats");
        Assert.Null(store.TryClaim(cells[0].Key, "w/2", TimeSpan.FromMinutes(1)));
    }

    static Process StartSweep(params string[] args) => Cli.CliProcess.Start(null, ["sweep", .. args]);

    [Fact]
    public async Task A_worker_killed_mid_cell_loses_only_that_cell_which_another_worker_runs()
    {
        using var m = new Models();
        var url = TestPostgres.NewDatabase();
        string[] args = ["--base", m["base"], "--instruct", m["instruct"], "--lambdas", "0,0.5,1", "--langs", "fr,es", "--icl", "builtin:nli", "--icl-limit", "6",
            "--if", "builtin", "--if-limit", "3", "--max-tokens", "48", "--urial-shots", "1", "--store", url, "--lease", "3"];
        var victim = StartSweep(args);
        var drain = victim.StandardError.ReadToEndAsync();
        // Kill the first worker with SIGKILL while it holds a cell (its claims name its process).
        string? killedCell = null;
        using (var store = new ResultsStore(url))
        {
            var clock = Stopwatch.StartNew();
            while (killedCell is null && clock.Elapsed < TimeSpan.FromMinutes(2) && !victim.HasExited)
            {
                killedCell = store.Claims().FirstOrDefault(c => c.Worker.Contains($"/{victim.Id}/")).Key;
                if (killedCell is null) await Task.Delay(10);
            }
        }
        Assert.True(killedCell is not null, "the first worker never claimed a cell: " + (victim.HasExited ? await drain : ""));
        victim.Kill();
        await victim.WaitForExitAsync();
        // Two more workers finish the plan; the dead worker's claim expires after its lease and one of them runs that cell.
        var survivors = new[] { StartSweep(args), StartSweep(args) };
        var logs = await Task.WhenAll(survivors.Select(s => s.StandardError.ReadToEndAsync()));
        foreach (var s in survivors) { await s.WaitForExitAsync(); Assert.True(s.ExitCode == 0, string.Join("\n", logs)); }
        using var results = new ResultsStore(url);
        var plan = new Sweep(Plan(m) with { IclLimit = 6, IfLimit = 3, IfMaxTokens = 48 });
        Assert.Equal(plan.Cells().Select(c => c.Key).Order(), results.FinishedKeys().Order());
        Assert.Contains(killedCell, results.FinishedKeys());
        Assert.Empty(results.Claims());
        Assert.Equal(3, results.Runs().Count);
    }

    [Fact]
    public async Task A_study_copied_SQLite_to_PostgreSQL_and_back_is_identical()
    {
        using var m = new Models();
        var plan = Plan(m) with { Lambdas = [0, 1], Languages = ["fr"] };
        await RunWorker(plan, m["study.db"], new Sweep(plan).Cells());
        var url = TestPostgres.NewDatabase();
        var (code, output, err) = Cli.CliRunner.Run("", "store", "copy", m["study.db"], url);
        Assert.True(code == 0, err);
        Assert.Contains("cells copied", output);
        Assert.DoesNotContain("Password", output + err);
        (code, _, err) = Cli.CliRunner.Run("", "store", "copy", url, m["back.db"]);
        Assert.True(code == 0, err);
        using var original = new ResultsStore(m["study.db"]);
        using var postgres = new ResultsStore(url);
        using var back = new ResultsStore(m["back.db"]);
        Assert.Equal(Snapshot(original), Snapshot(postgres));
        Assert.Equal(Snapshot(original), Snapshot(back));
        Assert.Equal(original.Runs(), back.Runs());
        Assert.Equal(original.CellRuns().OrderBy(kv => kv.Key), back.CellRuns().OrderBy(kv => kv.Key));
        // A copy goes into an empty store only; merge adds to one.
        (code, _, err) = Cli.CliRunner.Run("", "store", "copy", m["study.db"], url);
        Assert.Equal(2, code);
        Assert.Contains("already holds", err);
        // The report of a PostgreSQL store, through the command as a user runs it.
        (code, output, err) = Cli.CliRunner.Run("", "report", url, "--format", "md");
        Assert.True(code == 0, err);
        Assert.Equal(Report.Render(original, "md"), output);
    }

    [Fact]
    public void A_store_goes_on_after_the_server_drops_its_connection()
    {
        using var store = new ResultsStore(TestPostgres.NewDatabase());
        var run = store.BeginRun("test", "test", []);
        // The server ends the store's connection, as a restart or a proxy's idle timeout would.
        using (var admin = new NpgsqlConnection(((StoreLocation.Postgres)store.Location).ConnectionString("admin")))
        {
            admin.Open();
            using var cmd = admin.CreateCommand();
            cmd.CommandText = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'attune' AND pid <> pg_backend_pid()";
            Assert.Equal(1L, cmd.ExecuteScalar());
        }
        Assert.True(store.Commit(run, new CellResult("cell-1", "arm", 0.5, "icl", "en", "model", [], [new Aggregate("icl", 0.5, 0.4, 0.6, 10)], [], 1)));
        Assert.Contains("cell-1", store.FinishedKeys());
    }

    [Fact]
    public void A_PostgreSQL_store_from_a_newer_Attune_is_refused_in_one_line()
    {
        var url = TestPostgres.NewDatabase();
        using (new ResultsStore(url)) { }
        var location = (StoreLocation.Postgres)StoreLocation.Parse(url);
        using (var db = new NpgsqlConnection(location.ConnectionString("test")))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "UPDATE meta SET value = '2' WHERE name = 'schema'";
            cmd.ExecuteNonQuery();
        }
        var e = Assert.Throws<AttuneException>(() => new ResultsStore(url));
        Assert.Contains("newer Attune", e.Message);
        // A database without Attune's tables is not a store to read (nothing is created in it).
        var (code, _, err) = Cli.CliRunner.Run("", "report", TestPostgres.NewDatabase());
        Assert.Equal(2, code);
        Assert.Contains("not a results store", err);
        // A server that is not there: one line naming the store.
        var nowhere = Assert.Throws<AttuneException>(() => new ResultsStore($"postgresql://attune@127.0.0.1:1/{location.Database}"));
        Assert.Contains("cannot connect to PostgreSQL", nowhere.Message);
    }
}

/// <summary>λ arms served over HTTP (<c>attune merge --lambdas</c>, then <c>attune serve</c>) against the same arms built in memory.</summary>
[Collection("Simd")]
public class ServedArmTests
{
    [Fact]
    public async Task A_sweep_over_served_lambda_arms_scores_as_the_in_memory_arms()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["instruct"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        var (code, _, err) = Cli.CliRunner.Run("", "merge", "--base", tmp["base"], "--instruct", tmp["instruct"], "--lambdas", "0,1", "--out", tmp["merged"]);
        Assert.True(code == 0, err);
        using var serve = Cli.CliProcess.Start(null, "serve", "--model", $"lambda-0={Path.Combine(tmp["merged"], "lambda-0.00")}", "--model", $"lambda-1={Path.Combine(tmp["merged"], "lambda-1.00")}", "--port", "0");
        try
        {
            var address = (await Cli.CliProcess.ServeAddress(serve)).ToString().TrimEnd('/');
            string[] common = ["--langs", "fr", "--icl", "builtin:nli,builtin:symbols", "--icl-limit", "4", "--if", "builtin", "--if-limit", "2", "--max-tokens", "10"];
            (code, _, err) = Cli.CliRunner.Run("", ["sweep", "--arm", $"lambda-0={address}#lambda-0", "--arm", $"lambda-1={address}#lambda-1", "--store", tmp["served.db"], .. common]);
            Assert.True(code == 0, err);
            (code, _, err) = Cli.CliRunner.Run("", ["sweep", "--base", tmp["base"], "--instruct", tmp["instruct"], "--lambdas", "0,1", "--store", tmp["local.db"], .. common]);
            Assert.True(code == 0, err);
            using var served = new ResultsStore(tmp["served.db"]);
            using var local = new ResultsStore(tmp["local.db"]);
            var servedCells = served.Cells(withItems: true);
            Assert.Equal(["lambda-0.00", "lambda-1.00"], servedCells.Select(c => c.Arm).Distinct()); // named as the sweep names its λ arms
            Assert.Equal(4, servedCells.Count); // two arms × ICL, IF × fr
            foreach (var cell in servedCells)
            {
                Assert.StartsWith($"remote:{address}#lambda-{cell.Lambda}@", cell.ModelIdentity); // which server and which files (attune serve's fingerprint)
                var twin = local.Cells(withItems: true).Single(c => c.Arm == cell.Arm && c.Suite == cell.Suite && c.Language == cell.Language);
                Assert.Equal(twin.Lambda, cell.Lambda);
                // The serve path's log-likelihoods agree with in-process ones to 1e-4 (ServerTests); on these items that
                // decides every choice alike, and greedy answers are the same text.
                Assert.Equal(twin.Items.Select(i => i["prediction"]?.ToJsonString() ?? i["response"]?.ToJsonString()),
                    cell.Items.Select(i => i["prediction"]?.ToJsonString() ?? i["response"]?.ToJsonString()));
                foreach (var a in twin.Aggregates.Where(a => double.IsFinite(a.Value)))
                    Assert.Equal(a.Value, cell.Aggregates.Single(x => x.Name == a.Name).Value, 1e-9);
            }
        }
        finally
        {
            serve.Kill();
            await serve.WaitForExitAsync();
        }
    }

    [Fact]
    public void A_served_arm_with_the_token_shift_is_refused_before_any_cell()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        var (code, _, err) = Cli.CliRunner.Run("", "sweep", "--base", tmp["base"], "--instruct", tmp["base"], "--lambdas", "0", "--arm", "served=http://127.0.0.1:9/v1#m",
            "--langs", "en", "--icl", "none", "--if", "none", "--shift", "--store", tmp["s.db"]);
        Assert.Equal(2, code);
        Assert.Contains("--shift", err);
        Assert.Contains("served", err);
    }

    [Fact]
    public async Task A_served_arm_whose_server_gives_no_prompt_logprobs_stops_the_sweep_before_its_first_cell()
    {
        using var tmp = new TempDir();
        await using var server = await Server.ScriptedServer.Start(async ctx =>
        {
            ctx.Response.ContentType = "application/json";
            await Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(ctx.Response, """{"id":"x","object":"text_completion","choices":[{"index":0,"text":"The sky is blue","finish_reason":"length"}]}""");
        });
        var (code, _, err) = Cli.CliRunner.Run("", "sweep", "--arm", $"served={server.Spec}", "--langs", "fr", "--icl", "builtin:nli", "--icl-limit", "2", "--if", "none", "--store", tmp["s.db"]);
        Assert.Equal(2, code);
        Assert.Single(err.Trim().Split('\n'), l => l.Contains("--arm"));
        Assert.Contains("--arm served", err);
        Assert.Contains("log-probabilities", err);
        using var store = new ResultsStore(tmp["s.db"]);
        Assert.Empty(store.Cells());
    }
}
