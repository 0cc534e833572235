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
public static partial class Checkers
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

        /// <summary>
        /// A count against its threshold under the instruction's relation, in any of the three languages' words:
        /// IFEval's "less than" and "at least", M-IFEval's French "moins de" and "au moins" and Spanish "al menos" and
        /// "como máximo", and "at most" and "exactly".
        /// </summary>
        public bool Compare(int actual, string countName, string relationName = "relation")
        {
            int n = Int(countName);
            var relation = kwargs[relationName] is null ? "at least" : Text(relationName);
            return relation switch
            {
                "at least" or "au moins" or "al menos" => actual >= n,
                "less than" or "moins de" or "menos de" => actual < n,
                "at most" or "au plus" or "como máximo" => actual <= n,
                "exactly" or "exactement" or "exactamente" => actual == n,
                _ => throw Bad(relationName, "must be a relation: at least, less than, at most or exactly (au moins, moins de; al menos, como máximo)"),
            };
        }

        /// <summary>A language code the identifier can answer (langdetect's codes; "zh" for Chinese as IFEval writes it).</summary>
        public string Language(string name)
        {
            var code = Text(name);
            return LanguageId.Languages.Contains(code) || code is "zh" or "zh-tw" ? code
                : throw Bad(name, $"\"{code}\" is not a language code the check knows ({string.Join(", ", LanguageId.Languages.Order())})");
        }

        /// <summary>The words to accentuate (M-IFEval's accents check): each unaccented word with its accented form.</summary>
        public Dictionary<string, string> WordMap(string name) => kwargs[name] is JsonObject o && o.Count > 0
            && o.All(kv => kv.Value is JsonValue v && v.TryGetValue<string>(out var s) && s.Length is > 0 and <= MaxText)
            ? o.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>(), StringComparer.Ordinal)
            : throw Bad(name, "must be an object of words, each unaccented word with its accented form");
    }

    static readonly Dictionary<string, Checker> All = new(StringComparer.Ordinal)
    {
        // Keywords. As IFEval: a keyword is a pattern matched anywhere, case-insensitive; a forbidden word between word boundaries.
        ["keywords:existence"] = new("each keyword appears", (r, a, _) => a.Texts("keywords").All(k => Pattern(k).IsMatch(r))),
        ["keywords:forbidden_words"] = new("no forbidden word appears", (r, a, _) => a.Texts("forbidden_words").All(k => !Pattern(@"\b" + k + @"\b", k).IsMatch(r))),
        ["keywords:frequency"] = new("a keyword appears a number of times", (r, a, _) => a.Compare(Pattern(a.Text("keyword").Trim()).Count(r), "frequency")),
        ["keywords:letter_frequency"] = new("a letter appears a number of times", (r, a, _) =>
            a.Compare(CountLetter(r, a.Text("letter").Trim()), "let_frequency", "let_relation")),
        // Language.
        ["language:response_language"] = new("the response is in a language", (r, a, _) => LanguageId.Is(r, a.Language("language"))),
        // Length.
        ["length_constraints:number_words"] = new("a number of words", (r, a, lang) => a.Compare(WordCount(r, lang), "num_words")),
        ["length_constraints:number_sentences"] = new("a number of sentences", (r, a, lang) =>
            a.Compare(TextUnits.Sentences(lang == "es" ? WithoutListMarkers(r) : r, lang).Count, "num_sentences")),
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
        ["length_constraints:nth_paragraph_first_word"] = new("N paragraphs (blank-line separated), the n-th starting with a word", (r, a, lang) =>
        {
            int wanted = a.Int("num_paragraphs"), nth = a.Int("nth_paragraph");
            var first = a.Text("first_word").ToLowerInvariant();
            // As IFEval: the paragraphs are the parts between blank lines; the n-th is counted among all parts, empty ones included.
            var parts = r.Split("\n\n");
            int count = parts.Count(p => p.Trim().Length > 0);
            if (nth < 1 || nth > count) return false;
            var paragraph = parts[nth - 1].Trim();
            if (paragraph.Length == 0) return false;
            return count == wanted && FirstWords(paragraph, first, lang);
        }),
        // Format.
        ["detectable_format:number_bullet_lists"] = new("exactly N markdown bullets", (r, a, lang) =>
            StarBullet().Count(r) + (lang == "es" ? 0 : DashBullet().Count(r)) == a.Int("num_bullets")),
        // M-IFEval's Spanish files give sections, highlights and placeholders a relation too (always "al menos" there); it is honoured.
        ["detectable_format:multiple_sections"] = new("N sections that start with a marker", (r, a, _) => a.Compare(
            Pattern(@"\s?" + a.Text("section_spliter").Trim() + @"\s?\d+\s?", a.Text("section_spliter").Trim(), ignoreCase: false).Split(r).Length - 1, "num_sections")),
        ["detectable_format:number_highlighted_sections"] = new("N *highlighted* sections", (r, a, _) => a.Compare(
            SingleHighlight().Matches(r).Count(m => m.Value.Trim('*').Trim().Length > 0)
            + DoubleHighlight().Matches(r).Count(m => m.Value[2..^2].Trim().Length > 0), "num_highlights")),
        ["detectable_format:title"] = new("a title in << >> (## ## in French)", (r, _, lang) => lang == "fr"
            ? HashTitle().Matches(r).Any(m => m.Value.TrimStart('#').TrimEnd('#').Trim().Length > 0)
            : AngleTitle().Matches(r).Any(m => m.Value.TrimStart('<').TrimEnd('>').Trim().Length > 0)),
        ["detectable_format:json_format"] = new("the whole response is JSON", (r, _, _) => IsJson(r)),
        ["detectable_format:constrained_response"] = new("one of the given answers", (r, _, lang) =>
            ConstrainedAnswers[lang].Any(o => r.Trim().Contains(o, StringComparison.Ordinal))),
        ["detectable_content:number_placeholders"] = new("N [placeholders]", (r, a, _) => a.Compare(Placeholder().Count(r), "num_placeholders")),
        ["detectable_content:postscript"] = new("a postscript", (r, a, lang) =>
        {
            var marker = a.Text("postscript_marker").Trim();
            var pattern = (lang, marker) switch
            {
                ("es", "P.D.") => @"\s*p\.\s?d\..*$",
                ("es", "Nota") => @"\s*nota.*$",
                (not "es", "P.P.S") => @"\s*p\.\s?p\.\s?s.*$",
                (not "es", "P.S.") => @"\s*p\.\s?s\..*$",
                _ => @"\s*" + marker.ToLowerInvariant() + ".*$", // the marker is a pattern, as in IFEval
            };
            return Pattern(pattern, marker, ignoreCase: false, multiline: true).IsMatch(r.ToLowerInvariant());
        }),
        // Start and end.
        ["startend:end_checker"] = new("ends with a phrase", (r, a, lang) =>
        {
            var text = r.Trim().Trim('"').ToLowerInvariant();
            if (lang == "es" && text.EndsWith('.')) text = text[..^1]; // M-IFEval's Spanish check forgives a final period
            return text.EndsWith(a.Text("end_phrase").Trim().ToLowerInvariant(), StringComparison.Ordinal);
        }),
        ["startend:start_checker"] = new("starts with a phrase", (r, a, _) => Typographic(Trimmed(r)).StartsWith(Typographic(Trimmed(a.Text("start_phrase"))), StringComparison.OrdinalIgnoreCase)),
        ["startend:quotation"] = new("wrapped in quotation marks", (r, _, lang) =>
        {
            var t = r.Trim();
            return t.Length > 1 && ((t[0] == '"' && t[^1] == '"') || (lang == "fr" && ((t[0] == '\'' && t[^1] == '\'') || (t[0] == '«' && t[^1] == '»'))));
        }),
        // Case: all capitals or all lower case, and in the instruction's language.
        ["change_case:english_capital"] = new("all capital letters, in English", (r, _, _) => TextUnits.PythonIsUpper(r) && LanguageId.Is(r, "en")),
        ["change_case:english_lowercase"] = new("all lower-case letters, in English", (r, _, _) => TextUnits.PythonIsLower(r) && LanguageId.Is(r, "en")),
        ["change_case:french_capital"] = new("all capital letters, in French", (r, _, _) => TextUnits.PythonIsUpper(r) && LanguageId.Is(r.ToLowerInvariant(), "fr")),
        ["change_case:french_lowercase"] = new("all lower-case letters, in French", (r, _, _) => TextUnits.PythonIsLower(r) && LanguageId.Is(r, "fr")),
        ["change_case:spanish_capital"] = new("all capital letters, in Spanish", (r, _, _) => NoLowerCase(r) && LanguageId.Is(r.ToLowerInvariant(), "es")),
        ["change_case:spanish_lowercase"] = new("all lower-case letters, in Spanish", (r, _, _) => TextUnits.PythonIsLower(r) && LanguageId.Is(r, "es")),
        ["change_case:capital_word_frequency"] = new("words in capitals a number of times", (r, a, lang) =>
            a.Compare((lang == "es" ? TextUnits.SpacyWords(r) : TextUnits.TreebankTokens(r)).Count(TextUnits.PythonIsUpper), "capital_frequency", "capital_relation")),
        // Punctuation.
        ["punctuation:no_comma"] = new("no commas", (r, _, _) => !r.Contains(',')),
        ["punctuation:question_marks"] = new("a question between ¿ and ?", (r, _, _) => Question().Matches(r).Any(m => m.Value[1..^1].Trim().Length > 0)),
        ["punctuation:exclamation_marks"] = new("an exclamation between ¡ and !", (r, _, _) => Exclamation().Matches(r).Any(m => m.Value[1..^1].Trim().Length > 0)),
        // Combinations.
        ["combination:repeat_prompt"] = new("repeats the request first", (r, a, _) =>
            r.Trim().ToLowerInvariant().StartsWith(a.Text("prompt_to_repeat").Trim().ToLowerInvariant(), StringComparison.Ordinal)),
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
        // M-IFEval's French instructions.
        ["special_character:ethel_or_cedilla"] = new("a character (ç, œ) is not used", (r, a, _) => !r.Contains(a.Text("forbidden_char"), StringComparison.OrdinalIgnoreCase)),
        ["special_character:no_accents"] = new("no accented letter", (r, _, _) => !r.Any(c => AccentedLetters.Contains(c))),
        ["special_character:accents"] = new("the given words are written with their accents", (r, a, _) =>
        {
            var words = a.WordMap("word_to_accentuate");
            return WordRun().Matches(r.ToLowerInvariant()).All(m => !words.TryGetValue(WithoutAccents(m.Value), out var accented) || m.Value == accented);
        }),
        ["detectable_content:informal_address"] = new("the reader is addressed as tu", (r, _, _) => TuForm().IsMatch(r)),
        ["detectable_content:no_digits"] = new("no digits", (r, _, _) => !r.Any(char.IsDigit)),
        // M-IFEval's Spanish instructions (words as spaCy's tokens).
        ["special_character:enie"] = new("a number of words with ñ", (r, a, _) => TextUnits.SpacyWords(r).Count(w => w.Contains('ñ') || w.Contains('Ñ')) == a.Int("let_frequency")),
        ["special_character:dieresis"] = new("a number of words with ü", (r, a, _) => TextUnits.SpacyWords(r).Count(w => w.Contains('ü') || w.Contains('Ü')) == a.Int("let_frequency")),
        ["special_character:tildes"] = new("a number of words with an acute accent", (r, a, _) =>
            a.Compare(TextUnits.SpacyWords(r).Count(w => w.Any(c => "áéíóúÁÉÍÓÚ".Contains(c))), "num_words")),
        // Attune's French and Spanish instructions.
        ["language_specific:accents_present"] = new("at least N accented letters", (r, a, _) => r.Count(IsAccented) >= a.Int("min_accents")),
        ["language_specific:accents_absent"] = new("no accented letter", (r, _, _) => !r.Any(IsAccented)),
        ["language_specific:letter_present"] = new("a letter such as ñ or ç appears", (r, a, _) =>
            r.Contains(a.Text("letter"), StringComparison.Ordinal) || r.Contains(a.Text("letter").ToUpperInvariant(), StringComparison.Ordinal)),
        ["language_specific:inverted_punctuation"] = new("questions open with ¿ and exclamations with ¡", (r, _, lang) => InvertedMarks(r, lang)),
        ["language_specific:informal_address"] = new("addresses the reader as tu / tú", (r, _, lang) => Address(r, lang) == "informal"),
        ["language_specific:formal_address"] = new("addresses the reader as vous / usted", (r, _, lang) => Address(r, lang) == "formal"),
    };

    /// <summary>
    /// The id of an instruction in a language's own words where IFEval's and M-IFEval's ids differ by language
    /// (change_case:english_capital is french_capital in French and spanish_capital in Spanish).
    /// </summary>
    public static string ForLanguage(string id, string language) => language switch
    {
        "fr" => id.Replace("change_case:english_", "change_case:french_"),
        "es" => id.Replace("change_case:english_", "change_case:spanish_"),
        _ => id,
    };

    /// <summary>The ids of every checker.</summary>
    public static IReadOnlyCollection<string> Ids => All.Keys;

    public static string Describe(string id) => All.TryGetValue(id, out var c) ? c.Description : throw Unknown(id);

    static AttuneException Unknown(string id) => new(null, "instruction_id_list", $"\"{id}\" is not a known instruction ({All.Count} known: keywords:*, language:*, length_constraints:*, detectable_format:*, detectable_content:*, startend:*, change_case:*, punctuation:*, combination:*, language_specific:*)");

    /// <summary>Whether <paramref name="response"/> follows <paramref name="instruction"/>.</summary>
    public static bool Follows(Instruction instruction, string response, string language)
    {
        if (!All.TryGetValue(instruction.Id, out var checker)) throw Unknown(instruction.Id);
        try { return checker.Run(response, new Args(instruction.Id, instruction.Kwargs), language); }
        catch (RegexMatchTimeoutException)
        {
            // Keywords and markers are patterns, as in IFEval; one that backtracks without end is the file's problem.
            throw new AttuneException(null, $"instruction {instruction.Id}", $"its arguments, read as patterns, take too long to match ({instruction.Kwargs.ToJsonString()})");
        }
    }

    /// <summary>Checks an instruction's arguments without a response (when a suite is loaded).</summary>
    public static void Validate(Instruction instruction, string language)
    {
        if (!All.TryGetValue(instruction.Id, out var checker)) throw Unknown(instruction.Id);
        checker.Run("", new Args(instruction.Id, instruction.Kwargs), language);
    }

    /// <summary>The answers a constrained response may give, as each language's prompts list them (IFEval's and M-IFEval's).</summary>
    static readonly Dictionary<string, string[]> ConstrainedAnswers = new()
    {
        ["en"] = ["My answer is yes.", "My answer is no.", "My answer is maybe."],
        ["fr"] = ["Oui.", "Non.", "Peut-être."],
        ["es"] = ["Sí.", "No.", "Quizás."],
    };

    static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, bool, bool), Regex> Patterns = new();

    /// <summary>
    /// An argument used as a regular expression, as IFEval uses keywords, section markers and postscript markers
    /// (a keyword such as "c++" that is not a valid pattern is matched as written).
    /// </summary>
    static Regex Pattern(string pattern, string? literal = null, bool ignoreCase = true, bool multiline = false) =>
        Patterns.GetOrAdd((pattern, ignoreCase, multiline), key =>
        {
            var options = RegexOptions.CultureInvariant | (key.Item2 ? RegexOptions.IgnoreCase : 0) | (key.Item3 ? RegexOptions.Multiline : 0);
            var timeout = TimeSpan.FromSeconds(1);
            try { return new Regex(key.Item1, options, timeout); }
            catch (ArgumentException)
            {
                var escaped = literal is null ? Regex.Escape(key.Item1) : key.Item1.Replace(literal, Regex.Escape(literal));
                return new Regex(escaped, options, timeout);
            }
        });

    /// <summary>Occurrences of one letter in the lower-cased response (IFEval counts characters).</summary>
    /// <remarks>
    /// IFEval replaces a letter outside a–z (é, ñ, #) with a random one before counting; Attune counts the letter
    /// the instruction names, and the conformance report lists those instructions.
    /// </remarks>
    internal static int CountLetter(string text, string letter)
    {
        var lower = text.ToLowerInvariant();
        var l = letter.ToLowerInvariant();
        int n = 0;
        for (int i = lower.IndexOf(l, StringComparison.Ordinal); i >= 0; i = lower.IndexOf(l, i + l.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>Words as each reference counts them: \w+ runs in English and French, spaCy's tokens in Spanish, list markers and line breaks removed first.</summary>
    static int WordCount(string response, string language) =>
        language == "es" ? TextUnits.SpacyWords(WithoutListMarkers(response).Replace('\n', ' ')).Count : TextUnits.IfevalWordCount(response);

    /// <summary>The Spanish reference's clean-up before counting: a "1." or "-"/"*" marker at a line's start goes, with the white space around it.</summary>
    static string WithoutListMarkers(string response) => ListMarker().Replace(response, "");

    /// <summary>
    /// Whether a paragraph starts with the word asked for: its first white-space separated word, quotes dropped and
    /// cut at the first . , ? ! ' or " (IFEval's English and French); or, in Spanish, its first words (the asked
    /// "first word" may be several), each without punctuation.
    /// </summary>
    static bool FirstWords(string paragraph, string first, string language)
    {
        var words = paragraph.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (language == "es")
        {
            var expected = first.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < expected.Length) return false;
            return expected.Select((e, i) => new string(words[i].Where(c => !AsciiPunctuation.Contains(c)).ToArray()).ToLowerInvariant() == e).All(x => x);
        }
        var word = words[0].TrimStart('\'').TrimStart('"');
        int cut = word.IndexOfAny(['.', ',', '?', '!', '\'', '"']);
        return (cut < 0 ? word : word[..cut]).ToLowerInvariant() == first;
    }

    /// <summary>Python's string.punctuation.</summary>
    const string AsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /// <summary>The letters M-IFEval's French no-accents check looks for.</summary>
    const string AccentedLetters = "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝ";

    static string WithoutAccents(string word) =>
        new(word.Normalize(NormalizationForm.FormKD).Where(c => CharUnicodeInfo.GetUnicodeCategory(c) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark)).ToArray());

    /// <summary>M-IFEval's Spanish capitals: no letter in lower case once accents are set apart (digits and signs do not count).</summary>
    static bool NoLowerCase(string response) =>
        response.Normalize(NormalizationForm.FormKD).EnumerateRunes().All(r => !Rune.IsLetter(r) || Rune.IsUpper(r));

    static string Trimmed(string s) => s.Trim().TrimEnd('"', '\'', '»', '”').Trim();

    /// <summary>Typographic apostrophes and French spaces (no-break, narrow no-break) as their plain forms, runs of space as one.</summary>
    static string Typographic(string s) => Regex.Replace(s.Replace('’', '\'').Replace('\u00A0', ' ').Replace('\u202F', ' '), @"\s+", " ");

    [GeneratedRegex(@"^\s*\*[^\*].*$", RegexOptions.Multiline)]
    private static partial Regex StarBullet();
    [GeneratedRegex(@"^\s*-.*$", RegexOptions.Multiline)]
    private static partial Regex DashBullet();
    [GeneratedRegex(@"\*[^\n\*]*\*")]
    private static partial Regex SingleHighlight();
    [GeneratedRegex(@"\*\*[^\n\*]*\*\*")]
    private static partial Regex DoubleHighlight();
    [GeneratedRegex(@"<<[^\n]+>>")]
    private static partial Regex AngleTitle();
    [GeneratedRegex(@"##[^\n]+##")]
    private static partial Regex HashTitle();
    [GeneratedRegex(@"\[.*?\]")]
    private static partial Regex Placeholder();
    [GeneratedRegex(@"¿[^?]*\?")]
    private static partial Regex Question();
    [GeneratedRegex(@"¡[^!]*!")]
    private static partial Regex Exclamation();
    [GeneratedRegex(@"\b\w+\b")]
    private static partial Regex WordRun();
    [GeneratedRegex(@"\btu\b|\bte\b|\bt'\b|\btoi\b|\bton\b|\bta\b|\btes\b", RegexOptions.IgnoreCase)]
    private static partial Regex TuForm();
    [GeneratedRegex(@"(^\s*[\d]+\.\s*)|(^\s*[-*]\s*)", RegexOptions.Multiline)]
    private static partial Regex ListMarker();

    /// <summary>IFEval's JSON check: the whole response, without a markdown code fence, parses as a JSON value.</summary>
    static bool IsJson(string response)
    {
        var t = response.Trim();
        foreach (var fence in (string[])["```json", "```Json", "```JSON", "```"])
            if (t.StartsWith(fence, StringComparison.Ordinal)) t = t[fence.Length..];
        if (t.EndsWith("```", StringComparison.Ordinal)) t = t[..^3];
        t = t.Trim();
        try { JsonDocument.Parse(t).Dispose(); return true; }
        catch (JsonException) { return false; }
    }

    /// <summary>A letter with a diacritic: its canonical decomposition has a combining mark (é, ñ, ç, ü, …).</summary>
    internal static bool IsAccented(char c) =>
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
        // A clitic joined by a hyphen counts ("souviens-toi"): the parts of a hyphenated word are words here.
        var found = TextUnits.Words(response.ToLowerInvariant()).SelectMany(w => w.Split('-')).ToHashSet();
        bool informal = words.Informal.Any(found.Contains);
        bool formal = words.Formal.Any(found.Contains) || (language == "es" && !informal && SpanishFormalHints.Any(found.Contains));
        return (informal, formal) switch { (true, false) => "informal", (false, true) => "formal", (true, true) => "mixed", _ => "none" };
    }
}
