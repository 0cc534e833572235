using System.Diagnostics;
using System.Text;

namespace Attune.Tests.Mutation;

public enum Outcome { Accepted, Refused, Crashed, TimedOut }

/// <summary>What one target's inputs came to; crashes and time-outs grouped by kind, with one input of each kept for the report.</summary>
public sealed class TargetReport(string name)
{
    public string Name => name;
    public int Inputs { get; set; }
    public int[] Counts { get; } = new int[4];
    public double Seconds { get; set; }
    /// <summary>Kind of failure (exception type and where it was thrown) → count and the first input's index and message.</summary>
    public SortedDictionary<string, (int Count, int Input, string Message)> Failures { get; } = new(StringComparer.Ordinal);

    public int this[Outcome o] => Counts[(int)o];
}

/// <summary>
/// Runs a target's mutated inputs through its load, one at a time, each under a time limit, and classifies what
/// happened: accepted; refused cleanly (an <see cref="AttuneException"/> whose message names the file); crashed (any
/// other exception, or an AttuneException that does not say which file); timed out.
/// </summary>
public static class MutationRun
{
    public static TargetReport Run(MutationTarget target, int inputs, int seed, TimeSpan limit)
    {
        var report = new TargetReport(target.Name);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < inputs; i++)
        {
            Write(target, Input(target, seed, i));
            var (outcome, kind, message) = Classify(target, limit);
            report.Counts[(int)outcome]++;
            if (outcome is Outcome.Crashed or Outcome.TimedOut)
                report.Failures[kind] = report.Failures.TryGetValue(kind, out var f0) ? (f0.Count + 1, f0.Input, f0.Message) : (1, i, message);
            if (outcome == Outcome.TimedOut) break; // the load may still be running; later inputs would not be measured fairly
        }
        report.Inputs = report.Counts.Sum();
        File.WriteAllBytes(target.File, target.Seed);
        foreach (var f in target.Scratch) File.Delete(f);
        report.Seconds = clock.Elapsed.TotalSeconds;
        return report;
    }

    /// <summary>Input number <paramref name="index"/> of a run with <paramref name="seed"/>: the same on every machine.</summary>
    public static byte[] Input(MutationTarget target, int seed, int index) =>
        target.Mutate(new Mutator(new Random(unchecked(seed * 1_000_003 + index * 7919) ^ StableHash(target.Name))), target.Seed);

    /// <summary>Puts <paramref name="input"/> where the target's load will read it.</summary>
    public static void Write(MutationTarget target, byte[] input)
    {
        foreach (var f in target.Scratch) File.Delete(f);
        File.WriteAllBytes(target.File, input);
    }

    static (Outcome, string Kind, string Message) Classify(MutationTarget target, TimeSpan limit)
    {
        var load = Task.Factory.StartNew(target.Load, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!load.Wait(limit)) return (Outcome.TimedOut, "timed out", $"still running after {limit.TotalSeconds} s");
            return (Outcome.Accepted, "", "");
        }
        catch (AggregateException ae) when (ae.InnerException is AttuneException e)
        {
            // The file, or for a problem of the checkpoint as a whole (config against weights) the folder that holds it.
            bool named = e.Message.Contains(target.File, StringComparison.Ordinal) || e.Source0 == Path.GetDirectoryName(target.File);
            if (named && !e.Message.Contains('\n')) return (Outcome.Refused, "", "");
            return (Outcome.Crashed, $"AttuneException without the file name at {Where(e)}", e.Message);
        }
        catch (AggregateException ae)
        {
            var e = ae.InnerException!;
            return (Outcome.Crashed, $"{e.GetType().Name} at {Where(e)}", e.Message);
        }
    }

    /// <summary>The first frame of Attune's own code in the exception's stack.</summary>
    static string Where(Exception e)
    {
        var frames = new StackTrace(e, fNeedFileInfo: false).GetFrames();
        var own = frames.FirstOrDefault(f => f.GetMethod()?.DeclaringType?.FullName?.StartsWith("Attune.", StringComparison.Ordinal) == true
            && f.GetMethod()?.DeclaringType?.Namespace?.StartsWith("Attune.Tests", StringComparison.Ordinal) != true) ?? frames.FirstOrDefault();
        var m = own?.GetMethod();
        return m is null ? "?" : $"{m.DeclaringType?.FullName}.{m.Name}";
    }

    /// <summary>string.GetHashCode differs from process to process; this does not.</summary>
    static int StableHash(string s)
    {
        int h = 17;
        foreach (var c in s) h = unchecked(h * 31 + c);
        return h;
    }

    /// <summary>The markdown table of bench/RESULTS.md, then each kind of failure with its first input.</summary>
    public static string Table(IEnumerable<TargetReport> reports)
    {
        var list = reports.ToList();
        var sb = new StringBuilder();
        sb.AppendLine("| parser | inputs | accepted | refused cleanly | crashed | timed out | seconds |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in list)
            sb.AppendLine($"| {r.Name} | {r.Inputs} | {r[Outcome.Accepted]} | {r[Outcome.Refused]} | {r[Outcome.Crashed]} | {r[Outcome.TimedOut]} | {r.Seconds:F1} |");
        foreach (var r in list)
            foreach (var (kind, (count, input, message)) in r.Failures)
                sb.AppendLine($"{r.Name}: {count} × {kind} (first: input {input}: {message.Split('\n')[0]})");
        return sb.ToString();
    }
}
