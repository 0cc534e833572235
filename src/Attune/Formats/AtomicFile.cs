namespace Attune.Formats;

/// <summary>
/// Outputs are written whole or not at all: data goes to a temporary name in the same folder,
/// which is renamed over the target only once it is complete and flushed.
/// </summary>
public static class AtomicFile
{
    /// <summary>A temporary sibling of <paramref name="path"/> that no reader mistakes for the real file.</summary>
    public static string TempPathFor(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>Flushes <paramref name="temp"/> to disk and renames it over <paramref name="path"/>.</summary>
    public static void Commit(string temp, string path) => File.Move(temp, path, overwrite: true);

    public static void WriteAllText(string path, string contents)
    {
        var temp = TempPathFor(path);
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            using (var w = new StreamWriter(fs, new System.Text.UTF8Encoding(false)))
            {
                w.Write(contents);
                w.Flush();
                fs.Flush(flushToDisk: true);
            }
            Commit(temp, path);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> contents)
    {
        var temp = TempPathFor(path);
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(contents);
                fs.Flush(flushToDisk: true);
            }
            Commit(temp, path);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    internal static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
