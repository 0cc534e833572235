using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Tensors;
using static Attune.Evaluation.BuiltinData;

namespace Attune.Evaluation.Instructions;

/// <summary>A prompt with verifiable instructions (IFEval's input record, plus its language).</summary>
public sealed record IfPrompt(string Key, string Language, string Prompt, IReadOnlyList<Instruction> Instructions)
{
    /// <summary>The instruction ids as the input file wrote them (M-IFEval's carry a language prefix), for verdict files.</summary>
    public IReadOnlyList<string>? SourceIds { get; init; }
}

/// <summary>
/// Instruction-following prompts: IFEval's JSONL format (<c>key</c>, <c>prompt</c>, <c>instruction_id_list</c>,
/// <c>kwargs</c>, and Attune's optional <c>lang</c>), or the built-in suite: for each language, the
/// project's own requests (data/if/{lang}.json) combined with one to three instructions that do not
/// contradict each other, their arguments drawn with a fixed seed, each phrased in the prompt's language.
/// </summary>
public static class IfSuite
{
    public const int PromptsPerLanguage = 120;
    public static readonly IReadOnlyList<string> Languages = ["en", "fr", "es"];

    /// <summary>
    /// Reads IFEval-format JSONL: IFEval's own files, and M-IFEval's, whose ids carry the instruction's language
    /// ("fr:change_case:french_capital"; the prefix sets the prompt's language). Records without either get
    /// Attune's optional <c>lang</c>, else <paramref name="defaultLanguage"/>.
    /// </summary>
    public static List<IfPrompt> Load(string path, string defaultLanguage = "en")
    {
        var prompts = new List<IfPrompt>();
        foreach (var (line, rec) in JsonLines.ReadFile(path))
        {
            AttuneException Bad(string field, string what) => new(path, $"line {line}: {field}", what);
            var prompt = rec["prompt"] is JsonValue pv && pv.TryGetValue<string>(out var p) && p.Length > 0 ? p : throw Bad("prompt", "must be a non-empty text");
            var ids = rec["instruction_id_list"] as JsonArray ?? throw Bad("instruction_id_list", "must be a list");
            var kwargs = rec["kwargs"] as JsonArray ?? new JsonArray(ids.Select(_ => (JsonNode)new JsonObject()).ToArray());
            if (kwargs.Count != ids.Count) throw Bad("kwargs", $"has {kwargs.Count} entries for {ids.Count} instructions");
            string? lang = rec["lang"] is JsonValue lv && lv.TryGetValue<string>(out var l) ? l : null;
            if (lang is not null && !Languages.Contains(lang)) throw Bad("lang", "must be en, fr or es");
            var instructions = new List<Instruction>();
            var sourceIds = new List<string>();
            for (int i = 0; i < ids.Count; i++)
            {
                var source = ids[i] is JsonValue iv && iv.TryGetValue<string>(out var s) ? s : throw Bad($"instruction_id_list[{i}]", "must be a text");
                var (prefix, id) = SplitLanguage(source);
                if (prefix == "ja") throw Bad($"instruction {source}", "Japanese instructions (ja:) are not in Attune's scope: it checks English, French and Spanish");
                if (prefix is not null)
                {
                    if (lang is not null && lang != prefix) throw Bad($"instruction {source}", $"is a {prefix} instruction in a prompt whose other instructions (or \"lang\") are {lang}");
                    lang = prefix;
                }
                if (kwargs[i] is not (null or JsonObject)) throw Bad($"kwargs[{i}]", "must be an object of the instruction's arguments");
                // IFEval writes null for arguments an instruction does not use.
                var args = kwargs[i] is JsonObject o ? new JsonObject(o.Where(kv => kv.Value is not null).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value!.DeepClone()))) : new JsonObject();
                instructions.Add(new Instruction(id, args));
                sourceIds.Add(source);
            }
            lang ??= defaultLanguage;
            foreach (var instruction in instructions)
            {
                try { Checkers.Validate(instruction, lang); }
                catch (AttuneException e) { throw Bad($"instruction {instruction.Id}", e.Problem); }
            }
            var key = rec["key"]?.ToString() ?? line.ToString();
            if (instructions.Count > 0) prompts.Add(new IfPrompt(key, lang, prompt, instructions) { SourceIds = sourceIds });
        }
        return prompts;
    }

    /// <summary>An M-IFEval id's language prefix (two letters before the first colon, when a category follows) and the id without it.</summary>
    static (string? Prefix, string Id) SplitLanguage(string id)
    {
        int colon = id.IndexOf(':');
        return colon == 2 && id.IndexOf(':', 3) > 3 && id[..2].All(char.IsAsciiLetterLower) ? (id[..2], id[3..]) : (null, id);
    }

    /// <summary>The built-in prompts of one language.</summary>
    /// <summary>
    /// The prompts a run asks: <c>builtin</c> or an IFEval-format file, the given languages in that order, the
    /// first <paramref name="limit"/> of each (shared by <c>attune eval if</c> and the sweep).
    /// </summary>
    public static List<IfPrompt> Select(string source, IReadOnlyList<string> languages, int? limit)
    {
        if (limit is < 1) throw new AttuneException(null, "--limit", "must be ≥ 1");
        var all = source == "builtin" ? languages.SelectMany(BuiltIn).ToList() : Load(source);
        return languages.SelectMany(l => all.Where(p => p.Language == l).Take(limit ?? int.MaxValue)).ToList();
    }

    public static List<IfPrompt> BuiltIn(string language)
    {
        if (!Languages.Contains(language)) throw new AttuneException(null, "--langs", $"\"{language}\" is not one of en, fr, es");
        var data = BuiltinData.Load("if", language);
        var tasks = Strings(data["tasks"]);
        var templates = data["templates"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var prompts = new List<IfPrompt>(PromptsPerLanguage);
        var rng = new Rng(0xA77E + (ulong)Languages.ToList().IndexOf(language));
        var kinds = templates.Keys.ToList();
        var seen = new HashSet<string>();
        int retries = 0;
        for (int i = 0; i < PromptsPerLanguage; i++)
        {
            var task = tasks[i % tasks.Count];
            // Every kind appears (the first pass walks them in order); then kinds are drawn at random.
            var chosen = Draw(data, templates, task, language, 1 + i % 3, i < kinds.Count ? kinds[i] : null, rng);
            var prompt = task + " " + string.Join(" ", chosen.Select(c => c.Text));
            if (chosen.Count == 0 || !seen.Add(prompt))
            {
                // The same request and instructions again: draw another (the data guarantees there are others).
                if (++retries > 100) throw new InvalidOperationException($"the built-in IF data for {language} cannot make {PromptsPerLanguage} distinct prompts");
                i--;
                continue;
            }
            retries = 0;
            prompts.Add(new IfPrompt($"{language}-{i:D3}", language, prompt, chosen.Select(c => c.Instruction).ToList()));
        }
        return prompts;
    }

    /// <summary>
    /// Up to <paramref name="count"/> instructions for one request, kinds drawn from <paramref name="templates"/> (the first
    /// <paramref name="firstKind"/> when given) with their arguments, none contradicting another or the request; each with
    /// its sentence in the prompt. The built-in prompts are drawn so, and the demo world's instruction data the same way.
    /// </summary>
    public static List<(string Kind, Instruction Instruction, string Text)> Draw(JsonObject data, IReadOnlyDictionary<string, string> templates,
        string task, string language, int count, string? firstKind, Rng rng)
    {
        var kinds = templates.Keys.ToList();
        var chosen = new List<(string Kind, Instruction Instruction, string Text)>();
        int attempts = 0;
        while (chosen.Count < count && attempts++ < 200)
        {
            var kind = chosen.Count == 0 && firstKind is not null && attempts == 1 ? firstKind : kinds[rng.Next(kinds.Count)];
            var (instruction, text) = Make(kind, templates[kind], data, task, language, rng);
            if (chosen.Any(c => Conflict(c.Kind, c.Instruction, kind, instruction))) continue;
            if (!FitsTask(instruction, task)) continue;
            chosen.Add((kind, instruction, text));
        }
        return chosen;
    }

    /// <summary>Every text among an instruction's arguments.</summary>
    static IEnumerable<string> Texts(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => [s],
        JsonArray a => a.SelectMany(Texts),
        JsonObject o => o.Select(kv => kv.Value).SelectMany(Texts),
        _ => [],
    };


    /// <summary>An instruction of one kind with drawn arguments, and its sentence in the prompt.</summary>
    static (Instruction, string) Make(string kind, string template, JsonObject data, string task, string language, Rng rng)
    {
        T Pick<T>(IReadOnlyList<T> list) => list[rng.Next(list.Count)];
        int Between(int lo, int hi) => lo + rng.Next(hi - lo + 1);
        var keywords = Strings(data["keywords"]);
        var args = new JsonObject();
        var fill = new Dictionary<string, string>();
        var parts = kind.Split(':');
        var id = parts.Length == 3 ? $"{parts[0]}:{parts[1]}" : kind; // "length_constraints:number_words:less than"
        switch (id)
        {
            case "keywords:existence":
            case "keywords:forbidden_words":
            {
                // Forbidden words must not be in the request itself (it may have to be repeated).
                var pool = id == "keywords:forbidden_words" ? keywords.Where(k => !task.Contains(k, StringComparison.OrdinalIgnoreCase)).ToList() : keywords;
                var k1 = Pick(pool);
                var k2 = Pick(pool.Where(k => k != k1).ToList());
                args[id == "keywords:existence" ? "keywords" : "forbidden_words"] = new JsonArray(k1, k2);
                fill["keyword1"] = k1; fill["keyword2"] = k2;
                break;
            }
            case "keywords:frequency":
                fill["keyword"] = Pick(keywords); args["keyword"] = fill["keyword"];
                args["frequency"] = Between(2, 3); args["relation"] = "at least";
                break;
            case "keywords:letter_frequency":
                fill["letter"] = Pick(Strings(data["letters"])); args["letter"] = fill["letter"];
                args["let_frequency"] = Between(8, 20); args["let_relation"] = "at least";
                break;
            case "language:response_language":
                args["language"] = language; fill["language_name"] = data["language_names"]![language]!.GetValue<string>();
                break;
            case "length_constraints:number_words":
                args["relation"] = parts[2];
                args["num_words"] = parts[2] == "less than" ? Between(5, 15) * 10 : Between(8, 20) * 10;
                break;
            case "length_constraints:number_sentences":
                args["relation"] = parts[2];
                args["num_sentences"] = parts[2] == "less than" ? Between(3, 6) : Between(4, 8);
                break;
            case "length_constraints:number_paragraphs": args["num_paragraphs"] = Between(2, 4); break;
            case "detectable_format:number_bullet_lists": args["num_bullets"] = Between(3, 5); break;
            case "detectable_format:multiple_sections":
                args["num_sections"] = Between(2, 4);
                args["section_spliter"] = fill["section_word"] = data["section_word"]!.GetValue<string>();
                break;
            case "detectable_format:number_highlighted_sections": args["num_highlights"] = Between(2, 3); break;
            case "detectable_content:number_placeholders": args["num_placeholders"] = Between(1, 3); break;
            case "detectable_content:postscript": args["postscript_marker"] = fill["postscript"] = data["postscript"]!.GetValue<string>(); break;
            case "startend:end_checker": args["end_phrase"] = fill["end_phrase"] = Pick(Strings(data["end_phrases"])); break;
            case "startend:start_checker": args["start_phrase"] = fill["start_phrase"] = Pick(Strings(data["start_phrases"])); break;
            case "change_case:capital_word_frequency": args["capital_frequency"] = Between(2, 4); args["capital_relation"] = "at least"; break;
            case "combination:repeat_prompt": args["prompt_to_repeat"] = task; break;
            case "language_specific:accents_present": args["min_accents"] = Between(5, 10); break;
            case "language_specific:letter_present": args["letter"] = fill["letter"] = data["special_letter"]!.GetValue<string>(); break;
        }
        var text = template;
        foreach (var (name, value) in args)
            text = text.Replace("{" + name + "}", value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "");
        foreach (var (name, value) in fill) text = text.Replace("{" + name + "}", value);
        return (new Instruction(id, args), text);
    }

    /// <summary>Kinds that shape the whole response, at most one of which a prompt may ask for.</summary>
    static readonly HashSet<string> WholeShape =
    [
        "detectable_format:json_format", "combination:two_responses", "startend:quotation", "combination:repeat_prompt",
        "length_constraints:number_paragraphs", "detectable_format:number_bullet_lists", "detectable_format:multiple_sections",
    ];

    static readonly (string, string)[] Pairs =
    [
        .. ((string[])["en", "fr", "es"]).SelectMany(l => new[]
        {
            (Checkers.ForLanguage("change_case:english_capital", l), Checkers.ForLanguage("change_case:english_lowercase", l)),
            (Checkers.ForLanguage("change_case:english_lowercase", l), "change_case:capital_word_frequency"),
            (Checkers.ForLanguage("change_case:english_lowercase", l), "detectable_format:multiple_sections"),
        }),
        ("language_specific:informal_address", "language_specific:formal_address"),
        ("language_specific:accents_absent", "language_specific:accents_present"),
        ("language_specific:accents_absent", "language_specific:letter_present"),
        ("detectable_format:json_format", "detectable_format:title"),
        ("detectable_format:json_format", "startend:start_checker"),
        ("detectable_format:json_format", "startend:end_checker"),
        ("detectable_format:json_format", "detectable_content:postscript"),
        ("detectable_format:json_format", "detectable_format:number_highlighted_sections"),
        ("startend:quotation", "startend:start_checker"),
        ("startend:quotation", "startend:end_checker"),
        ("combination:repeat_prompt", "startend:start_checker"),
        ("combination:two_responses", "startend:start_checker"),
        ("combination:two_responses", "startend:end_checker"),
        ("detectable_content:postscript", "startend:end_checker"),
        ("keywords:existence", "keywords:forbidden_words"),
        ("keywords:frequency", "keywords:forbidden_words"),
        ("detectable_format:json_format", "punctuation:no_comma"),
        ("combination:repeat_prompt", "language_specific:informal_address"),
        ("combination:repeat_prompt", "language_specific:formal_address"),
    ];

    /// <summary>Shapes that each make at least one sentence per part, which "fewer than N sentences" could forbid.</summary>
    static readonly HashSet<string> ManyParts =
    [
        "detectable_format:number_bullet_lists", "length_constraints:number_paragraphs", "detectable_format:multiple_sections", "combination:two_responses",
    ];

    /// <summary>Requests written to a group ("welcome the new members…") cannot ask to address one reader as tu / tú.</summary>
    static readonly string[] GroupRequests = ["membres", "pique-nique", "miembros", "pícnic", "members", "picnic"];

    static bool FitsTask(Instruction instruction, string task) => instruction.Id switch
    {
        "language_specific:informal_address" or "language_specific:formal_address" => !GroupRequests.Any(g => task.Contains(g, StringComparison.OrdinalIgnoreCase)),
        _ => true,
    };

    /// <summary>Whether two instructions cannot both be followed (or make each other ambiguous).</summary>
    static bool Conflict(string kindA, Instruction a, string kindB, Instruction b)
    {
        if (a.Id == b.Id) return true;
        bool fewSentences(Instruction i) => i.Id == "length_constraints:number_sentences" && i.Kwargs["relation"]?.ToString() == "less than";
        if ((fewSentences(a) && ManyParts.Contains(b.Id)) || (fewSentences(b) && ManyParts.Contains(a.Id))) return true;
        // Repeating a request that has a comma cannot go with "no commas".
        bool repeatWithComma(Instruction i) => i.Id == "combination:repeat_prompt" && (i.Kwargs["prompt_to_repeat"]?.ToString() ?? "").Contains(',');
        if ((repeatWithComma(a) && b.Id == "punctuation:no_comma") || (repeatWithComma(b) && a.Id == "punctuation:no_comma")) return true;
        if (WholeShape.Contains(a.Id) && WholeShape.Contains(b.Id)) return true;
        if (Pairs.Contains((a.Id, b.Id)) || Pairs.Contains((b.Id, a.Id))) return true;
        // Address forms and fixed phrases: the phrases are written in one register.
        bool address(string id) => id is "language_specific:informal_address" or "language_specific:formal_address";
        bool phrase(string id) => id is "startend:start_checker" or "startend:end_checker";
        if ((address(a.Id) && phrase(b.Id)) || (address(b.Id) && phrase(a.Id))) return true;
        // Without accents, no other instruction may ask for a word that has one.
        if (a.Id == "language_specific:accents_absent" || b.Id == "language_specific:accents_absent")
        {
            var other = a.Id == "language_specific:accents_absent" ? b : a;
            if (other.Id == "combination:repeat_prompt" || Texts(other.Kwargs).Any(t => t.Any(c => c > 127 && char.IsLetter(c)))) return true;
        }
        return false;
    }
}
