using System.Text.RegularExpressions;

namespace Attune.Evaluation.Instructions;

/// <summary>
/// The sentence-boundary rules of nltk's Punkt tokenizer, which IFEval (English) and M-IFEval (French) count
/// sentences with, for one language. Punkt learns its abbreviations and which words start sentences from a corpus
/// (nltk's english.pickle and french.pickle); Attune writes them down instead: the abbreviations below (M-IFEval adds
/// its French ones to the learned list the same way) and the language's common words, which stand for the words
/// Punkt has seen both capitalised at a sentence start and in lower case inside sentences.
/// </summary>
public sealed partial class Punkt
{
    readonly HashSet<string> _abbreviations;
    readonly HashSet<string> _commonWords;

    Punkt(IEnumerable<string> abbreviations, IEnumerable<string> commonWords)
    {
        _abbreviations = new HashSet<string>(abbreviations, StringComparer.Ordinal);
        _commonWords = new HashSet<string>(commonWords, StringComparer.Ordinal);
    }

    public static readonly Punkt English = new(
        ["mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "rev", "gen", "gov", "sen", "rep", "col", "lt", "sgt", "capt", "mt", "ft",
         "inc", "ltd", "co", "corp", "vs", "etc", "e.g", "i.e", "a.m", "p.m", "u.s", "u.k", "u.n", "d.c", "n.y", "l.a", "no", "vol", "fig",
         "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "ave", "blvd", "approx", "dept", "est", "cf"],
        ["the", "a", "an", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we", "i", "you", "there", "here", "in",
         "on", "at", "for", "to", "and", "but", "or", "so", "if", "when", "while", "after", "before", "as", "with", "by", "from", "of",
         "what", "how", "why", "who", "which", "where", "each", "every", "some", "many", "most", "all", "one", "not", "no", "my", "our",
         "your", "their", "his", "her", "also", "however", "then", "finally", "first", "next", "now", "today", "let", "please", "is", "are"]);

    public static readonly Punkt French = new(
        ["m", "mr", "mme", "mlle", "dir", "dr", "dre", "drs", "dres", "prof", "pr", "cap", "lt", "adm", "assoc", "min", "etc", "cf", "vs",
         "rép", "i.e", "c.-à-d", "ex", "e.g", "apr", "av", "j.c", "j.-c", "è. c", "a.d", "env", "janv", "fév", "mar", "avr", "juil",
         "sept", "oct", "nov", "déc", "p.-ê", "svp", "p.-v", "p.v", "tél", "adj", "q.v", "p", "resp", "tel", "v", "vol", "nb", "n.b",
         "p.s", "ps", "p.p.s", "p.-s", "p-s", "st", "ste", "no", "art", "chap", "éd", "fig", "mgr"],
        ["le", "la", "les", "un", "une", "des", "ce", "cette", "ces", "il", "elle", "ils", "elles", "on", "nous", "vous", "je", "tu",
         "en", "dans", "pour", "par", "avec", "sur", "et", "mais", "ou", "donc", "si", "quand", "lorsque", "comme", "de", "du", "au",
         "aux", "que", "qui", "quoi", "comment", "pourquoi", "où", "chaque", "tous", "toutes", "tout", "mon", "ma", "mes", "notre",
         "votre", "leur", "son", "sa", "ses", "enfin", "ensuite", "puis", "alors", "aussi", "cependant", "voici", "voilà", "c'est", "il",
         "pas", "ne", "l'", "d'", "est", "sont"]);

    /// <summary>Spanish abbreviations, for the rule-based splitter that stands in for spaCy's parser.</summary>
    public static readonly Punkt Spanish = new(
        ["sr", "sra", "srta", "dr", "dra", "d", "dña", "ud", "uds", "vd", "vds", "etc", "ej", "p. ej", "p.ej", "aprox", "núm", "pág",
         "av", "avda", "prof", "lic", "ing", "arq", "gral", "cap", "tte", "st", "san", "sta", "sto", "ee.uu", "s.a", "s.l", "inc", "ltd",
         "co", "vs", "art", "cf", "vol", "no", "nº", "tel", "ref", "depto", "dpto", "cía", "cia", "p", "pp", "ss", "admón"],
        ["el", "la", "los", "las", "un", "una", "unos", "unas", "este", "esta", "estos", "estas", "ese", "esa", "eso", "esto", "él",
         "ella", "ellos", "ellas", "nosotros", "yo", "tú", "usted", "en", "para", "por", "con", "sobre", "y", "pero", "o", "si",
         "cuando", "como", "de", "del", "al", "que", "qué", "cómo", "por qué", "dónde", "cada", "todos", "todas", "mi", "mis", "tu",
         "su", "sus", "nuestro", "nuestra", "finalmente", "luego", "después", "entonces", "también", "sin", "aquí", "hay", "es",
         "no", "se", "lo", "le", "les", "me", "te"]);

    /// <summary>Characters a sentence's last word may carry after its full stop (closing quotes, brackets, emphasis).</summary>
    static readonly char[] Closers = [')', '"', '\'', '”', '’', '»', ']', '}', '*', '_'];

    /// <summary>Characters Punkt's word tokens never start with (they are tokens of their own).</summary>
    static readonly char[] Openers = ['(', '"', '`', '{', '[', ':', ';', '&', '#', '*', '@', ')', '}', ']', '-', ',', '«', '“', '‘', '\'', '¿', '¡', '_'];

    [GeneratedRegex(@"^-?[.,]?\d[\d,.\-]*$")]
    private static partial Regex Number();

    /// <summary>Whether a sentence ends after <paramref name="word"/> when <paramref name="next"/> follows it (both without white space).</summary>
    public bool BreaksAfter(string word, string next)
    {
        var core = word.TrimEnd(Closers);
        if (core.Length == 0) return false;
        char last = core[^1];
        if (last is '?' or '!') return true;
        if (last != '.') return false;
        if (core.EndsWith("..", StringComparison.Ordinal))
            return core.All(c => c == '.') && StartsSentence(next); // an ellipsis: only before what plainly starts a sentence
        var type = core[..^1].TrimStart(Openers).ToLowerInvariant();
        if (type.Length == 0) return true;
        if (_abbreviations.Contains(type) || _abbreviations.Contains(type.Split('-')[^1])) return StartsSentence(next);
        bool initial = type.Length == 1 && char.IsLetter(type[0]);
        if (initial || Number().IsMatch(type))
        {
            // Punkt's orthographic heuristic: a lower-case word or a comma after an initial or a number means no sentence ended;
            // a capitalised word it cannot place after an initial means a name goes on ("J. K. Rowling").
            var n = next.TrimStart(Openers);
            if (n.Length == 0) return !(next.Length > 0 && next[0] is ';' or ':' or ',');
            if (next[0] is ';' or ':' or ',' or '.' or '!' or '?' || char.IsLower(n[0])) return false;
            if (initial && char.IsUpper(n[0]) && !IsCommon(n)) return false;
        }
        return true;
    }

    /// <summary>Whether a text's last word is one of the language's abbreviations (with its period).</summary>
    public bool EndsWithAbbreviation(string text)
    {
        var t = text.TrimEnd();
        if (!t.EndsWith('.')) return false;
        int w = t.Length - 1;
        while (w > 0 && !char.IsWhiteSpace(t[w - 1])) w--;
        var type = t[w..^1].TrimStart(Openers).ToLowerInvariant();
        return _abbreviations.Contains(type);
    }

    /// <summary>A capitalised common word (what Punkt's orthographic heuristic calls a sure sentence start).</summary>
    bool StartsSentence(string next)
    {
        var n = next.TrimStart(Openers);
        return n.Length > 0 && char.IsUpper(n[0]) && IsCommon(n);
    }

    bool IsCommon(string word)
    {
        var w = word.TrimEnd('.', ',', ';', ':', '!', '?', ')', '"', '\'', '»', '”', '*').ToLowerInvariant();
        return _commonWords.Contains(w);
    }
}
