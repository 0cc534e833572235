using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Attune.Formats;

/// <summary>A user's YAML file (task files, merge recipes): read as strict UTF-8 and parsed, every failure one line naming the file.</summary>
public static class YamlFile
{
    public static YamlStream Load(string path)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        var stream = new YamlStream();
        try
        {
            using var reader = new StringReader(Utf8Input.ReadAllText(path));
            stream.Load(reader);
        }
        catch (YamlException e) { throw new AttuneException(path, $"line {e.Start.Line}", $"not valid YAML: {e.InnerException?.Message ?? e.Message}"); }
        // YamlDotNet's scanner fails on some broken plain scalars with an InvalidOperationException and no position.
        catch (InvalidOperationException e) { throw new AttuneException(path, $"not valid YAML: {e.Message}"); }
        return stream;
    }
}
