using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Attune.Evaluation.Instructions;

/// <summary>One verifiable instruction of a prompt: its checker's id and the checker's arguments (IFEval's kwargs).</summary>
public sealed record Instruction(string Id, JsonObject Kwargs);

/// <summary>
/// The verifiable instructions, in IFEval's manner and under its ids where IFEval has the instruction
/// (so IFEval's own input file runs unchanged), and the French/Spanish ones Attune adds. Each checker
/// reads the response and its instruction's arguments, and knows the prompt's language (en, fr, es):
/// word, sentence and language rules follow it.
/// </summary>
public static class Checkers
{
    delegate bool Check(string response, Args args, string language);

    sealed record Checker(string Description, Check Run);

    /// <summary>An instruction's arguments, read with errors that name the instruction and the argument.</summary>
    sealed class Args(string id, JsonObject kwargs)
    {
        AttuneException Bad(string name, string what) => new(null, $"instruction {id}", $"argument \"{name}\" {what}");

        /// <summary>Arguments are words, markers and short phrases; a longer one (a corrupt file) would only slow the checks' regular expressions.</summary>
        const int MaxText = 1000;

        public string Text(string name) => kwargs[name] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length is > 0 and <= MaxText ? s
            : throw Bad(name, $"must be a non-empty text of at most {MaxText} characters");

        public int Int(string name)
        {
            if (kwargs[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
            {
                if (v.TryGetValue<int>(out var i) && i >= 0) return i;
                if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d >= 0 && d <= int.MaxValue) return (int)d;
            }
            throw Bad(name, "must be a whole number ≥ 0");
        }

        public List<string> Texts(string name) => kwargs[name] is JsonArray a && a.Count > 0 && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out var s) && s.Length <= MaxText)
            ? a.Select(x => x!.GetValue<string>()).ToList() : throw Bad(name, $"must be a non-empty list of texts of at most {MaxText} characters");

        /// <summary>IFEval's relations ("at least", "less than") and "at most", "exactly".</summary>
        public bool Compare(int actual, string countName, string relationName = "relation")
        {
            int n = Int(countName);
            var relation = kwargs[relationName] is null ? "at least" : Text(relationName);
            return relation switch
            {
                "at least" => actual >= n,
                "less than" => actual < n,
                "at most" => actual <= n,
                "exactly" => actual == n,
                _ => throw Bad(relationName, "must be one of: at least, less than, at most, exactly"),
            };
        }
    }

    static readonly Dictionary<string, Checker> All = new(StringComparer.Ordinal)
    {
        // Keywords.
        // As IFEval: keywords and frequencies match anywhere (case-insensitive), forbidden words as whole words.
        ["keywords:existence"] = new("each keyword appears", (r, a, _) => a.Texts("keywords").All(k => CountText(r, k) > 0)),
        ["keywords:forbidden_words"] = new("no forbidden word appears", (r, a, _) => a.Texts("forbidden_words").All(k => CountWord(r, k) == 0)),
        ["keywords:frequency"] = new("a keyword appears a number of times", (r, a, _) => a.Compare(CountText(r, a.Text("keyword")), "frequency")),
        ["keywords:letter_frequency"] = new("a letter appears a number of times", (r, a, _) =>
            a.Compare(CountLetter(r, a.Text("letter")), "let_frequency", "let_relation")),
        // Language.
        ["language:response_language"] = new("the response is in a language", (r, a, _) => TextUnits.Identify(r) == a.Text("language")),
        // Length.
        ["length_constraints:number_words"] = new("a number of words", (r, a, _) => a.Compare(TextUnits.Words(r).Count, "num_words")),
        ["length_constraints:number_sentences"] = new("a number of sentences", (r, a, lang) => a.Compare(TextUnits.Sentences(r, lang).Count, "num_sentences")),
        ["length_constraints:number_paragraphs"] = new("paragraphs separated by ***", (r, a, _) =>
        {
            // IFEval: an empty part is allowed only before the first divider or after the last.
            int wanted = a.Int("num_paragraphs");
            var parts = TextUnits.DividedParagraphs(r);
            int count = parts.Count;
            for (int i = 0; i < parts.Count; i++)
                if (parts[i].Length == 0)
                {
                    if (i != 0 && i != parts.Count - 1) return false;
                    count--;
                }
            return count == wanted;
        }),
        ["length_constraints:nth_paragraph_first_word"] = new("N paragraphs (blank-line separated), the n-th starting with a word", (r, a, _) =>
        {
            int wanted = a.Int("num_paragraphs"), nth = a.Int("nth_paragraph");
            var first = a.Text("first_word").ToLowerInvariant();
            var parts = Regex.Split(r, @"\n\n").ToList();
            int count = parts.Count;
            for (int i = 0; i < parts.Count; i++)
                if (parts[i].Trim().Length == 0)
                {
                    if (i != 0 && i != parts.Count - 1) return false;
                    count--;
                }
            var paragraphs = parts.Where(p => p.Trim().Length > 0).ToList();
            if (count != wanted || nth < 1 || nth > paragraphs.Count) return false;
            var word = TextUnits.Words(paragraphs[nth - 1].ToLowerInvariant()).FirstOrDefault() ?? "";
            return word == first;
        }),
        // Format.
        ["detectable_format:number_bullet_lists"] = new("exactly N markdown bullets", (r, a, _) =>
            Regex.Matches(r, @"^\s*[*-]\s+\S", RegexOptions.Multiline).Count == a.Int("num_bullets")),
        ["detectable_format:multiple_sections"] = new("N sections that start with a marker", (r, a, _) =>
            Regex.Split(r, @"\s?" + Regex.Escape(a.Text("section_spliter")) + @"\s?\d+\s?").Length - 1 >= a.Int("num_sections")),
        ["detectable_format:number_highlighted_sections"] = new("N *highlighted* sections", (r, a, _) =>
            Regex.Matches(r, @"\*[^\n\*]+\*").Count(m => m.Value.Trim('*').Trim().Length > 0) >= a.Int("num_highlights")),
        ["detectable_format:title"] = new("a title in << >>", (r, _, _) => Regex.Matches(r, @"<<[^\n]+>>").Any(m => m.Value[2..^2].Trim().Length > 0)),
        ["detectable_format:json_format"] = new("the whole response is JSON", (r, _, _) => IsJson(r)),
        ["detectable_format:constrained_response"] = new("one of the given answers", (r, _, lang) =>
            ConstrainedAnswers[lang].Any(o => r.Contains(o, StringComparison.Ordinal))),
        ["detectable_content:number_placeholders"] = new("N [placeholders]", (r, a, _) => Regex.Matches(r, @"\[[^\]\n]+\]").Count >= a.Int("num_placeholders")),
        ["detectable_content:postscript"] = new("a postscript", (r, a, _) =>
        {
            var marker = a.Text("postscript_marker");
            var pattern = marker == "P.P.S" ? @"\s*p\.\s?p\.\s?s.*$" : marker == "P.S." ? @"\s*p\.\s?s\..*$" : @"\s*" + Regex.Escape(marker.ToLowerInvariant()) + ".*$";
            return Regex.IsMatch(r.ToLowerInvariant(), pattern, RegexOptions.Multiline);
        }),
        // Start and end.
        ["startend:end_checker"] = new("ends with a phrase", (r, a, _) => Typographic(Trimmed(r)).EndsWith(Typographic(Trimmed(a.Text("end_phrase"))), StringComparison.OrdinalIgnoreCase)),
        ["startend:start_checker"] = new("starts with a phrase", (r, a, _) => Typographic(Trimmed(r)).StartsWith(Typographic(Trimmed(a.Text("start_phrase"))), StringComparison.OrdinalIgnoreCase)),
        ["startend:quotation"] = new("wrapped in quotation marks", (r, _, _) =>
        {
            var t = r.Trim();
            return t.Length > 1 && ((t[0] == '"' && t[^1] == '"') || (t[0] == '«' && t[^1] == '»') || (t[0] == '“' && t[^1] == '”'));
        }),
        // Case.
        ["change_case:english_capital"] = new("all capital letters", (r, _, _) => AllCase(r, upper: true)),
        ["change_case:english_lowercase"] = new("all lower-case letters", (r, _, _) => AllCase(r, upper: false)),
        ["change_case:capital_word_frequency"] = new("words in capitals a number of times", (r, a, _) =>
            a.Compare(TextUnits.Words(r).Count(w => w.Length > 1 && w.Any(char.IsLetter) && w.Where(char.IsLetter).All(char.IsUpper)), "capital_frequency", "capital_relation")),
        // Punctuation.
        ["punctuation:no_comma"] = new("no commas", (r, _, _) => !r.Contains(',') && !r.Contains('，')),
        // Combinations.
        ["combination:repeat_prompt"] = new("repeats the request first", (r, a, _) => r.Trim().StartsWith(a.Text("prompt_to_repeat").Trim(), StringComparison.OrdinalIgnoreCase)),
        ["combination:two_responses"] = new("two different responses separated by ******", (r, _, _) =>
        {
            // IFEval: an empty part is allowed only at the very start or end.
            var parts = r.Split("******");
            var valid = new List<string>();
            for (int i = 0; i < parts.Length; i++)
            {
                if (parts[i].Trim().Length == 0) { if (i != 0 && i != parts.Length - 1) return false; }
                else valid.Add(parts[i].Trim());
            }
            return valid.Count == 2 && valid[0] != valid[1];
        }),
        // French and Spanish.
        ["language_specific:accents_present"] = new("at least N accented letters", (r, a, _) => r.Count(IsAccented) >= a.Int("min_accents")),
        ["language_specific:accents_absent"] = new("no accented letter", (r, _, _) => !r.Any(IsAccented)),
        ["language_specific:letter_present"] = new("a letter such as ñ or ç appears", (r, a, _) =>
            r.Contains(a.Text("letter"), StringComparison.Ordinal) || r.Contains(a.Text("letter").ToUpperInvariant(), StringComparison.Ordinal)),
        ["language_specific:inverted_punctuation"] = new("questions open with ¿ and exclamations with ¡", (r, _, lang) => InvertedMarks(r, lang)),
        ["language_specific:informal_address"] = new("addresses the reader as tu / tú", (r, _, lang) => Address(r, lang) == "informal"),
        ["language_specific:formal_address"] = new("addresses the reader as vous / usted", (r, _, lang) => Address(r, lang) == "formal"),
    };

    /// <summary>The ids of every checker.</summary>
    public static IReadOnlyCollection<string> Ids => All.Keys;

    public static string Describe(string id) => All.TryGetValue(id, out var c) ? c.Description : throw Unknown(id);

    static AttuneException Unknown(string id) => new(null, "instruction_id_list", $"\"{id}\" is not a known instruction ({All.Count} known: keywords:*, language:*, length_constraints:*, detectable_format:*, detectable_content:*, startend:*, change_case:*, punctuation:*, combination:*, language_specific:*)");

    /// <summary>Whether <paramref name="response"/> follows <paramref name="instruction"/>.</summary>
    public static bool Follows(Instruction instruction, string response, string language)
    {
        if (!All.TryGetValue(instruction.Id, out var checker)) throw Unknown(instruction.Id);
        return checker.Run(response, new Args(instruction.Id, instruction.Kwargs), language);
    }

    /// <summary>Checks an instruction's arguments without a response (when a suite is loaded).</summary>
    public static void Validate(Instruction instruction, string language)
    {
        if (!All.TryGetValue(instruction.Id, out var checker)) throw Unknown(instruction.Id);
        checker.Run("", new Args(instruction.Id, instruction.Kwargs), language);
    }

    static readonly Dictionary<string, string[]> ConstrainedAnswers = new()
    {
        ["en"] = ["My answer is yes.", "My answer is no.", "My answer is maybe."],
        ["fr"] = ["Ma réponse est oui.", "Ma réponse est non.", "Ma réponse est peut-être."],
        ["es"] = ["Mi respuesta es sí.", "Mi respuesta es no.", "Mi respuesta es quizás."],
    };

    /// <summary>Whole-word, case-insensitive occurrences of a keyword (or phrase).</summary>
    static int CountWord(string text, string keyword) =>
        Regex.Matches(text, @"(?<![\p{L}\p{N}])" + Regex.Escape(keyword) + @"(?![\p{L}\p{N}])", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant).Count;

    static int CountLetter(string text, string letter)
    {
        var lower = text.ToLowerInvariant();
        var l = letter.ToLowerInvariant();
        int n = 0;
        for (int i = lower.IndexOf(l, StringComparison.Ordinal); i >= 0; i = lower.IndexOf(l, i + l.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    static string Trimmed(string s) => s.Trim().TrimEnd('"', '\'', '»', '”').Trim();

    /// <summary>Typographic apostrophes and French spaces (no-break, narrow no-break) as their plain forms, runs of space as one.</summary>
    static string Typographic(string s) => Regex.Replace(s.Replace('’', '\'').Replace('\u00A0', ' ').Replace('\u202F', ' '), @"\s+", " ");

    /// <summary>Case-insensitive occurrences of a text anywhere (IFEval's re.search / re.findall on the keyword).</summary>
    static int CountText(string text, string keyword) =>
        Regex.Matches(text, Regex.Escape(keyword), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant).Count;

    static bool IsJson(string response)
    {
        var t = response.Trim();
        if (t.StartsWith("```")) t = Regex.Replace(t, @"^```(json|Json|JSON)?\s*|\s*```$", "").Trim();
        if (t.Length == 0 || t[0] is not ('{' or '[')) return false;
        try { JsonDocument.Parse(t).Dispose(); return true; }
        catch (JsonException) { return false; }
    }

    /// <summary>Every letter in the chosen case (letters without case do not count), and at least one letter.</summary>
    static bool AllCase(string response, bool upper)
    {
        bool any = false;
        foreach (var c in response)
        {
            if (!char.IsLetter(c) || char.ToUpperInvariant(c) == char.ToLowerInvariant(c)) continue;
            any = true;
            if (upper ? !char.IsUpper(c) : !char.IsLower(c)) return false;
        }
        return any;
    }

    /// <summary>A letter with a diacritic: its canonical decomposition has a combining mark (é, ñ, ç, ü, …).</summary>
    static bool IsAccented(char c) =>
        char.IsLetter(c) && c > 127 && c.ToString().Normalize(NormalizationForm.FormD).Any(d => CharUnicodeInfo.GetUnicodeCategory(d) == UnicodeCategory.NonSpacingMark);

    /// <summary>Spanish punctuation: every sentence that ends with ? opens with ¿, every one that ends with ! opens with ¡, and there is at least one.</summary>
    static bool InvertedMarks(string response, string language)
    {
        int marked = 0;
        foreach (var s in TextUnits.Sentences(response, language))
        {
            var t = s.TrimEnd('"', '»', '”', ')');
            if (t.EndsWith('?')) { if (!HasOpener(t, '¿')) return false; marked++; }
            else if (t.EndsWith('!')) { if (!HasOpener(t, '¡')) return false; marked++; }
        }
        return marked > 0;
    }

    /// <summary>The question or exclamation may be the end of a longer sentence ("Dime, ¿qué tal?").</summary>
    static bool HasOpener(string sentence, char opener) => sentence.Contains(opener);

    static readonly Dictionary<string, (string[] Informal, string[] Formal)> AddressWords = new()
    {
        ["fr"] = (["tu", "te", "toi", "ton", "ta", "tes", "t"], ["vous", "votre", "vos"]),
        ["es"] = (["tú", "ti", "contigo", "tu", "tus", "te", "vosotros", "vosotras", "os", "vuestro", "vuestra", "vuestros", "vuestras"], ["usted", "ustedes"]),
    };

    /// <summary>Spanish words that address the reader formally when no informal form is used ("le recomiendo que revise su…").</summary>
    static readonly string[] SpanishFormalHints = ["le", "les", "su", "sus"];

    /// <summary>
    /// How a French or Spanish response addresses the reader: "informal" (tu / tú forms) without formal
    /// ones, "formal" (vous / usted) without informal ones, otherwise "mixed" or "none". In Spanish, where
    /// the formal pronoun is often left out, "le"/"su" count as formal when no informal form appears.
    /// </summary>
    public static string Address(string response, string language)
    {
        if (!AddressWords.TryGetValue(language, out var words)) return "none";
        var found = TextUnits.Words(response.ToLowerInvariant()).ToHashSet();
        bool informal = words.Informal.Any(found.Contains);
        bool formal = words.Formal.Any(found.Contains) || (language == "es" && !informal && SpanishFormalHints.Any(found.Contains));
        return (informal, formal) switch { (true, false) => "informal", (false, true) => "formal", (true, true) => "mixed", _ => "none" };
    }
}
