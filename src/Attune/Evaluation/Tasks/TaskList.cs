using YamlDotNet.RepresentationModel;

namespace Attune.Evaluation.Tasks;

/// <summary>
/// A <c>--tasks</c> list, comma-separated: built-in tasks (<c>builtin:all</c>, <c>builtin:TYPE</c>,
/// <c>builtin:TYPE_LANG</c>), task or group files, and task, group or tag names found in the <c>--include-path</c>
/// folders (lm-evaluation-harness's <c>--include_path</c>).
/// </summary>
public static class TaskList
{
    /// <summary>Every task the list names, each once, in its order (shared by <c>attune eval icl</c> and the sweep); groups met are added to <paramref name="groups"/>.</summary>
    public static List<IclTask> Resolve(string list, IReadOnlyList<string>? includePaths = null, List<TaskGroup>? groups = null, DataSources? data = null)
    {
        includePaths ??= [];
        groups ??= [];
        TaskIndex? index = null;
        var tasks = new List<IclTask>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            IEnumerable<IclTask> found;
            if (entry.StartsWith("builtin:", StringComparison.Ordinal)) found = BuiltinSuite.Resolve(entry);
            else if (File.Exists(entry))
            {
                // A group file's members are names: they are looked up in its own folder and the include paths.
                var docs = TaskYaml.Load(entry);
                if (docs.Any(TaskIndex.IsGroup))
                {
                    var fileIndex = TaskIndex.Build(includePaths.Append(Path.GetDirectoryName(Path.GetFullPath(entry))!).Distinct(), data);
                    found = docs.SelectMany(d => TaskIndex.IsGroup(d)
                        ? fileIndex.Resolve(((YamlScalarNode)TaskYaml.Get(d, "group")!).Value!, groups)
                        : [TaskConfig.Parse(d, entry, data)]).Select(c => new IclTask(c)).ToList();
                }
                else found = docs.Select(d => new IclTask(TaskConfig.Parse(d, entry, data))).ToList();
            }
            else if (entry.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || entry.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
                throw new AttuneException(entry, "--tasks", "file not found");
            else if (includePaths.Count == 0)
                throw new AttuneException(null, "--tasks", $"\"{entry}\" is not a file or builtin:NAME; task names are looked up in --include-path folders (none given)");
            else found = (index ??= TaskIndex.Build(includePaths, data)).Resolve(entry, groups).Select(c => new IclTask(c)).ToList();
            foreach (var t in found)
                if (seen.Add(t.Config.Name)) tasks.Add(t);
        }
        return tasks;
    }
}
