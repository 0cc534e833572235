using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attune.Evaluation.Tasks;
using YamlDotNet.RepresentationModel;

namespace Attune.Bench;

/// <summary>
/// How many of a harness checkout's English, French and Spanish task files Attune reads, and why it refuses the rest:
/// every task of the named folders (of a multilingual folder, given as FOLDER:lang, the en/fr/es ones) is parsed as <c>attune eval icl</c>
/// parses it, with a one-line stand-in split file per data set so that only the task's own features decide. This
/// checks the configuration (fields, hooks, output types, metrics, filters), not the data: running on real rows is
/// what the peer-folder tests do. The checkout is read where it is (nothing of it is copied).
/// </summary>
static class HarnessCoverage
{
    static readonly Regex OurLanguages = new(@"(^|_)(en|fr|es|eng_Latn|fra_Latn|spa_Latn|english|french|spanish)($|_)", RegexOptions.IgnoreCase);

    public static void Run(string tasksDir, IReadOnlyList<string> folders)
    {
        var stubs = Directory.CreateTempSubdirectory("attune-coverage-").FullName;
        var data = new DataSources { DataDirs = [stubs], Cache = new Attune.Models.HubCache(Path.Combine(stubs, "no-cache")) };
        var tasks = new List<(string Folder, string Name, string File, YamlMappingNode Map)>();
        foreach (var entry in folders)
        {
            // FOLDER takes every task; FOLDER:lang only those named for English, French or Spanish (a multilingual folder).
            bool multilingual = entry.EndsWith(":lang", StringComparison.Ordinal);
            var folder = multilingual ? entry[..^":lang".Length] : entry;
            var dir = Path.Combine(tasksDir, folder);
            foreach (var file in Directory.EnumerateFiles(dir, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                List<YamlMappingNode> maps;
                try { maps = TaskYaml.Load(file); }
                catch (AttuneException) { continue; }
                foreach (var map in maps)
                {
                    if (TaskYaml.Get(map, "task") is not YamlScalarNode { Value: { } name } || TaskIndex.IsGroup(map)) continue;
                    if (multilingual && !OurLanguages.IsMatch(name)) continue;
                    tasks.Add((folder, name, file, map));
                    Stub(map, stubs);
                }
            }
        }
        var refusals = new List<(string Folder, string Name, string Why)>();
        foreach (var (folder, name, file, map) in tasks)
        {
            try { TaskConfig.Parse(map, file, data); }
            catch (AttuneException e) { refusals.Add((folder, name, Reason(e.Message))); }
            catch (Exception e) { refusals.Add((folder, name, "CRASH " + e.GetType().Name + ": " + e.Message.Split('\n')[0])); }
        }
        Console.WriteLine($"| folder | tasks | read | refused |");
        Console.WriteLine($"|---|---:|---:|---:|");
        foreach (var group in tasks.GroupBy(t => t.Folder))
        {
            int refused = refusals.Count(r => r.Folder == group.Key);
            Console.WriteLine($"| {group.Key} | {group.Count()} | {group.Count() - refused} | {refused} |");
        }
        Console.WriteLine($"| all | {tasks.Count} | {tasks.Count - refusals.Count} ({100.0 * (tasks.Count - refusals.Count) / Math.Max(1, tasks.Count):F1}%) | {refusals.Count} |");
        Console.WriteLine();
        Console.WriteLine("Refusals by reason (count, an example task):");
        foreach (var reason in refusals.GroupBy(r => r.Why).OrderByDescending(g => g.Count()))
            Console.WriteLine($"- {reason.Count()} × {reason.Key} (e.g. {reason.First().Name})");
        Directory.Delete(stubs, recursive: true);
    }

    /// <summary>A refusal without the file path and line: the feature it names.</summary>
    static string Reason(string message)
    {
        var text = message.Split('\n')[0];
        text = Regex.Replace(text, @"^\S+\.ya?ml: (line \d+: )?", "");
        text = Regex.Replace(text, @"line \d+: ", "");
        text = Regex.Replace(text, @"\(known: [^)]*\)", "");
        return text.Length > 160 ? text[..160] + "…" : text;
    }

    /// <summary>A one-document file for each split a task names, where the data set would be downloaded.</summary>
    static void Stub(YamlMappingNode map, string root)
    {
        if (TaskYaml.Get(map, "dataset_path") is not YamlScalarNode { Value: { } path } || path is "json" or "csv" or "parquet") return;
        var config = (TaskYaml.Get(map, "dataset_name") as YamlScalarNode)?.Value;
        var folder = Path.Combine(root, path, config ?? "");
        Directory.CreateDirectory(folder);
        foreach (var key in new[] { "test_split", "validation_split", "training_split", "fewshot_split" })
            if (TaskYaml.Get(map, key) is YamlScalarNode { Value: { } split })
                File.WriteAllText(Path.Combine(folder, split + ".jsonl"), new JsonObject { ["stub"] = "" }.ToJsonString() + "\n");
    }
}
