namespace Attune.Formats;

/// <summary>
/// A file being written under a temporary name in its target folder; <see cref="Commit"/> flushes it
/// and renames it into place, disposing without committing deletes it. Writers of whole files
/// (safetensors, GGUF) stream through one of these, so a killed process never leaves a file that
/// looks complete.
/// </summary>
public sealed class AtomicFileStream : IDisposable
{
    readonly string _path;
    readonly string _temp;
    bool _committed;

    public FileStream Stream { get; }

    public AtomicFileStream(string path)
    {
        _path = path;
        _temp = AtomicFile.TempPathFor(path);
        Stream = new FileStream(_temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
    }

    public void Commit()
    {
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        AtomicFile.Commit(_temp, _path);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        Stream.Dispose();
        AtomicFile.TryDelete(_temp);
    }
}

/// <summary>A checkpoint folder built under a temporary sibling name and renamed into place when complete.</summary>
public static class AtomicDirectory
{
    /// <summary>Refuses an existing non-empty folder, runs <paramref name="fill"/> on a temporary one, then renames it.</summary>
    public static void Write(string outDir, Action<string> fill)
    {
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new AttuneException(outDir, "already exists and is not empty");
        var full = Path.GetFullPath(outDir);
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            fill(temp);
            if (Directory.Exists(outDir)) Directory.Delete(outDir);
            Directory.Move(temp, outDir);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
            throw;
        }
    }
}
