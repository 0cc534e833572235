namespace Attune.Evaluation.Tasks;

/// <summary>A <c>--tasks</c> list: built-in tasks (<c>builtin:all</c>, <c>builtin:TYPE</c>, <c>builtin:TYPE_LANG</c>) and task files, comma-separated.</summary>
public static class TaskList
{
    /// <summary>Every task the list names, in its order (shared by <c>attune eval icl</c> and the sweep).</summary>
    public static List<IclTask> Resolve(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .SelectMany(entry => entry.StartsWith("builtin:", StringComparison.Ordinal)
                ? BuiltinSuite.Resolve(entry)
                : TaskConfig.Load(entry).Select(c => new IclTask(c)))
            .ToList();
}
