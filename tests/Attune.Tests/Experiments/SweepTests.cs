using Attune.Experiments;
using Attune.Modeling;
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
        Base = m.Base, Instruct = m.Instruct, Lambdas = [0, 0.5, 1], Languages = ["fr", "es"],
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

    [Theory]
    [InlineData("0:1:0.1", 11)]
    [InlineData("0,0.5,1", 3)]
    [InlineData("0.2:0.8:0.3", 3)]
    public void Lambda_lists_and_ranges_parse(string text, int count)
    {
        var l = Sweep.ParseLambdas(text);
        Assert.Equal(count, l.Count);
        Assert.Equal(text.Split(':', ',')[0], l[0].ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (text == "0:1:0.1") Assert.Equal(1.0, l[^1]);
    }

    [Fact]
    public void Bad_shards_and_lambdas_are_refused()
    {
        Assert.Throws<AttuneException>(() => Sweep.Shard([], 0, 2));
        Assert.Throws<AttuneException>(() => Sweep.Shard([], 3, 2));
        Assert.Throws<AttuneException>(() => Sweep.ParseLambdas("1:0:0.1"));
        Assert.Throws<AttuneException>(() => Sweep.ParseLambdas("zero"));
    }
}
