using Attune.Tests.Mutation;

namespace Attune.Bench;

/// <summary>
/// Every parser under N seeded mutated inputs (the tests run 300 of the same kind): a markdown table of how many
/// were accepted, refused cleanly, crashed or timed out, then each kind of failure with its first input.
/// </summary>
public static class MutationBench
{
    /// <summary>Runs one input of a table's run (same seed) in the open, so a failure shows its whole stack; keeps the input as a file.</summary>
    public static void One(string parser, int index, string keepAs)
    {
        var dir = Directory.CreateTempSubdirectory("attune-mutation-").FullName;
        try
        {
            var target = MutationTargets.Create(dir).Single(t => t.Name == parser);
            var input = MutationRun.Input(target, Seed, index);
            File.WriteAllBytes(keepAs, input);
            MutationRun.Write(target, input);
            target.Load();
            Console.WriteLine("accepted");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    const int Seed = 2026;

    public static void Table(int inputs, string[] only)
    {
        var dir = Directory.CreateTempSubdirectory("attune-mutation-").FullName;
        try
        {
            var targets = MutationTargets.Create(dir).Where(t => only.Length == 0 || only.Contains(t.Name)).ToList();
            var reports = new List<TargetReport>();
            foreach (var target in targets)
            {
                var report = MutationRun.Run(target, inputs, seed: Seed, limit: TimeSpan.FromSeconds(10));
                Console.Error.WriteLine($"{report.Name}: {report.Inputs} inputs in {report.Seconds:F1} s");
                reports.Add(report);
            }
            Console.WriteLine($"inputs per parser: {inputs}, seed {Seed}, {Environment.ProcessorCount} cores");
            Console.WriteLine();
            Console.Write(MutationRun.Table(reports));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
