using System.Text.Json.Nodes;

namespace Attune.Evaluation;

/// <summary>The project's built-in word lists and phrasings (data/tasks, data/if), embedded in the library.</summary>
internal static class BuiltinData
{
    /// <summary>An embedded data file by its folder and name: <c>Load("tasks", "fr")</c> is data/tasks/fr.json.</summary>
    public static JsonObject Load(string folder, string name)
    {
        using var stream = typeof(BuiltinData).Assembly.GetManifestResourceStream($"Attune.{folder}.{name}.json")
            ?? throw new InvalidOperationException($"the built-in data {folder}/{name}.json is missing from the build");
        return JsonNode.Parse(stream)!.AsObject();
    }

    /// <summary>A JSON list of texts.</summary>
    public static List<string> Strings(JsonNode? node) => node!.AsArray().Select(x => x!.GetValue<string>()).ToList();

    /// <summary>A template with its {name} placeholders replaced.</summary>
    public static string Fill(string template, params (string Key, string Value)[] values)
    {
        foreach (var (k, v) in values) template = template.Replace("{" + k + "}", v);
        return template;
    }
}
