using System.Buffers;
using System.Text;

namespace Attune;

/// <summary>
/// A user's text file read as strict UTF-8. .NET's readers put U+FFFD in place of a byte sequence that is not
/// UTF-8 (<c>File.ReadAllText</c>, <c>StreamReader</c>) or fail late with an InvalidOperationException
/// (System.Text.Json transcodes strings lazily); here such a sequence is an <see cref="AttuneException"/> naming
/// the file, the line and the byte offset. A leading byte-order mark is skipped, as the readers skip it.
/// </summary>
public static class Utf8Input
{
    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The bytes of a file, checked to be UTF-8 (without a leading byte-order mark).</summary>
    public static byte[] ReadAllBytes(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new AttuneException(path, $"cannot read: {e.Message}"); }
        int bom = HasBom(bytes) ? 3 : 0;
        Check(bytes.AsSpan(bom), path, bom);
        return bom == 0 ? bytes : bytes[bom..];
    }

    /// <summary>The text of a file, which must be UTF-8.</summary>
    public static string ReadAllText(string path) => Strict.GetString(ReadAllBytes(path));

    /// <summary>
    /// Throws unless <paramref name="bytes"/> are UTF-8. <paramref name="offset"/> is where they start in
    /// <paramref name="source"/> (so the message gives the byte's place in the file); <paramref name="location"/>
    /// names the field they hold, when it is not the whole file (then lines are not counted).
    /// </summary>
    public static void Check(ReadOnlySpan<byte> bytes, string source, long offset = 0, string? location = null)
    {
        int bad = FindInvalid(bytes);
        if (bad < 0) return;
        if (location is not null)
            throw new AttuneException(source, location, $"not valid UTF-8 (byte {offset + bad})");
        int line = bytes[..bad].Count((byte)'\n') + 1;
        throw new AttuneException(source, $"line {line}", $"not valid UTF-8 (byte {offset + bad})");
    }

    /// <summary>Decodes <paramref name="bytes"/>, which must be UTF-8 (see <see cref="Check"/>).</summary>
    public static string Decode(ReadOnlySpan<byte> bytes, string source, long offset, string location)
    {
        Check(bytes, source, offset, location);
        return Strict.GetString(bytes);
    }

    /// <summary>The lines of a file (without their <c>\n</c> or <c>\r\n</c>), each checked to be UTF-8 as it is read.</summary>
    public static IEnumerable<string> ReadLines(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var line = new ArrayBufferWriter<byte>();
        var chunk = new byte[1 << 16];
        long position = 0, lineStart = 0;
        int number = 0, read;
        while ((read = stream.Read(chunk)) > 0)
        {
            int from = 0;
            if (position == 0 && HasBom(chunk.AsSpan(0, read))) from = 3;
            position += from;
            lineStart += from;
            int nl;
            while ((nl = Array.IndexOf(chunk, (byte)'\n', from, read - from)) >= 0)
            {
                line.Write(chunk.AsSpan(from, nl - from));
                yield return Line(line, path, ++number, lineStart);
                position += nl + 1 - from;
                lineStart = position;
                from = nl + 1;
                line.ResetWrittenCount();
            }
            line.Write(chunk.AsSpan(from, read - from));
            position += read - from;
        }
        if (line.WrittenCount > 0) yield return Line(line, path, ++number, lineStart);
    }

    static string Line(ArrayBufferWriter<byte> line, string path, int number, long start)
    {
        var bytes = line.WrittenSpan;
        if (bytes.Length > 0 && bytes[^1] == '\r') bytes = bytes[..^1];
        return Decode(bytes, path, start, $"line {number}");
    }

    static bool HasBom(ReadOnlySpan<byte> b) => b.Length >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF;

    /// <summary>The offset of the first byte that does not start a valid UTF-8 sequence; -1 when all are valid.</summary>
    public static int FindInvalid(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return -1;
        int i = 0;
        while (i < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out _, out int used) != OperationStatus.Done) return i;
            i += used;
        }
        return bytes.Length;
    }
}
