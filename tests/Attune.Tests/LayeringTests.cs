using System.Text.RegularExpressions;

namespace Attune.Tests;

/// <summary>
/// The boxes of DESIGN.md import only the boxes upstream of them. Every source file of a box is read for
/// <c>using Attune.X</c> and for qualified names <c>Attune.X.</c>; a name outside the box's allowed set fails
/// with the file and the import.
/// </summary>
public class LayeringTests
{
    static readonly Dictionary<string, string[]> Upstream = new()
    {
        ["Tensors"] = [],
        ["Text"] = [],
        ["Models"] = [],
        ["Formats"] = ["Tensors"],
        ["Prompting"] = ["Text", "Tensors"],
        ["Checkpoints"] = ["Formats", "Text", "Tensors"],
        ["Modeling"] = ["Checkpoints", "Formats", "Text", "Tensors"],
        ["Merging"] = ["Modeling", "Models", "Checkpoints", "Formats", "Text", "Tensors"],
        ["Training"] = ["Modeling", "Prompting", "Checkpoints", "Formats", "Text", "Tensors"],
        ["Evaluation"] = ["Merging", "Modeling", "Models", "Prompting", "Checkpoints", "Formats", "Text", "Tensors"],
        ["Experiments"] = ["Evaluation", "Training", "Merging", "Modeling", "Models", "Prompting", "Checkpoints", "Formats", "Text", "Tensors"],
    };

    [Fact]
    public void No_box_imports_a_box_downstream_of_it()
    {
        var library = Path.Combine(Repo.Root, "src", "Attune");
        var boxes = Directory.GetDirectories(library).Select(Path.GetFileName).Where(d => d is not ("bin" or "obj")).ToList();
        Assert.Empty(boxes.Where(b => !Upstream.ContainsKey(b!))); // a new folder needs its place in the table above
        var problems = new List<string>();
        foreach (var box in boxes)
            foreach (var file in Directory.GetFiles(Path.Combine(library, box!), "*.cs", SearchOption.AllDirectories))
                foreach (Match m in Regex.Matches(File.ReadAllText(file), @"\bAttune\.([A-Z][A-Za-z]+)\b"))
                {
                    var other = m.Groups[1].Value;
                    if (other != box && Upstream.ContainsKey(other) && !Upstream[box!].Contains(other))
                        problems.Add($"{Path.GetRelativePath(Repo.Root, file)}: {box} imports {other}");
                }
        Assert.True(problems.Count == 0, string.Join("\n", problems.Distinct()));
    }
}
