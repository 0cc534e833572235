using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Attune.Formats;
using Attune.Models;
using Parquet.Serialization;
using YamlDotNet.RepresentationModel;
using Microsoft.Extensions.FileSystemGlobbing;

namespace Attune.Evaluation.Tasks;

/// <summary>Where tasks look for Hub data sets: <c>--data-dir</c> folders, then the local Hugging Face cache.</summary>
public sealed record DataSources
{
    /// <summary>Folders holding data sets as <c>huggingface-cli download --repo-type dataset ID --local-dir DIR/ID</c> lays them out.</summary>
    public IReadOnlyList<string> DataDirs { get; init; } = [];
    /// <summary>The Hugging Face cache searched after the folders (<c>datasets--ORG--NAME/snapshots/…</c>); null: the default one.</summary>
    public HubCache? Cache { get; init; }

    /// <summary>Attune's own data folder when no <c>--data-dir</c> is given: <c>$XDG_CACHE_HOME/attune/datasets</c>, else <c>~/.cache/attune/datasets</c>.</summary>
    public static string DefaultDataDir() => Path.Combine(CacheHome.Path, "attune", "datasets");

    public static readonly DataSources Default = new() { DataDirs = [DefaultDataDir()] };
}

/// <summary>
/// A task's documents: the files of each split of a Hub data set found on disk in the layouts the Hub and its tools
/// write (a config's folder or <c>data/</c>, files named by split such as <c>test-00000-of-00001.parquet</c>,
/// <c>validation.jsonl</c>, <c>train.json</c>, <c>test.csv</c>, or the Parquet conversion's
/// <c>&lt;config&gt;/&lt;split&gt;/0000.parquet</c>), read from Parquet (nested lists and structs as JSON arrays and
/// objects, as the harness's templates see them), JSON Lines, JSON or CSV.
/// </summary>
public static class TaskData
{
    static readonly string[] Extensions = [".parquet", ".jsonl", ".json", ".csv"];

    /// <summary>
    /// The files of <paramref name="split"/> of data set <paramref name="datasetPath"/> (config <paramref name="datasetName"/>);
    /// one line naming every place looked at when none holds it.
    /// </summary>
    public static IReadOnlyList<string> FindSplit(string datasetPath, string? datasetName, string split, DataSources sources, string taskFile)
    {
        var roots = sources.DataDirs.Select(d => Path.Combine(d, datasetPath)).ToList();
        if (HubCache.IsRepoId(datasetPath) || Regex.IsMatch(datasetPath, "^[A-Za-z0-9][A-Za-z0-9_.-]*$"))
            if ((sources.Cache ?? HubCache.Default()).DatasetSnapshot(datasetPath) is { } snapshot) roots.Add(snapshot);
        var looked = new List<string>();
        foreach (var root in roots)
        {
            // A data set card that declares its configs' files (README.md's `configs:`) is read first, as `datasets` reads it.
            if (DeclaredFiles(root, datasetName, split, taskFile) is { Count: > 0 } declared) return declared;
            foreach (var folder in Folders(root, datasetName))
            {
                looked.Add(folder);
                if (!Directory.Exists(folder)) continue;
                var files = SplitFiles(folder, split);
                if (files.Count > 0) return files;
            }
        }
        throw new AttuneException(taskFile, "dataset_path",
            $"no \"{split}\" split of {datasetPath}{(datasetName is null ? "" : $" ({datasetName})")} on disk; looked in {string.Join(", ", looked.Distinct())}"
            + $" (fetch it with: huggingface-cli download --repo-type dataset {datasetPath} --local-dir {Path.Combine(sources.DataDirs.FirstOrDefault() ?? DataSources.DefaultDataDir(), datasetPath)})");
    }

    /// <summary>
    /// The files a data set card (README.md's YAML header) declares for a config's split: <c>configs:</c> entries with
    /// <c>config_name</c> (the unnamed config is the one marked <c>default: true</c>, named "default", or the only one)
    /// and <c>data_files</c> as a path or glob, a list of them, or a list of <c>{split, path}</c>; paths relative to the
    /// data set's folder. Empty when the card declares nothing for it.
    /// </summary>
    static List<string> DeclaredFiles(string root, string? config, string split, string taskFile)
    {
        var readme = Path.Combine(root, "README.md");
        if (!File.Exists(readme)) return [];
        var text = File.ReadAllText(readme);
        var header = Regex.Match(text, @"\A---\r?\n(.*?)\r?\n---", RegexOptions.Singleline);
        if (!header.Success) return [];
        YamlStream yaml = new();
        try { yaml.Load(new StringReader(header.Groups[1].Value)); }
        catch (YamlDotNet.Core.YamlException) { return []; } // a card the Hub would not parse either: fall back to the layouts
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode card
            || TaskYaml.Get(card, "configs") is not YamlSequenceNode configs) return [];
        var entries = configs.Children.OfType<YamlMappingNode>().ToList();
        string? NameOf(YamlMappingNode c) => (TaskYaml.Get(c, "config_name") as YamlScalarNode)?.Value;
        var chosen = config is not null ? entries.FirstOrDefault(c => NameOf(c) == config)
            : entries.FirstOrDefault(c => TaskYaml.Get(c, "default") is YamlScalarNode { Value: "true" or "True" })
              ?? entries.FirstOrDefault(c => NameOf(c) == "default") ?? (entries.Count == 1 ? entries[0] : null);
        if (chosen is null || TaskYaml.Get(chosen, "data_files") is not { } dataFiles) return [];
        IEnumerable<string> Paths(YamlNode node) => node switch
        {
            YamlScalarNode s when s.Value is not null => [s.Value],
            YamlSequenceNode list => list.Children.SelectMany(Paths),
            _ => [],
        };
        List<string> patterns;
        if (dataFiles is YamlSequenceNode items && items.Children.All(i => i is YamlMappingNode))
            patterns = items.Children.Cast<YamlMappingNode>()
                .Where(i => (TaskYaml.Get(i, "split") as YamlScalarNode)?.Value == split)
                .SelectMany(i => TaskYaml.Get(i, "path") is { } p ? Paths(p) : []).ToList();
        else if (split == "train") patterns = Paths(dataFiles).ToList(); // files without splits are the train split, as in `datasets`
        else return [];
        var files = new List<string>();
        foreach (var pattern in patterns)
        {
            var matcher = new Matcher(StringComparison.Ordinal);
            matcher.AddInclude(pattern);
            var found = matcher.GetResultsInFullPath(root).Order(StringComparer.Ordinal).ToList();
            if (found.Count == 0)
                throw new AttuneException(readme, $"configs: {config ?? "default"}", $"the {split} split's files \"{pattern}\" are not on disk (the download is incomplete)");
            files.AddRange(found);
        }
        return files;
    }

    /// <summary>The folders a config's files may be in, most specific first.</summary>
    static IEnumerable<string> Folders(string root, string? config)
    {
        if (config is not null)
        {
            yield return Path.Combine(root, config);
            yield return Path.Combine(root, "data", config);
            yield return Path.Combine(root, config, "data");
        }
        yield return root;
        yield return Path.Combine(root, "data");
        if (config is null) yield return Path.Combine(root, "default");
    }

    /// <summary>Files of a split in a folder: named by the split (shards in order), or inside a folder named by it (the Parquet conversion).</summary>
    static List<string> SplitFiles(string folder, string split)
    {
        var named = new Regex("^" + Regex.Escape(split) + @"([-_.][^/\\]*)?\.(parquet|jsonl|json|csv)$", RegexOptions.IgnoreCase);
        var files = Directory.EnumerateFiles(folder).Where(f => named.IsMatch(Path.GetFileName(f))).Order(StringComparer.Ordinal).ToList();
        if (files.Count > 0) return OneFormat(files);
        var sub = Path.Combine(folder, split);
        if (Directory.Exists(sub))
            files = Directory.EnumerateFiles(sub).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
        return OneFormat(files);
    }

    /// <summary>A split offered in several formats (test.parquet and test.jsonl) is read from one: Parquet first, as the Hub serves it.</summary>
    static List<string> OneFormat(List<string> files)
    {
        foreach (var ext in Extensions)
            if (files.Where(f => Path.GetExtension(f).Equals(ext, StringComparison.OrdinalIgnoreCase)).ToList() is { Count: > 0 } same) return same;
        return files;
    }

    /// <summary>The documents of several files of one split, in order.</summary>
    public static List<JsonObject> LoadDocs(IReadOnlyList<string> files) => files.SelectMany(LoadDocs).ToList();

    /// <summary>Documents from Parquet, JSON Lines, a JSON array (or JSON Lines in a .json file, as the Hub allows), or CSV with a header row.</summary>
    public static List<JsonObject> LoadDocs(string path)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".parquet") return ReadParquet(path);
        if (ext == ".csv") return ReadCsv(path);
        if (ext == ".json")
        {
            var text = Utf8Input.ReadAllText(path);
            if (!text.TrimStart().StartsWith('[')) return JsonLines.ReadFile(path).Select(r => r.Record).ToList();
            JsonNode? root;
            try { root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }); }
            catch (JsonException e) { throw new AttuneException(path, $"not valid JSON: {e.Message}"); }
            return root is JsonArray a && a.All(x => x is JsonObject) ? a.Select(x => x!.AsObject()).ToList()
                : throw new AttuneException(path, "expected a JSON array of objects");
        }
        return JsonLines.ReadFile(path).Select(r => r.Record).ToList();
    }

    /// <summary>Every row of a CSV file with a header row, each field as text.</summary>
    internal static List<JsonObject> ReadCsv(string path)
    {
        var docs = new List<JsonObject>();
        try
        {
            using var csv = CsvHelper.CsvReader.FromFile(path, new CsvHelper.CsvReaderOptions { HasHeader = true, AllowLineBreaksInQuotes = true, TrackLineNumbers = true });
            var header = csv.Headers.ToArray();
            if (header.Length == 0) throw new AttuneException(path, "no header row");
            while (csv.Read())
            {
                var doc = new JsonObject();
                for (int i = 0; i < header.Length; i++) doc[header[i]] = i < csv.FieldCount ? csv.GetString(i) : "";
                docs.Add(doc);
            }
        }
        catch (CsvHelper.CsvFormatException e) { throw new AttuneException(path, e.Message.Split('\n')[0]); }
        return docs;
    }

    /// <summary>Every row of a Parquet file through Parquet.Net's untyped reader, each value as JSON.</summary>
    static List<JsonObject> ReadParquet(string path)
    {
        CheckParquetFrame(path);
        try
        {
            // Parquet.Net 6.1 can loop forever on some damaged files (found by the mutation bench) and does not
            // listen to cancellation there: the read runs on a thread of its own (from memory, so that it never waits
            // for the thread pool, which a busy process may have starved), and a read far slower than any healthy one
            // (10 s + 1 s per MB) is reported as the damaged file it is; the stuck thread ends with the process.
            var bytes = File.ReadAllBytes(path);
            var limit = TimeSpan.FromSeconds(10 + bytes.Length / 1e6);
            IList<Dictionary<string, object>>? rows = null;
            Exception? failure = null;
            var reader = new Thread(() =>
            {
                try
                {
                    using var stream = new MemoryStream(bytes, writable: false);
                    rows = ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult().Data;
                }
                catch (Exception e) { failure = e; }
            }) { IsBackground = true, Name = "parquet reader" };
            reader.Start();
            if (!reader.Join(limit)) throw new AttuneException(path, $"Parquet reader still running after {limit.TotalSeconds:F0} s: the file is damaged (or far larger than a task's data)");
            if (failure is not null) throw new AggregateException(failure);
            return rows!.Select(row => new JsonObject(row.Select(kv => KeyValuePair.Create(kv.Key, ToJson(kv.Value))))).ToList();
        }
        catch (AttuneException) { throw; }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1 && e.InnerException is not AttuneException)
        {
            throw new AttuneException(path, $"not a Parquet file Attune can read ({e.InnerException!.GetType().Name}: {e.InnerException.Message})");
        }
        // Parquet.Net reports a damaged file with many exception types (its Thrift reader's own among them, and an
        // OutOfMemoryException for an array size read from a corrupt header): every one is this file's problem.
        catch (Exception e) when (e is not (StackOverflowException or ThreadAbortException or OperationCanceledException))
        {
            throw new AttuneException(path, $"not a Parquet file Attune can read ({e.GetType().Name}: {e.Message})");
        }
    }

    /// <summary>The frame every Parquet file has: PAR1 at both ends and a footer length that fits in the file.</summary>
    static void CheckParquetFrame(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4], tail = stackalloc byte[8];
        if (f.Length < 12 || f.Read(head) != 4) throw new AttuneException(path, $"not a Parquet file ({f.Length} bytes)");
        f.Seek(-8, SeekOrigin.End);
        f.ReadExactly(tail);
        long footer = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(tail);
        if (!head.SequenceEqual("PAR1"u8) || !tail[4..].SequenceEqual("PAR1"u8)) throw new AttuneException(path, "not a Parquet file (no PAR1 at its start and end)");
        if (footer == 0 || footer > f.Length - 12) throw new AttuneException(path, $"Parquet footer length {footer} does not fit in the {f.Length}-byte file");
    }

    /// <summary>A Parquet value as JSON: strings, numbers, booleans, times (ISO 8601), bytes (base64), lists, structs and maps.</summary>
    static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => s,
        ReadOnlyMemory<char> m => m.ToString(),
        bool b => b,
        byte or sbyte or short or ushort or int or uint or long => JsonValue.Create(Convert.ToInt64(value)),
        ulong u => JsonValue.Create(u),
        float or double or decimal or Half => JsonValue.Create(Convert.ToDouble(value)),
        DateTime t => t.ToString("O"),
        DateTimeOffset t => t.ToString("O"),
        TimeSpan t => t.ToString(),
        byte[] bytes => Convert.ToBase64String(bytes),
        ReadOnlyMemory<byte> bytes => Convert.ToBase64String(bytes.Span),
        IDictionary<string, object?> d => new JsonObject(d.Select(kv => KeyValuePair.Create(kv.Key, ToJson(kv.Value)))),
        IDictionary d => new JsonObject(d.Cast<DictionaryEntry>().Select(e => KeyValuePair.Create(e.Key.ToString() ?? "", ToJson(e.Value)))),
        IEnumerable items => new JsonArray(items.Cast<object?>().Select(ToJson).ToArray()),
        _ => value.ToString(),
    };
}
