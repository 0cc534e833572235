using System.Globalization;
using System.Text;

namespace Attune.Evaluation.Instructions;

/// <summary>
/// Words, sentences and paragraphs of a response in English, French or Spanish, as the verifiable
/// instructions count them, and a small language identifier for the three.
/// </summary>
public static class TextUnits
{
    /// <summary>
    /// Words: runs of letters, digits and combining marks, joined across an inner hyphen
    /// ("peut-être", "well-known" are one word) and a decimal point or comma between digits ("3.5", "3,5");
    /// an apostrophe ends a word, so French elisions
    /// ("l'homme", "qu'il") and English contractions count as two, as the harness's tokenizer splits them.
    /// </summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        var sb = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool part = char.IsLetterOrDigit(c) || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;
            bool innerHyphen = c == '-' && sb.Length > 0 && i + 1 < text.Length && char.IsLetterOrDigit(text[i + 1]);
            bool innerDecimal = c is '.' or ',' && sb.Length > 0 && char.IsDigit(sb[^1]) && i + 1 < text.Length && char.IsDigit(text[i + 1]);
            if (part || innerHyphen || innerDecimal) sb.Append(c);
            else if (sb.Length > 0) { words.Add(sb.ToString()); sb.Clear(); }
        }
        if (sb.Length > 0) words.Add(sb.ToString());
        return words;
    }

    static readonly Dictionary<string, HashSet<string>> Abbreviations = new()
    {
        ["en"] = ["mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "approx", "fig", "jr", "sr", "inc", "ltd", "a.m", "p.m"],
        ["fr"] = ["m", "mme", "mlle", "dr", "pr", "st", "ste", "etc", "p. ex", "ex", "env", "av", "apr", "n°", "cf", "chap", "p"],
        ["es"] = ["sr", "sra", "srta", "dr", "dra", "d", "dña", "ud", "uds", "etc", "p. ej", "ej", "p", "aprox", "núm", "pág", "av", "avda"],
    };

    /// <summary>
    /// Sentences: a sentence ends at . ! ? or … (with any closing quotes or brackets) followed by white space
    /// or the end of the text, whatever the case of what follows (IFEval splits lower-case text too); not
    /// after a known abbreviation of the language or a single capital initial. A blank line or a list item
    /// also ends one.
    /// </summary>
    public static List<string> Sentences(string text, string? language = null)
    {
        var abbreviations = Abbreviations.GetValueOrDefault(language ?? "en") ?? Abbreviations["en"];
        var sentences = new List<string>();
        foreach (var block in Blocks(text))
        {
            int start = 0;
            for (int i = 0; i < block.Length; i++)
            {
                char c = block[i];
                if (c is not ('.' or '!' or '?' or '…')) continue;
                int end = i + 1;
                while (end < block.Length && block[end] is '.' or '!' or '?' or '…' or '"' or '\'' or '»' or '”' or '’' or ')' or ']') end++;
                if (end < block.Length && !char.IsWhiteSpace(block[end])) continue; // "3.5", "e.g.x"
                int next = end;
                while (next < block.Length && char.IsWhiteSpace(block[next])) next++;
                if (c == '.' && next < block.Length && IsAbbreviation(block, start, i, abbreviations)) continue;
                Add(block[start..end]);
                start = next;
                i = next - 1;
            }
            if (start < block.Length) Add(block[start..]);
        }
        return sentences;

        void Add(string s)
        {
            s = s.Trim();
            if (s.Length > 0 && Words(s).Count > 0) sentences.Add(s);
        }
    }

    /// <summary>Whether the word before the period at <paramref name="dot"/> is an abbreviation or an initial.</summary>
    static bool IsAbbreviation(string text, int start, int dot, HashSet<string> abbreviations)
    {
        int w = dot;
        while (w > start && !char.IsWhiteSpace(text[w - 1])) w--;
        var word = text[w..dot].TrimStart('(', '"', '«', '“').ToLowerInvariant();
        var raw = text[w..dot].TrimStart('(', '"', '«', '“');
        if (raw.Length == 1 && char.IsUpper(raw[0])) return true; // "J. K. Rowling"
        if (abbreviations.Contains(word)) return true;
        // Two-word abbreviations: "p. ex.", "p. ej."
        int p = w - 1;
        while (p > start && char.IsWhiteSpace(text[p])) p--;
        int q = p;
        while (q > start && !char.IsWhiteSpace(text[q - 1])) q--;
        return p > start && abbreviations.Contains((text[q..(p + 1)] + " " + word).ToLowerInvariant());
    }

    /// <summary>Blank-line separated blocks, with each list item its own block.</summary>
    static IEnumerable<string> Blocks(string text)
    {
        var current = new StringBuilder();
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            var line = raw.Trim();
            bool item = line.StartsWith("* ") || line.StartsWith("- ") || line.StartsWith("• ") || (line.Length > 2 && char.IsDigit(line[0]) && line.IndexOf(". ", StringComparison.Ordinal) is > 0 and < 4);
            if (line.Length == 0 || item || line.StartsWith('#'))
            {
                if (current.Length > 0) { yield return current.ToString(); current.Clear(); }
                if (line.Length > 0) yield return line;
                continue;
            }
            if (current.Length > 0) current.Append(' ');
            current.Append(line);
        }
        if (current.Length > 0) yield return current.ToString();
    }

    /// <summary>Paragraphs as IFEval counts them: the parts between markdown dividers (***), empty parts not allowed.</summary>
    public static List<string> DividedParagraphs(string text) =>
        System.Text.RegularExpressions.Regex.Split(text, @"\s?\*\*\*\s?").Select(p => p.Trim()).ToList();

    static readonly Dictionary<string, string[]> Stopwords = new()
    {
        // Only words frequent in one of the three and rare in the other two (no "que", "le", "se", "son", "on").
        ["en"] = ["the", "and", "is", "of", "to", "that", "it", "you", "for", "with", "was", "are", "this", "be", "have", "not", "they", "but", "what", "can", "will", "your", "from", "or", "my", "we", "would", "there", "which", "their"],
        ["fr"] = ["les", "et", "est", "des", "une", "pour", "dans", "pas", "vous", "qui", "sur", "avec", "du", "au", "il", "elle", "sont", "mais", "ou", "nous", "je", "tu", "aux", "cette", "être", "très", "avez", "ces", "ils", "leur"],
        ["es"] = ["el", "los", "las", "y", "del", "una", "por", "para", "con", "como", "más", "pero", "su", "lo", "al", "está", "muy", "yo", "tú", "usted", "este", "esta", "hay", "también", "puede", "sus", "ser", "pues", "sí", "creo"],
    };

    static readonly Dictionary<string, HashSet<string>> StopwordSets = Stopwords.ToDictionary(kv => kv.Key, kv => kv.Value.ToHashSet());

    /// <summary>
    /// The language of a text among en, fr and es, by its most frequent function words (and the letters
    /// only one of them uses: ñ ¿ ¡ for Spanish, ç œ è ê ù for French); "unknown" when the text gives too
    /// little evidence (fewer than three function words) or none of the three fits.
    /// </summary>
    public static string Identify(string text)
    {
        var scores = new Dictionary<string, double> { ["en"] = 0, ["fr"] = 0, ["es"] = 0 };
        int hits = 0;
        foreach (var w in Words(text.ToLowerInvariant()))
            foreach (var (lang, set) in StopwordSets)
                if (set.Contains(w)) { scores[lang] += 1; hits++; }
        foreach (var c in text)
        {
            if (c is 'ñ' or '¿' or '¡') scores["es"] += 2;
            if (c is 'ç' or 'œ' or 'è' or 'ê' or 'ù' or 'â' or 'î' or 'ô' or 'û' or 'ë' or 'ï') scores["fr"] += 1;
        }
        if (hits < 3) return "unknown";
        var best = scores.MaxBy(kv => kv.Value);
        double second = scores.Where(kv => kv.Key != best.Key).Max(kv => kv.Value);
        return best.Value > second ? best.Key : "unknown";
    }
}
