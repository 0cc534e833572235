using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Attune.Formats;

/// <summary>
/// A whole file as one pointer: memory-mapped (pages come in when first touched and stay the page cache's), or read into
/// memory this object owns. A model's weights are read into memory for inference when they fit comfortably: a decode step
/// streams every weight once, and from the process's own memory it ran ~28% faster than from the mapped file on this
/// project's machines (bench/RESULTS.md, issue 23). Everything else — conversion, merges in bounded memory, inspection —
/// maps.
/// </summary>
public sealed unsafe class FileBytes : IDisposable
{
    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    bool _disposed;

    public byte* Pointer { get; }
    public long Length { get; }

    FileBytes(byte* pointer, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view)
    {
        Pointer = pointer;
        Length = length;
        _map = map;
        _view = view;
    }

    /// <summary>Maps <paramref name="path"/>, or reads it whole with <paramref name="inMemory"/>; I/O failures are one line naming the file.</summary>
    public static FileBytes Open(string path, long length, bool inMemory)
    {
        try { return inMemory ? Read(path, length) : Map(path, length); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AttuneException(path, $"cannot {(inMemory ? "read" : "map")} file: {e.Message}");
        }
    }

    static FileBytes Map(string path, long length)
    {
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* b = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref b);
            return new FileBytes(b + view.PointerOffset, length, map, view);
        }
        catch
        {
            if (b != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            throw;
        }
    }

    static FileBytes Read(string path, long length)
    {
        var memory = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 4096);
        try
        {
            using var handle = File.OpenHandle(path);
            for (long done = 0; done < length;)
            {
                int n = RandomAccess.Read(handle, new Span<byte>(memory + done, (int)Math.Min(1 << 30, length - done)), done);
                if (n <= 0) throw new IOException($"the file ended after {done} of {length} bytes");
                done += n;
            }
            return new FileBytes(memory, length, null, null);
        }
        catch
        {
            NativeMemory.AlignedFree(memory);
            throw;
        }
    }

    /// <summary>
    /// Whether <paramref name="bytes"/> of weights are read into memory for inference: when under half of what Linux says
    /// is available (MemAvailable), unless the environment sets ATTUNE_MMAP=1.
    /// </summary>
    public static bool WeightsFitInMemory(long bytes)
    {
        if (Environment.GetEnvironmentVariable("ATTUNE_MMAP") == "1") return false;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            if (line is null) return false;
            long availableKb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            return bytes < availableKb * 1024 / 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return false; }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is null) NativeMemory.AlignedFree(Pointer);
        else
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map!.Dispose();
        }
    }
}
