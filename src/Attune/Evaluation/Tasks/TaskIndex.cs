using YamlDotNet.RepresentationModel;

namespace Attune.Evaluation.Tasks;

/// <summary>A group of tasks as a harness group file defines it: its members (tasks, tags or groups) and how its score is aggregated.</summary>
public sealed record TaskGroup(string Name, string Source, IReadOnlyList<string> Members, IReadOnlyList<GroupMetric> Aggregates, string? Alias = null)
{
    /// <summary>Every task under the group, nested groups and tags expanded (the harness pools them all).</summary>
    public IReadOnlyList<string> Leaves { get; init; } = [];
    /// <summary>metadata.version, as text.</summary>
    public string? Version { get; init; }
}

/// <summary>One entry of a group's <c>aggregate_metric_list</c>: the metric, averaged over members (weighted by their sizes unless told not to); an empty filter list means every pipeline the members report.</summary>
public sealed record GroupMetric(string Metric, bool WeightBySize, IReadOnlyList<string> FilterList);

/// <summary>
/// The tasks of the <c>--include-path</c> folders, by name, as lm-evaluation-harness's task manager indexes its
/// folders: every <c>*.yaml</c> file (its includes merged) that names a <c>task</c> is a task; one that names a
/// <c>group</c> with a <c>task</c> list is a group; a task's <c>tag</c> (or the old-style scalar <c>group</c>) adds it
/// to that tag. Files that are not tasks (templates without a name, broken files) are skipped, and named when a
/// task cannot be found.
/// </summary>
public sealed class TaskIndex
{
    readonly Dictionary<string, (string Path, YamlMappingNode Map)> _tasks = new(StringComparer.Ordinal);
    readonly Dictionary<string, TaskGroup> _groups = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<string>> _tags = new(StringComparer.Ordinal);
    readonly List<string> _skipped = [];
    DataSources? _data;

    public IReadOnlyCollection<string> TaskNames => _tasks.Keys;
    public IReadOnlyCollection<string> GroupNames => _groups.Keys;
    public IReadOnlyCollection<string> TagNames => _tags.Keys;

    /// <summary>Indexes the folders; tasks resolved later read their Hub data from <paramref name="data"/>.</summary>
    public static TaskIndex Build(IEnumerable<string> folders, DataSources? data = null)
    {
        var index = new TaskIndex { _data = data };
        foreach (var folder in folders)
        {
            if (!Directory.Exists(folder)) throw new AttuneException(folder, "--include-path", "folder not found");
            foreach (var file in Directory.EnumerateFiles(folder, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                index.Add(file);
        }
        return index;
    }

    void Add(string file)
    {
        List<YamlMappingNode> docs;
        try { docs = TaskYaml.Load(file); }
        catch (AttuneException e) { _skipped.Add(e.Message); return; }
        foreach (var map in docs)
        {
            var task = TaskYaml.Get(map, "task");
            var group = TaskYaml.Get(map, "group");
            if (IsGroup(map))
            {
                var groupName = ((YamlScalarNode)group!).Value!;
                var members = (YamlSequenceNode)task!;
                _groups[groupName] = new TaskGroup(groupName, file, members.Children.Select(m => m is YamlScalarNode { Value: { } n } ? n
                    : throw new AttuneException(file, $"line {m.Start.Line}: task", "a group's members are task, tag or group names (inline task definitions are not supported)")).ToList(),
                    Aggregates(map, file), (TaskYaml.Get(map, "group_alias") as YamlScalarNode)?.Value)
                {
                    Version = TaskYaml.Get(map, "metadata") is YamlMappingNode meta && TaskYaml.Get(meta, "version") is YamlScalarNode { Value: { } v } ? v : null,
                };
                continue;
            }
            if (task is not YamlScalarNode { Value: { } name }) continue; // a template meant to be included, not a task
            _tasks[name] = (file, map);
            foreach (var tag in Names(TaskYaml.Get(map, "tag")).Concat(group is YamlScalarNode ? Names(group) : []))
            {
                if (!_tags.TryGetValue(tag, out var list)) _tags[tag] = list = [];
                if (!list.Contains(name)) list.Add(name);
            }
        }
    }

    /// <summary>A group file: a <c>group</c> name with a <c>task</c> list of members.</summary>
    public static bool IsGroup(YamlMappingNode map) =>
        TaskYaml.Get(map, "group") is YamlScalarNode { Value: not null } && TaskYaml.Get(map, "task") is YamlSequenceNode;

    static IEnumerable<string> Names(YamlNode? node) => node switch
    {
        YamlScalarNode { Value: { } one } => [one],
        YamlSequenceNode many => many.Children.OfType<YamlScalarNode>().Select(s => s.Value).OfType<string>(),
        _ => [],
    };

    static List<GroupMetric> Aggregates(YamlMappingNode map, string file)
    {
        var list = new List<GroupMetric>();
        if (TaskYaml.Get(map, "aggregate_metric_list") is not { } node) return list;
        var entries = node is YamlSequenceNode seq ? seq.Children : [node];
        foreach (var entry in entries)
        {
            if (entry is not YamlMappingNode m || TaskYaml.Get(m, "metric") is not YamlScalarNode { Value: { } metric })
                throw new AttuneException(file, $"line {entry.Start.Line}: aggregate_metric_list", "each entry needs a metric");
            if (TaskYaml.Get(m, "aggregation") is YamlScalarNode { Value: { } agg } && agg != "mean")
                throw new AttuneException(file, $"line {entry.Start.Line}: aggregation", $"\"{agg}\" is not mean (the harness's only group aggregation)");
            bool weighted = !(TaskYaml.Get(m, "weight_by_size") is YamlScalarNode { Value: "false" or "False" }); // the harness weights by default
            list.Add(new GroupMetric(metric, weighted, Names(TaskYaml.Get(m, "filter_list")).ToList()));
        }
        return list;
    }

    /// <summary>
    /// The tasks a name stands for: a task, every task of a tag, or every task of a group (nested groups and tags
    /// flattened, each task once, in order); groups met on the way are added to <paramref name="groups"/>.
    /// </summary>
    public List<TaskConfig> Resolve(string name, List<TaskGroup>? groups = null) => Resolve(name, groups ?? [], [], []);

    List<TaskConfig> Resolve(string name, List<TaskGroup> groups, HashSet<string> seen, List<string> path)
    {
        if (path.Contains(name)) throw new AttuneException(null, "--tasks", $"group {name} contains itself ({string.Join(" → ", path)} → {name})");
        if (_tasks.TryGetValue(name, out var t))
            return seen.Add(name) ? [TaskConfig.Parse(t.Map, t.Path, _data)] : [];
        if (_groups.TryGetValue(name, out var g))
        {
            if (!groups.Any(x => x.Name == g.Name)) groups.Add(g with { Leaves = Leaves(name, []).Distinct().ToList() });
            return g.Members.SelectMany(m => Resolve(m, groups, seen, [.. path, name])).ToList();
        }
        if (_tags.TryGetValue(name, out var tagged))
            return tagged.SelectMany(m => Resolve(m, groups, seen, [.. path, name])).ToList();
        var known = _tasks.Keys.Concat(_groups.Keys).Concat(_tags.Keys).ToList();
        var near = known.Select(k => (Name: k, Distance: EditDistance(k.ToLowerInvariant(), name.ToLowerInvariant())))
            .Where(k => k.Distance <= Math.Max(2, name.Length / 4) || k.Name.Contains(name, StringComparison.OrdinalIgnoreCase))
            .OrderBy(k => k.Distance).ThenBy(k => k.Name, StringComparer.Ordinal).Take(5).Select(k => k.Name).ToList();
        throw new AttuneException(null, "--tasks", $"no task, group or tag named \"{name}\" in the --include-path folders ({known.Count} known"
            + (near.Count > 0 ? $"; did you mean {string.Join(", ", near)}?" : "")
            + (_skipped.Count > 0 ? $"; {_skipped.Count} file(s) skipped, first: {_skipped[0]}" : "") + ")");
    }

    /// <summary>The task names under a name: itself, or every task of its group or tag, expanded.</summary>
    IEnumerable<string> Leaves(string name, List<string> path)
    {
        if (path.Contains(name)) return [];
        if (_tasks.ContainsKey(name)) return [name];
        if (_groups.TryGetValue(name, out var g)) return g.Members.SelectMany(m => Leaves(m, [.. path, name]));
        return _tags.TryGetValue(name, out var tagged) ? tagged.SelectMany(m => Leaves(m, [.. path, name])) : [];
    }

    /// <summary>Levenshtein distance, for suggesting the names a typo was probably meant to be.</summary>
    static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }
}
