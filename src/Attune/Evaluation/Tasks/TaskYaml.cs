using YamlDotNet.Core;
using Attune.Formats;
using YamlDotNet.RepresentationModel;

namespace Attune.Evaluation.Tasks;

/// <summary>
/// A task file read as lm-evaluation-harness reads it: the YAML mapping with its <c>include:</c> chain merged
/// (each included file first, in order, paths relative to the including file; the including file's own keys
/// win), and YAML nulls meaning "not set" — a null drops the key, also one an included file set.
/// <c>!function</c> values are kept as they are, tagged, for the hook registry to read.
/// </summary>
public static class TaskYaml
{
    /// <summary>Longest include chain (a file that includes itself, directly or not, is an error before this).</summary>
    const int MaxIncludeDepth = 16;

    /// <summary>The documents of a file: each a mapping (a task or group) with its includes merged; a top-level list holds several tasks.</summary>
    public static List<YamlMappingNode> Load(string path)
    {
        var root = Read(path);
        var docs = new List<YamlMappingNode>();
        switch (root)
        {
            case YamlMappingNode map: docs.Add(Merge(map, path, [Path.GetFullPath(path)])); break;
            case YamlSequenceNode seq:
                foreach (var item in seq.Children)
                    docs.Add(item is YamlMappingNode m ? Merge(m, path, [Path.GetFullPath(path)])
                        : throw new AttuneException(path, $"line {item.Start.Line}", "each task must be a mapping"));
                break;
            default: throw new AttuneException(path, "expected a task (a mapping) or a list of tasks");
        }
        return docs;
    }

    /// <summary>True for a value YAML reads as null: <c>null</c>, <c>~</c>, or nothing, unquoted and untagged.</summary>
    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s && s.Tag.IsEmpty
        && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    public static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) && !IsNull(v) ? v : null;

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<YamlNode, string> HookFiles = [];

    /// <summary>True for a <c>!function module.name</c> value (a Python hook).</summary>
    public static bool IsHook(YamlNode node) => !node.Tag.IsEmpty && node.Tag.IsLocal && node.Tag.Value == "!function";

    /// <summary>The file that wrote a <c>!function</c> value (the harness imports its module from that file's folder).</summary>
    public static string? HookFile(YamlNode node) => HookFiles.TryGetValue(node, out var file) ? file : null;

    /// <summary>Deepest nesting of a value; an alias inside its own anchor would otherwise nest forever.</summary>
    const int MaxNesting = 64;

    static void RecordHooks(YamlNode node, string path, int depth, HashSet<YamlNode>? seen = null)
    {
        seen ??= new HashSet<YamlNode>(ReferenceEqualityComparer.Instance);
        if (!seen.Add(node)) return; // an alias: its anchor's nodes are walked once
        if (depth > MaxNesting)
            throw new AttuneException(path, $"line {node.Start.Line}", $"value nested more than {MaxNesting} deep (or an alias inside its own anchor)");
        if (IsHook(node)) HookFiles.AddOrUpdate(node, path);
        IEnumerable<YamlNode> children = node switch
        {
            YamlMappingNode map => map.Children.Values,
            YamlSequenceNode seq => seq.Children,
            _ => [],
        };
        foreach (var child in children) RecordHooks(child, path, depth + 1, seen);
    }

    static YamlNode Read(string path)
    {
        var stream = YamlFile.Load(path);
        if (stream.Documents.Count == 0) throw new AttuneException(path, "the file is empty");
        var root = stream.Documents[0].RootNode;
        RecordHooks(root, Path.GetFullPath(path), 0);
        return root;
    }

    static YamlMappingNode Merge(YamlMappingNode map, string path, List<string> chain)
    {
        var merged = new YamlMappingNode();
        if (map.Children.TryGetValue(new YamlScalarNode("include"), out var include) && !IsNull(include))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            var files = include switch
            {
                YamlScalarNode one => [one],
                YamlSequenceNode many => many.Children.Select(c => c as YamlScalarNode
                    ?? throw new AttuneException(path, $"line {c.Start.Line}: include", "each entry is a file name")).ToList(),
                _ => throw new AttuneException(path, $"line {include.Start.Line}: include", "must be a file name or a list of them"),
            };
            foreach (var file in files)
            {
                var target = Path.GetFullPath(Path.Combine(dir, file.Value ?? ""));
                if (chain.Contains(target))
                    throw new AttuneException(path, $"line {file.Start.Line}: include", $"{file.Value} includes this file again ({string.Join(" → ", chain.Select(Path.GetFileName))} → {Path.GetFileName(target)})");
                if (chain.Count >= MaxIncludeDepth) throw new AttuneException(path, $"line {file.Start.Line}: include", $"includes nest more than {MaxIncludeDepth} deep");
                if (!File.Exists(target)) throw new AttuneException(path, $"line {file.Start.Line}: include", $"{target}: file not found");
                if (Read(target) is not YamlMappingNode included)
                    throw new AttuneException(target, "an included file must be a mapping of task fields");
                foreach (var (k, v) in Merge(included, target, [.. chain, target]).Children) merged.Children[k] = v;
            }
        }
        foreach (var (k, v) in map.Children)
        {
            if (k is YamlScalarNode { Value: "include" }) continue;
            if (IsNull(v)) merged.Children.Remove(k);
            else merged.Children[k] = v;
        }
        return merged;
    }
}
