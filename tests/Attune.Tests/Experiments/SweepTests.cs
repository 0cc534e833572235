using Attune.Evaluation.Judging;
using Attune.Experiments;
using Attune.Tests.Evaluation;
using Attune.Modeling;
using Attune.Models;
using Attune.Tensors;

namespace Attune.Tests.Experiments;

[Collection("Simd")] // compares stores computed in separate runs value for value
public class SweepTests
{
    sealed class Models : IDisposable
    {
        readonly TempDir _tmp = new();
        public string Base => _tmp["base"];
        public string Instruct => _tmp["instruct"];
        public string this[string name] => _tmp[name];
        public Models()
        {
            ModelInitializer.Write(Base, Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
            ModelInitializer.Write(Instruct, Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        }
        public void Dispose() => _tmp.Dispose();
    }

    static SweepPlan Plan(Models m) => new()
    {
        Base = ModelReference.Parse(m.Base), Instruct = ModelReference.Parse(m.Instruct), Lambdas = [0, 0.5, 1], Languages = ["fr", "es"],
        Icl = "builtin:nli,builtin:symbols", If = "builtin", IclLimit = 3, IfLimit = 2, IfMaxTokens = 12, UrialShots = 1,
    };

    static string Snapshot(string store)
    {
        using var s = new ResultsStore(store);
        return string.Join("\n", s.Cells(withItems: true).OrderBy(c => c.Key).Select(c =>
            $"{c.Key} {c.Arm} {c.Suite} {c.Language} {string.Join(",", c.Aggregates.Select(a => $"{a.Name}={a.Value:R}"))} {string.Join("|", c.Items.Select(i => i.ToJsonString()))}"));
    }

    [Fact]
    public async Task A_killed_sweep_resumes_without_losing_or_repeating_a_cell()
    {
        using var m = new Models();
        var sweep = new Sweep(Plan(m));
        var cells = sweep.Cells();
        Assert.Equal(4 * 2 * 2, cells.Count); // λ 0, 0.5, 1 and the base with URIAL × ICL, IF × fr, es
        Assert.Equal(cells.Count, cells.Select(c => c.Key).Distinct().Count());

        using (var store = new ResultsStore(m["killed.db"]))
        {
            using var kill = new CancellationTokenSource();
            int finished = 0;
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells,
                p => { if (p.Finished && ++finished == 5) kill.Cancel(); }, cancel: kill.Token));
            Assert.Equal(5, store.FinishedKeys().Count);
        }
        int ranAfterKill;
        using (var store = new ResultsStore(m["killed.db"]))
            ranAfterKill = await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells);
        Assert.Equal(cells.Count - 5, ranAfterKill);

        using (var store = new ResultsStore(m["full.db"]))
            await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells);
        Assert.Equal(Snapshot(m["full.db"]), Snapshot(m["killed.db"]));
        using (var store = new ResultsStore(m["killed.db"]))
            Assert.Equal(0, await sweep.RunAsync(store, "again", cells)); // nothing left to do
    }

    [Fact]
    public async Task Icl_prompts_go_through_the_chat_template_for_the_chat_arms_only_when_asked()
    {
        using var m = new Models();
        var plain = new Sweep(Plan(m) with { If = null });
        var chat = new Sweep(Plan(m) with { If = null, IclChat = "chat", IclSystemInstruction = "Réponds." });
        // Unset, the cells' keys stay what they were; set, only the arms prompted through chat change.
        Assert.All(plain.Cells(), c => Assert.Null(c.Settings["chat_template"]));
        foreach (var (before, after) in plain.Cells().Zip(chat.Cells()))
        {
            Assert.Equal(before.Arm.Name == "base-urial", after.Settings["chat_template"] is null);
            Assert.NotEqual(before.Key, after.Key); // the system instruction is part of every ICL cell
        }
        using var store = new ResultsStore(m["chat.db"]);
        var cells = chat.Cells();
        Assert.Equal(cells.Count, await chat.RunAsync(store, store.BeginRun("test", "test", chat.Plan.ToJson()), cells));

        var e = Assert.Throws<AttuneException>(() => new Sweep(Plan(m) with { IclFewshotAsMultiturn = true }).CheckInputs());
        Assert.Contains("--icl-fewshot-as-multiturn", e.Message);
        Assert.Contains("--icl-chat", Assert.Throws<AttuneException>(() => new Sweep(Plan(m) with { IclChat = "some" }).CheckInputs()).Message);
    }

    [Fact]
    public async Task Shards_merged_equal_one_full_run()
    {
        using var m = new Models();
        var sweep = new Sweep(Plan(m) with { Lambdas = [0, 1] });
        var cells = sweep.Cells();
        for (int i = 1; i <= 3; i++)
        {
            using var shard = new ResultsStore(m[$"shard{i}.db"]);
            var mine = Sweep.Shard(cells, i, 3);
            Assert.NotEmpty(mine);
            await sweep.RunAsync(shard, shard.BeginRun("test", "test", sweep.Plan.ToJson()), mine);
        }
        Assert.Equal(cells.Count, Enumerable.Range(1, 3).Sum(i => Sweep.Shard(cells, i, 3).Count));
        using (var merged = new ResultsStore(m["merged.db"]))
        {
            int added = 0;
            for (int i = 1; i <= 3; i++) { using var s = new ResultsStore(m[$"shard{i}.db"]); added += merged.Merge(s); }
            Assert.Equal(cells.Count, added);
            using var again = new ResultsStore(m["shard1.db"]);
            Assert.Equal(0, merged.Merge(again)); // merging a shard twice adds nothing
        }
        using (var full = new ResultsStore(m["full.db"]))
            await sweep.RunAsync(full, full.BeginRun("test", "test", sweep.Plan.ToJson()), cells);
        Assert.Equal(Snapshot(m["full.db"]), Snapshot(m["merged.db"]));
    }

    [Fact]
    public async Task The_judge_suite_compares_each_arms_answers_with_the_references_and_resumes_like_the_others()
    {
        using var m = new Models();
        var sweep = new Sweep(Plan(m) with { Lambdas = [0, 1], Languages = ["fr"], Icl = null, If = null, Judge = TestModels.ScriptedJudge, JudgeLimit = 4 });
        var cells = sweep.Cells();
        Assert.Equal(["judge"], sweep.Suites);
        Assert.Equal(3, cells.Count); // λ 0, λ 1, base with URIAL
        var judge = ScriptedJudge.LengthLoving();
        using (var store = new ResultsStore(m["judge.db"]))
        {
            await Assert.ThrowsAsync<AttuneException>(() => sweep.RunAsync(store, "no judge", cells));
            Assert.Equal(3, await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells, judge: judge));
            Assert.Equal(0, await sweep.RunAsync(store, "again", cells, judge: judge));
            foreach (var cell in store.Cells(withItems: true))
            {
                var builtIn = Judge.BuiltIn("fr").Take(4).ToList();
                Assert.Equal(builtIn.Select(i => i.Id), cell.Items.Select(i => i["key"]!.ToString()));
                Assert.Equal("scripted-judge", cell.Settings["judge_identity"]!.ToString());
                // The win rate is the mean preference the length-loving judge must give: 1 for a longer
                // answer than the reference, ½ for one as long, 0 for a shorter one.
                double expected = cell.Items.Select((item, i) =>
                {
                    int mine = ScriptedJudge.Words(item["response"]!.ToString()), theirs = ScriptedJudge.Words(builtIn[i].Reference!);
                    return mine > theirs ? 1.0 : mine == theirs ? 0.5 : 0.0;
                }).Average();
                var aggregate = cell.Aggregates.Single(a => a.Name == "judge");
                Assert.Equal(expected, aggregate.Value, 1e-12);
                Assert.Equal(4, aggregate.Count);
                Assert.Equal(0, cell.Aggregates.Single(a => a.Name == "judge/unreadable").Value);
                var helpfulness = cell.Aggregates.Single(a => a.Name == "judge/aspect/helpfulness");
                Assert.Equal(cell.Items.Average(i => Math.Min(5, 1 + ScriptedJudge.Words(i["response"]!.ToString()) / 5)), helpfulness.Value, 1e-12);
            }
        }
        // Every answer was shown to the judge once for the preference and once for the aspects, in French — and a question
        // another arm already asked (the tiny random models often answer alike) was not asked again.
        Assert.Equal(judge.Prompts.Distinct().Count(), judge.Prompts.Count);
        Assert.InRange(judge.Prompts.Count, 4 * 2, 3 * 4 * 2);
        Assert.All(judge.Prompts, p => Assert.True(p.Contains("Demande :"), p[..60]));
    }

    [Fact]
    public async Task Workers_sharing_one_store_run_every_cell_exactly_once()
    {
        using var m = new Models();
        var plan = Plan(m) with { Lambdas = [0, 0.5, 1], Languages = ["fr", "es"], Icl = "builtin:nli", If = "builtin", IclLimit = 2, IfLimit = 1, IfMaxTokens = 6 };
        var cells = new Sweep(plan).Cells();
        // Two workers, each with its own connection to the same SQLite file, side by side.
        var workers = Enumerable.Range(0, 2).Select(_ => new Sweep(plan)).ToList();
        var ran = await Task.WhenAll(workers.Select(w => Task.Run(async () =>
        {
            using var store = new ResultsStore(m["shared.db"]);
            return await w.RunAsync(store, store.BeginRun("test", "test", plan.ToJson()), cells);
        })));
        Assert.Equal(cells.Count, ran.Sum()); // no cell run twice, none lost, no duplicate-key failure
        using (var store = new ResultsStore(m["shared.db"]))
            Assert.Equal(cells.Select(c => c.Key).Order(), store.Cells().Select(c => c.Key).Order());
    }

    [Fact]
    public async Task A_dead_workers_claim_expires_and_a_live_ones_is_respected()
    {
        using var m = new Models();
        var plan = Plan(m) with { Lambdas = [0], Languages = ["fr"], Icl = "builtin:nli", If = null, IclLimit = 2 };
        var sweep = new Sweep(plan) { Lease = TimeSpan.FromSeconds(2) };
        var cells = sweep.Cells();
        using var store = new ResultsStore(m["claims.db"]);
        // A live worker holds the λ = 0 cell; a killed one left a claim on the URIAL cell that has expired.
        var live = store.TryClaim(cells[0].Key, "other/1", TimeSpan.FromMinutes(5));
        Assert.NotNull(live);
        Assert.Null(store.TryClaim(cells[0].Key, "another/2", TimeSpan.FromMinutes(5)));
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={m["claims.db"]};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"INSERT INTO claims (key, worker, expires) VALUES ('{cells[1].Key}', 'dead/3', '{DateTime.UtcNow.AddMinutes(-1):O}')";
            cmd.ExecuteNonQuery();
        }
        // λ = 0, the base with URIAL and the instruct model: all but the held one run, the expired claim's included; then the
        // worker waits for the held cell rather than leave it undone.
        var run = sweep.RunAsync(store, store.BeginRun("test", "test", plan.ToJson()), cells);
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); store.FinishedKeys().Count < cells.Count - 1 && clock.Elapsed < TimeSpan.FromMinutes(2);) await Task.Delay(50);
        await Task.Delay(1000);
        Assert.False(run.IsCompleted);
        Assert.DoesNotContain(cells[0].Key, store.FinishedKeys());
        Assert.Contains(cells[1].Key, store.FinishedKeys());
        // Once the live worker lets go, the waiting worker runs the cell; a finished cell is no one's.
        live!.Dispose();
        Assert.Equal(cells.Count, await run);
        Assert.Equal(0, sweep.ElsewhereCount);
        Assert.Null(store.TryClaim(cells[0].Key, "late/4", TimeSpan.FromMinutes(5)));
        Assert.Equal(cells.Count, store.Cells().Count);
    }

    [Fact]
    public void A_store_URL_of_an_unknown_kind_is_refused_not_made_a_folder()
    {
        var here = Directory.GetCurrentDirectory();
        var e = Assert.Throws<AttuneException>(() => new ResultsStore("mysql://user@localhost:3306/db"));
        Assert.Contains("mysql://", e.Message);
        Assert.False(Directory.Exists(Path.Combine(here, "mysql:")));
        // A password in a PostgreSQL URL is refused before anything is sent: it belongs in PGPASSWORD or a password file.
        e = Assert.Throws<AttuneException>(() => new ResultsStore("postgresql://user:secret@localhost:5432/db"));
        Assert.Contains("PGPASSWORD", e.Message);
        Assert.DoesNotContain("secret", e.Message);
        Assert.Contains("sslmode", Assert.Throws<AttuneException>(() => StoreLocation.Parse("postgresql://u@h/db?sslmode=sometimes")).Message);
        var pg = Assert.IsType<StoreLocation.Postgres>(StoreLocation.Parse("postgres://ana@db.example:6543/study?sslmode=verify-full"));
        Assert.Equal(("db.example", 6543, "study", "ana"), (pg.Host, pg.Port, pg.Database, pg.User));
        Assert.Contains("SSL Mode=VerifyFull", pg.ConnectionString("attune"));
        Assert.Equal(5432, Assert.IsType<StoreLocation.Postgres>(StoreLocation.Parse("postgresql://localhost/study")).Port);
    }

    [Fact]
    public async Task Fixed_shot_sets_per_task_are_part_of_the_cell_and_score_every_item_under_each()
    {
        using var m = new Models();
        var plan = Plan(m) with { Lambdas = [0], Languages = ["fr"], Icl = "builtin:nli", If = null, IclLimit = 4, ShotsPerTask = 2 };
        var sweep = new Sweep(plan);
        var cells = sweep.Cells();
        Assert.NotEqual(new Sweep(plan with { ShotsPerTask = null }).Cells()[0].Key, cells[0].Key); // another measurement, another cell
        Assert.Equal(2, cells[0].Settings["shots_per_task"]!.GetValue<int>());
        Assert.False(new Sweep(plan with { ShotsPerTask = null }).Cells()[0].Settings.ContainsKey("shots_per_task")); // older keys unchanged
        using var store = new ResultsStore(m["sets.db"]);
        await sweep.RunAsync(store, "run", cells);
        Assert.Equal(4, store.Cells(withItems: true).First(c => c.Suite == "icl").Items.Count); // one record per item, its scores averaged over the sets
    }

    [Fact]
    public async Task Requests_one_arm_shares_with_another_are_answered_once()
    {
        // λ = 0 is the base itself: its raw few-shot ICL requests are the URIAL arm's, answered once within the run.
        using var m = new Models();
        var sweep = new Sweep(Plan(m) with { Lambdas = [0, 1], Languages = ["fr"], Icl = "builtin:nli", If = null, IclLimit = 3 });
        var cells = sweep.Cells();
        Assert.Equal(sweep.Plan.Base, cells.Single(c => c.Arm.Name == "lambda-0.00").Arm.Model);
        using var store = new ResultsStore(m["reuse.db"]);
        Assert.Equal(3, await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells));
        var results = store.Cells();
        var lambda0 = results.Single(c => c.Arm == "lambda-0.00");
        var urial = results.Single(c => c.Arm == "base-urial");
        Assert.Equal(lambda0.Aggregates.Select(a => (a.Name, a.Value)), urial.Aggregates.Select(a => (a.Name, a.Value)));
        Assert.True(sweep.AnswersReused >= lambda0.Aggregates.Single(a => a.Name == "icl").Count, $"{sweep.AnswersReused} answers reused");
    }

    [Fact]
    public async Task The_shift_suite_ranks_each_arms_answers_under_the_base_and_the_report_draws_it()
    {
        using var m = new Models();
        var sweep = new Sweep(Plan(m) with { Lambdas = [0, 1], Languages = ["fr"], Icl = null, If = null, Shift = true, ShiftLimit = 2, ShiftMaxTokens = 8 });
        var cells = sweep.Cells();
        Assert.Equal(["shift"], sweep.Suites);
        Assert.Equal(["lambda-0.00", "lambda-1.00"], cells.Select(c => c.Arm.Name)); // not the base against itself
        sweep.CheckInputs();
        using var store = new ResultsStore(m["shift.db"]);
        Assert.Equal(2, await sweep.RunAsync(store, store.BeginRun("test", "test", sweep.Plan.ToJson()), cells));
        var results = store.Cells(withItems: true);
        foreach (var cell in results)
        {
            var shift = cell.Aggregates.Single(a => a.Name == "shift");
            Assert.InRange(shift.Value, 0, 1);
            Assert.Equal(cell.Aggregates.Single(a => a.Name == "shift/shifted").Value, shift.Value);
            Assert.Equal(1, cell.Aggregates.Single(a => a.Name == "shift/unshifted").Value + cell.Aggregates.Single(a => a.Name == "shift/marginal").Value + shift.Value, 1e-12);
            Assert.Equal(2, cell.Items.Count);
        }
        // λ = 0 is the base's own weights: nothing it says is shifted.
        Assert.Equal(0, results.Single(c => c.Arm == "lambda-0.00").Aggregates.Single(a => a.Name == "shift").Value);
        Assert.Contains("Token distribution shift", Report.Render(store, "html"));
        Assert.Contains("shifted tokens", Report.Render(store, "md"));
        Assert.Throws<AttuneException>(() => new Sweep(sweep.Plan with { ShiftLimit = 0 }).CheckInputs());
    }

    [Fact]
    public void The_progress_board_shows_each_cells_state_and_an_eta_per_suite()
    {
        using var m = new Models();
        var cells = new Sweep(Plan(m) with { Lambdas = [1], Languages = ["fr"] }).Cells(); // λ 1 and URIAL × icl, if
        var board = new SweepBoard(cells, new HashSet<string> { cells[0].Key });
        Assert.Equal(["arm", "icl fr", "if fr"], board.Header());
        Assert.Null(board.Eta());
        Assert.Equal([["lambda-1.00", "↺", "·"], ["base-urial", "·", "·"]], board.Rows());
        board.Update(new Sweep.Progress(cells[1], false, 0, 1, 4));
        Assert.Equal("…", board.Rows()[0][2]);
        board.Update(new Sweep.Progress(cells[1], true, 10, 2, 4, 0.25));
        Assert.Equal("0.250", board.Rows()[0][2]);
        // One IF cell and one ICL cell left: IF at its own mean (10 s); ICL, with none run here, at the mean of all.
        Assert.Equal(TimeSpan.FromSeconds(20), board.Eta());
        board.Update(new Sweep.Progress(cells[2], true, 2, 3, 4, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(10), board.Eta());
        Assert.StartsWith("3/4 cells · 00:01:05 elapsed · ETA 00:00:10", board.Summary(TimeSpan.FromSeconds(65)));
    }

    [Theory]
    [InlineData("0:1:0.1", 11)]
    [InlineData("0,0.5,1", 3)]
    [InlineData("0.2:0.8:0.3", 3)]
    public void Lambda_lists_and_ranges_parse(string text, int count)
    {
        var l = Attune.Models.Lambda.ParseList(text);
        Assert.Equal(count, l.Count);
        Assert.Equal(text.Split(':', ',')[0], l[0].ToString());
        if (text == "0:1:0.1") Assert.Equal(1.0, l[^1].Value);
    }

    [Fact]
    public void Bad_shards_and_lambdas_are_refused()
    {
        Assert.Throws<AttuneException>(() => Sweep.Shard([], 0, 2));
        Assert.Throws<AttuneException>(() => Sweep.Shard([], 3, 2));
        Assert.Throws<AttuneException>(() => Attune.Models.Lambda.ParseList("1:0:0.1"));
        Assert.Throws<AttuneException>(() => Attune.Models.Lambda.ParseList("zero"));
    }
}
