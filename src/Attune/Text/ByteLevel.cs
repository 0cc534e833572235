namespace Attune.Text;

/// <summary>
/// GPT-2's reversible map between bytes and printable characters: the bytes that are already
/// printable (<c>!</c>..<c>~</c>, <c>¡</c>..<c>¬</c>, <c>®</c>..<c>ÿ</c>) stand for themselves, the other 68
/// take the code points from U+0100 up, in byte order (so a space is <c>Ġ</c> and a newline <c>Ċ</c>).
/// </summary>
public static class ByteLevel
{
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Inverse of <see cref="ByteToChar"/>: -1 for characters that no byte maps to.</summary>
    static readonly short[] CharToByteTable = BuildCharToByte();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    static short[] BuildCharToByte()
    {
        var t = new short[512];
        Array.Fill(t, (short)-1);
        for (int b = 0; b < 256; b++) t[ByteToChar[b]] = (short)b;
        return t;
    }

    /// <summary>The byte a character stands for, or -1.</summary>
    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;
}
