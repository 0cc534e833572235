using System.Globalization;
using System.Text;
using Lingua;

namespace Attune.Evaluation.Instructions;

/// <summary>
/// The language of a response among the 55 that IFEval's checks can ask for (langdetect's set), named by
/// langdetect's codes ("en", "fr", "zh-cn", …). Lingua (a well-kept n-gram identifier, in its low-accuracy trigram
/// mode) decides among the languages it has; Kannada and Malayalam, which it lacks, are told by their scripts,
/// and Nepali from Hindi and Marathi by the words only Nepali uses.
/// </summary>
public static class LanguageId
{
    /// <summary>langdetect's languages that Lingua knows, by langdetect's code.</summary>
    static readonly Dictionary<string, Language> Known = new()
    {
        ["af"] = Language.Afrikaans, ["ar"] = Language.Arabic, ["bg"] = Language.Bulgarian, ["bn"] = Language.Bengali,
        ["ca"] = Language.Catalan, ["cs"] = Language.Czech, ["cy"] = Language.Welsh, ["da"] = Language.Danish,
        ["de"] = Language.German, ["el"] = Language.Greek, ["en"] = Language.English, ["es"] = Language.Spanish,
        ["et"] = Language.Estonian, ["fa"] = Language.Persian, ["fi"] = Language.Finnish, ["fr"] = Language.French,
        ["gu"] = Language.Gujarati, ["he"] = Language.Hebrew, ["hi"] = Language.Hindi, ["hr"] = Language.Croatian,
        ["hu"] = Language.Hungarian, ["id"] = Language.Indonesian, ["it"] = Language.Italian, ["ja"] = Language.Japanese,
        ["ko"] = Language.Korean, ["lt"] = Language.Lithuanian, ["lv"] = Language.Latvian, ["mk"] = Language.Macedonian,
        ["mr"] = Language.Marathi, ["nl"] = Language.Dutch, ["no"] = Language.Bokmal, ["pa"] = Language.Punjabi,
        ["pl"] = Language.Polish, ["pt"] = Language.Portuguese, ["ro"] = Language.Romanian, ["ru"] = Language.Russian,
        ["sk"] = Language.Slovak, ["sl"] = Language.Slovene, ["so"] = Language.Somali, ["sq"] = Language.Albanian,
        ["sv"] = Language.Swedish, ["sw"] = Language.Swahili, ["ta"] = Language.Tamil, ["te"] = Language.Telugu,
        ["th"] = Language.Thai, ["tl"] = Language.Tagalog, ["tr"] = Language.Turkish, ["uk"] = Language.Ukrainian,
        ["ur"] = Language.Urdu, ["vi"] = Language.Vietnamese, ["zh-cn"] = Language.Chinese,
    };

    static readonly Dictionary<Language, string> Codes = Known.ToDictionary(kv => kv.Value, kv => kv.Key);

    static readonly Lazy<LanguageDetector> Detector = new(() =>
        LanguageDetectorBuilder.FromLanguages([.. Known.Values, Language.Nynorsk]).WithLowAccuracyMode().Build());

    /// <summary>Every code <see cref="Detect"/> can answer.</summary>
    public static IReadOnlyCollection<string> Languages { get; } = [.. Known.Keys, "kn", "ml", "ne"];

    /// <summary>
    /// The text's language code, or null when the text has no letters to go by (langdetect's "no features"): the
    /// checks then give the response the benefit of the doubt, as IFEval's do.
    /// </summary>
    public static string? Detect(string text)
    {
        int letters = 0, kannada = 0, malayalam = 0, devanagari = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (!Rune.IsLetter(rune) && Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark)) continue;
            letters++;
            switch (rune.Value)
            {
                case >= 0x0C80 and <= 0x0CFF: kannada++; break;
                case >= 0x0D00 and <= 0x0D7F: malayalam++; break;
                case >= 0x0900 and <= 0x097F: devanagari++; break;
            }
        }
        if (letters == 0) return null;
        if (kannada * 2 > letters) return "kn";
        if (malayalam * 2 > letters) return "ml";
        var language = Detector.Value.DetectLanguageOf(text);
        if (devanagari * 2 > letters && language is Language.Hindi or Language.Marathi && LooksNepali(text)) return "ne";
        return language switch
        {
            Language.Unknown => null,
            Language.Nynorsk => "no",
            _ => Codes[language],
        };
    }

    /// <summary>Whether a response is in the language a check asks for; "zh" (IFEval's code) is either written Chinese.</summary>
    public static bool Is(string text, string language) => Detect(text) is not { } found
        || found == language
        || (language is "zh" or "zh-tw" && found == "zh-cn");

    /// <summary>Verb endings and postpositions that Nepali uses and Hindi and Marathi do not.</summary>
    static readonly string[] NepaliMarkers = ["छ", "छन्", "हुन्छ", "गर्न", "भएको", "हुने", "गर्ने", "पनि", "लागि", "यस"];

    static bool LooksNepali(string text)
    {
        var words = text.Split((char[])[' ', '\n', '\t', '।', ',', '.'], StringSplitOptions.RemoveEmptyEntries);
        int hits = words.Count(w => NepaliMarkers.Contains(w));
        return hits * 20 >= words.Length && hits >= 2;
    }
}
