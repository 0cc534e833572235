using System.Globalization;
using System.Text;

namespace Attune.Evaluation.Instructions;

/// <summary>
/// Words, sentences and paragraphs of a response in English, French or Spanish, as the verifiable
/// instructions count them, and its language.
/// </summary>
public static partial class TextUnits
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

    /// <summary>
    /// IFEval's word count (nltk's RegexpTokenizer(r"\w+")): runs of letters, digits and underscores, so "peut-être" is
    /// two words and "l'homme" two. English and French use it; Spanish counts <see cref="SpacyWords"/>.
    /// </summary>
    public static int IfevalWordCount(string text) => PythonWord().Count(text);

    [System.Text.RegularExpressions.GeneratedRegex(@"[\p{L}\p{N}_]+")]
    private static partial System.Text.RegularExpressions.Regex PythonWord();

    /// <summary>
    /// Tokens as nltk's word_tokenize cuts them, as far as whether a token is in capitals can tell (IFEval's
    /// capital-word count in English and French): white space separates; commas and colons before a non-digit,
    /// ; @ # $ % &amp; ? ! brackets and double quotes stand alone; an English contraction ('s 'm 'd 'll 're 've n't)
    /// is its own token. Hyphens, slashes, apostrophes inside a word and asterisks do not cut.
    /// </summary>
    public static List<string> TreebankTokens(string text)
    {
        var tokens = new List<string>();
        foreach (var chunk in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var piece = new StringBuilder();
            for (int i = 0; i < chunk.Length; i++)
            {
                char c = chunk[i];
                bool alone = c is ';' or '@' or '#' or '$' or '%' or '&' or '?' or '!' or '(' or ')' or '[' or ']' or '{' or '}' or '<' or '>' or '"'
                    || (c is ',' or ':' && (i + 1 == chunk.Length || !char.IsDigit(chunk[i + 1])));
                if (!alone) { piece.Append(c); continue; }
                Flush();
                tokens.Add(c.ToString());
            }
            Flush();

            void Flush()
            {
                if (piece.Length == 0) return;
                var p = piece.ToString();
                piece.Clear();
                var m = Contraction().Match(p);
                if (m.Success && m.Index > 0) { tokens.Add(p[..m.Index]); tokens.Add(p[m.Index..]); }
                else tokens.Add(p);
            }
        }
        return tokens;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"('[sSmMdD]|'ll|'LL|'re|'RE|'ve|'VE|n't|N'T)$")]
    private static partial System.Text.RegularExpressions.Regex Contraction();

    /// <summary>
    /// Tokens as spaCy's Spanish tokenizer makes them, punctuation left out (M-IFEval's Spanish word units): white
    /// space separates, and a run of more than one space, or white space other than a space, is a token of its own
    /// (spaCy keeps it, and it is not punctuation); punctuation is cut off words, a hyphen between letters cuts, an
    /// apostrophe or a period between letters and a period or comma between digits do not; a symbol (an emoji, $, +)
    /// is a token.
    /// </summary>
    public static List<string> SpacyWords(string text)
    {
        var tokens = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            if (char.IsWhiteSpace(text[i]))
            {
                int j = i;
                while (j < text.Length && char.IsWhiteSpace(text[j])) j++;
                // One space belongs to the token before it; whatever white space is left is a token.
                int from = text[i] == ' ' ? i + 1 : i;
                if (from < j) tokens.Add(text[from..j]);
                i = j;
                continue;
            }
            int k = i;
            while (k < text.Length && !char.IsWhiteSpace(text[k])) k++;
            SplitSpacyChunk(text[i..k], tokens);
            i = k;
        }
        return tokens;
    }

    static void SplitSpacyChunk(string chunk, List<string> tokens)
    {
        var word = new StringBuilder();
        var runes = chunk.EnumerateRunes().ToArray();
        for (int i = 0; i < runes.Length; i++)
        {
            var r = runes[i];
            if (IsWordRune(r)) { word.Append(r.ToString()); continue; }
            bool between(Func<Rune, bool> before, Func<Rune, bool> after) =>
                word.Length > 0 && i + 1 < runes.Length && before(runes[i - 1]) && after(runes[i + 1]);
            var category = Rune.GetUnicodeCategory(r);
            bool joins = r.Value switch
            {
                '\'' or '’' => between(Rune.IsLetter, Rune.IsLetter),
                '.' => between(IsWordRune, IsWordRune),
                ',' => between(Rune.IsDigit, Rune.IsDigit),
                _ => false,
            };
            if (joins) { word.Append(r.ToString()); continue; }
            if (word.Length > 0) { tokens.Add(word.ToString()); word.Clear(); }
            if (!IsPunctuation(category)) tokens.Add(r.ToString()); // a symbol is a word to spaCy
        }
        if (word.Length > 0) tokens.Add(word.ToString());
    }

    static bool IsWordRune(Rune r) => Rune.IsLetterOrDigit(r) || r.Value == '_'
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    static bool IsPunctuation(UnicodeCategory c) => c is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
        or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
        or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    /// <summary>Python's str.isupper(): at least one cased letter, and none in lower or title case.</summary>
    public static bool PythonIsUpper(string s) => PythonCase(s, upper: true);

    /// <summary>Python's str.islower(): at least one cased letter, and none in upper or title case.</summary>
    public static bool PythonIsLower(string s) => PythonCase(s, upper: false);

    static bool PythonCase(string s, bool upper)
    {
        bool cased = false;
        foreach (var r in s.EnumerateRunes())
        {
            if ((upper ? Rune.IsLower(r) : Rune.IsUpper(r)) || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter) return false;
            if (upper ? Rune.IsUpper(r) : Rune.IsLower(r)) cased = true;
        }
        return cased;
    }

    /// <summary>
    /// Sentences as IFEval's references split them: English and French as nltk's Punkt does (see
    /// <see cref="PunktSentences"/>), Spanish as spaCy's es_core_news_sm does (see <see cref="SpanishSentences"/>).
    /// </summary>
    public static List<string> Sentences(string text, string? language = null) => language switch
    {
        "es" => SpanishSentences(text),
        "fr" => PunktSentences(text, Punkt.French),
        _ => PunktSentences(text, Punkt.English),
    };

    /// <summary>
    /// Punkt's decisions, with its learned parameters replaced by rules (Attune has no copy of nltk's trained
    /// english.pickle or french.pickle): a sentence ends after a word that ends with ? or !, or with a period unless
    /// the word is an abbreviation of the language (then only when a common capitalised word follows), an initial
    /// followed by a capitalised word, or a number followed by a lower-case word. White space alone, line breaks
    /// and blank lines included, never ends one: a title or a list item without a full stop runs into the next
    /// sentence, and a list marker "1." before a capitalised word is a sentence of its own, as in Punkt.
    /// </summary>
    public static List<string> PunktSentences(string text, Punkt rules)
    {
        var chunks = Chunks(text);
        var sentences = new List<string>();
        int start = -1;
        for (int c = 0; c < chunks.Count; c++)
        {
            if (start < 0) start = chunks[c].Start;
            if (c + 1 < chunks.Count && !rules.BreaksAfter(text[chunks[c].Start..chunks[c].End], text[chunks[c + 1].Start..chunks[c + 1].End])) continue;
            sentences.Add(text[start..chunks[c].End]);
            start = -1;
        }
        return sentences;
    }

    /// <summary>
    /// Sentences as spaCy's Spanish pipeline (es_core_news_sm) finds them. There its dependency parser decides; Attune
    /// has no copy of it and uses rules instead: a sentence ends after . ? or ! followed by white space, except after a
    /// Spanish abbreviation or an initial, and at a line break unless the line ends with an abbreviation.
    /// </summary>
    public static List<string> SpanishSentences(string text)
    {
        var sentences = new List<string>();
        foreach (var line in text.Split('\n'))
            if (line.Trim().Length > 0)
            {
                var part = PunktSentences(line, Punkt.Spanish);
                // spaCy keeps an abbreviation's period in its token ("etc."), so the line after it goes on the same sentence.
                if (sentences.Count > 0 && Punkt.Spanish.EndsWithAbbreviation(sentences[^1]))
                {
                    sentences[^1] += "\n" + part[0];
                    part.RemoveAt(0);
                }
                sentences.AddRange(part);
            }
        return sentences;
    }

    static List<(int Start, int End)> Chunks(string text)
    {
        var chunks = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
            int s = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i])) i++;
            if (i > s) chunks.Add((s, i));
        }
        return chunks;
    }

    /// <summary>Paragraphs as IFEval counts them: the parts between markdown dividers (***), empty parts not allowed.</summary>
    public static List<string> DividedParagraphs(string text) =>
        System.Text.RegularExpressions.Regex.Split(text, @"\s?\*\*\*\s?").Select(p => p.Trim()).ToList();

    /// <summary>
    /// The language of a response (a code as <see cref="LanguageId"/> gives it: "en", "fr", "es", "de", …), or
    /// "unknown" when the text gives too little evidence (fewer than three words with letters).
    /// </summary>
    public static string Identify(string text) =>
        Words(text).Count(w => w.Any(char.IsLetter)) < 3 ? "unknown" : LanguageId.Detect(text) ?? "unknown";
}
