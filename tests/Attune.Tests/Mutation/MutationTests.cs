namespace Attune.Tests.Mutation;

/// <summary>The seeds of every target, made once for the class.</summary>
public sealed class MutationSeeds : IDisposable
{
    readonly TempDir _tmp = new();
    public Dictionary<string, MutationTarget> Targets { get; }

    public MutationSeeds() => Targets = MutationTargets.Create(_tmp.Path).ToDictionary(t => t.Name);

    public void Dispose() => _tmp.Dispose();
}

/// <summary>
/// Every parser under a fixed sample of seeded mutations (bench/Attune.Bench's <c>mutation</c> mode runs many more):
/// each input is accepted or refused with an AttuneException naming the file, never a crash, never a hang.
/// </summary>
public class MutationTests(MutationSeeds seeds) : IClassFixture<MutationSeeds>
{
    const int Inputs = 300;

    public static TheoryData<string> Parsers() => new(MutationTargets.Names);

    [Theory]
    [MemberData(nameof(Parsers))]
    public void Mutated_inputs_are_accepted_or_refused_cleanly_never_crash_or_hang(string parser)
    {
        var report = MutationRun.Run(seeds.Targets[parser], Inputs, seed: 2026, limit: TimeSpan.FromSeconds(10));
        var table = MutationRun.Table([report]);
        Assert.True(report[Outcome.Crashed] == 0 && report[Outcome.TimedOut] == 0, table);
        Assert.Equal(Inputs, report.Inputs);
        Assert.True(report[Outcome.Refused] > 0, $"no mutation reached an error path: {table}");
    }

    [Fact]
    public void The_seeds_are_accepted_as_they_are()
    {
        foreach (var target in seeds.Targets.Values)
        {
            File.WriteAllBytes(target.File, target.Seed);
            target.Load();
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_inputs()
    {
        var target = seeds.Targets["gguf"];
        byte[] Input(int i) => target.Mutate(new Mutator(new Random(i)), target.Seed);
        Assert.Equal(Input(7), Input(7));
        Assert.NotEqual(Input(7), Input(8));
    }
}
