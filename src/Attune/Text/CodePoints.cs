namespace Attune.Text;

/// <summary>Lengths in Unicode code points, the unit of OpenAI's <c>text_offset</c> (not UTF-16 units, not bytes).</summary>
public static class CodePoints
{
    public static int Count(string s)
    {
        int n = 0;
        foreach (var _ in s.EnumerateRunes()) n++;
        return n;
    }
}
