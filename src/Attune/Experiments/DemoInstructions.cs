using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Evaluation.Instructions;
using Attune.Tensors;

namespace Attune.Experiments;

/// <summary>
/// The demo world's instruction data: requests of the world with one to three verifiable instructions drawn as the
/// built-in IF suite draws them (the same instruction sentences, arguments and compatibility rules, from the world's
/// own requests and seed), each answered by a response composed to follow them — sentences of the world chosen for the
/// length, keyword, letter and address constraints, then shaped (paragraphs, bullets, sections, two answers, JSON,
/// quotes, the request repeated), framed (title, opening and closing phrases, postscript) and finally cased. Every
/// response is checked by the IF checkers; one that does not follow all its instructions is dropped, never kept.
/// </summary>
public static class DemoInstructions
{
    /// <summary>One composed example: the prompt, the response that follows its instructions, and one that does not (null when none was found).</summary>
    public sealed record Example(string Prompt, string Followed, string? Broken, IReadOnlyList<Instruction> Instructions);

    /// <summary>Per-language sentences the composer adds for content constraints (written for Attune).</summary>
    sealed record Phrasebook(string Keyword, string Placeholders, string[] PlaceholderNames, string Letter, string Informal, string Formal,
        string Question, string Exclamation, string PostscriptText, string Title, string Second);

    static readonly Dictionary<string, Phrasebook> Phrases = new()
    {
        ["en"] = new("I often think about {k}.", "Please fill in {p}.", ["[name]", "[address]", "[date]"], "", "", "",
            "", "", "Thanks for reading.", "My answer", "Here is another way to say it."),
        ["fr"] = new("Je pense souvent à {k}.", "Merci de compléter {p}.", ["[nom]", "[adresse]", "[date]"], "Le garçon parle français.",
            "Je te remercie pour ta question.", "Je vous remercie pour votre question.", "", "", "Merci pour la lecture.", "Ma réponse", "Voici une autre façon de le dire."),
        ["es"] = new("Pienso a menudo en {k}.", "Por favor completa {p}.", ["[nombre]", "[dirección]", "[fecha]"], "El niño sueña con la montaña.",
            "Te agradezco tu pregunta.", "Le agradezco a usted su pregunta.", "¿Es una buena idea?", "¡Qué bonito día!", "Gracias por la lectura.", "Mi respuesta",
            "Esta es otra manera de decirlo."),
    };

    /// <summary>
    /// A response to <paramref name="request"/> that follows <paramref name="instructions"/>, starting from the request's
    /// plain <paramref name="answer"/> and drawing more sentences from <paramref name="sentences"/>; null when the checkers
    /// reject every attempt.
    /// </summary>
    public static string? Compose(string request, string answer, IReadOnlyList<Instruction> instructions, string language,
        Func<Rng, string> sentences, Rng rng)
    {
        for (int attempt = 0; attempt < 6; attempt++)
        {
            var response = TryCompose(request, answer, instructions, language, sentences, rng);
            if (response is not null && instructions.All(i => Checkers.Follows(i, response, language))) return response;
        }
        return null;
    }

    /// <summary>
    /// Up to <paramref name="count"/> examples in one language: requests from <paramref name="requests"/> (each with its
    /// plain answer) given one to three instructions drawn from the IF suite's instruction sentences for the language,
    /// and composed responses; a response that the checkers reject is dropped (and counted).
    /// </summary>
    public static (List<Example> Examples, int Dropped) Generate(string language, int count, Func<Rng, (string Request, string Answer)> requests, Func<Rng, string> sentences, Rng rng)
    {
        var data = Evaluation.BuiltinData.Load("if", language);
        var templates = data["templates"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var examples = new List<Example>(count);
        int dropped = 0;
        for (int tries = 0; examples.Count < count && tries < count * 3; tries++)
        {
            var (request, answer) = requests(rng);
            var chosen = IfSuite.Draw(data, templates, request, language, 1 + rng.Next(3), null, rng);
            var instructions = chosen.Select(c => c.Instruction).ToList();
            var followed = Compose(request, answer, instructions, language, sentences, rng);
            if (followed is null)
            {
                dropped++;
                continue;
            }
            // The plain answer as the rejected side, when it breaks an instruction.
            string? broken = instructions.All(x => Checkers.Follows(x, answer, language)) ? null : answer;
            examples.Add(new Example(request + " " + string.Join(" ", chosen.Select(c => c.Text)), followed, broken, instructions));
        }
        return (examples, dropped);
    }

    static string? TryCompose(string request, string answer, IReadOnlyList<Instruction> instructions, string language, Func<Rng, string> sentences, Rng rng)
    {
        var book = Phrases[language];
        var by = instructions.ToDictionary(i => i.Id, i => i.Kwargs);
        JsonObject? Arg(string id) => by.TryGetValue(Checkers.ForLanguage(id, language), out var a) ? a : by.TryGetValue(id, out a) ? a : null;
        int Int(JsonObject a, string name) => a[name]!.GetValue<int>();
        string Rel(JsonObject a, string name = "relation") => a[name]?.GetValue<string>() ?? "at least";

        int minWords = 0, maxWords = int.MaxValue, minSentences = 2, maxSentences = int.MaxValue;
        if (Arg("length_constraints:number_words") is { } w)
        {
            if (Rel(w) == "less than") maxWords = Int(w, "num_words") - 1; else minWords = Int(w, "num_words");
        }
        if (Arg("length_constraints:number_sentences") is { } s)
        {
            if (Rel(s) == "less than") maxSentences = Int(s, "num_sentences") - 1; else minSentences = Int(s, "num_sentences");
        }
        int parts = Arg("length_constraints:number_paragraphs") is { } pa ? Int(pa, "num_paragraphs")
            : Arg("detectable_format:number_bullet_lists") is { } bu ? Int(bu, "num_bullets")
            : Arg("detectable_format:multiple_sections") is { } se ? Int(se, "num_sections") : 1;
        minSentences = Math.Max(minSentences, parts);
        var forbidden = Arg("keywords:forbidden_words")?["forbidden_words"]!.AsArray().Select(x => x!.GetValue<string>()).ToList() ?? [];
        bool Allowed(string sentence) => !forbidden.Any(f => TextUnits.Words(sentence.ToLowerInvariant()).Contains(f.ToLowerInvariant()));

        // Sentences that content instructions need, placed after the body's first sentence.
        var extras = new List<string>();
        if (Arg("keywords:existence") is { } ke)
            foreach (var k in ke["keywords"]!.AsArray()) extras.Add(book.Keyword.Replace("{k}", k!.GetValue<string>()));
        if (Arg("keywords:frequency") is { } kf)
            for (int i = 0; i < Int(kf, "frequency"); i++) extras.Add(book.Keyword.Replace("{k}", kf["keyword"]!.GetValue<string>()));
        if (Arg("detectable_content:number_placeholders") is { } ph)
        {
            var names = book.PlaceholderNames.Take(Math.Max(1, Int(ph, "num_placeholders"))).ToList();
            extras.Add(book.Placeholders.Replace("{p}", string.Join(" ", names)));
        }
        if (Arg("language_specific:letter_present") is not null) extras.Add(book.Letter);
        if (Arg("language_specific:inverted_punctuation") is not null) extras.Add(rng.Next(2) == 0 ? book.Question : book.Exclamation);
        if (Arg("language_specific:informal_address") is not null) extras.Add(book.Informal);
        if (Arg("language_specific:formal_address") is not null) extras.Add(book.Formal);

        List<string> Body(string first)
        {
            var body = SplitSentences(first).Where(Allowed).ToList();
            body.InsertRange(Math.Min(1, body.Count), extras);
            int wanted = Math.Clamp(2 + rng.Next(5), minSentences, Math.Max(minSentences, Math.Min(maxSentences, 12)));
            int guard = 0;
            while (guard++ < 60)
            {
                var text = string.Join(" ", body);
                bool needMore = body.Count < wanted || Words(text) < minWords
                    || (Arg("keywords:letter_frequency") is { } lf && Checkers.CountLetter(text, lf["letter"]!.GetValue<string>()) < Int(lf, "let_frequency"))
                    || (Arg("language_specific:accents_present") is { } ap && text.Count(Checkers.IsAccented) < Int(ap, "min_accents"));
                if (!needMore) break;
                var next = SplitSentences(sentences(rng)).Where(Allowed).ToList();
                if (body.Count + next.Count > maxSentences) break;
                body.AddRange(next);
            }
            while (body.Count > Math.Max(1, parts) && (Words(string.Join(" ", body)) > maxWords || body.Count > maxSentences)) body.RemoveAt(body.Count - 1);
            return body;
        }

        var body = Body(answer);
        if (Arg("change_case:capital_word_frequency") is { } cw)
        {
            int n = Int(cw, "capital_frequency") + 1, done = 0;
            for (int i = 0; i < body.Count && done < n; i++)
                body[i] = string.Join(" ", body[i].Split(' ').Select(word => done < n && word.Count(char.IsLetter) >= 3 && word.All(c => !char.IsDigit(c)) ? Upper(word, ref done) : word));
        }
        if (Arg("detectable_format:number_highlighted_sections") is { } hl)
            for (int i = 0, n = Int(hl, "num_highlights"); i < Math.Min(n, body.Count); i++) body[i] = "*" + body[i] + "*";

        string response;
        if (parts > 1 && Arg("length_constraints:number_paragraphs") is not null) response = string.Join("\n\n***\n\n", Groups(body, parts));
        else if (Arg("detectable_format:number_bullet_lists") is not null) response = string.Join("\n", Groups(body, parts).Select(g => "* " + g));
        else if (Arg("detectable_format:multiple_sections") is { } ms)
        {
            var word = ms["section_spliter"]!.GetValue<string>();
            response = string.Join("\n\n", Groups(body, parts).Select((g, i) => $"{word} {i + 1}\n{g}"));
        }
        else if (Arg("combination:two_responses") is not null)
        {
            var other = Body(sentences(rng));
            response = string.Join(" ", body) + "\n******\n" + book.Second + " " + string.Join(" ", other);
        }
        else response = string.Join(" ", body);

        if (Arg("detectable_format:json_format") is not null)
            response = JsonSerializer.Serialize(new Dictionary<string, string> { ["answer"] = response }, JsonOptions);
        if (Arg("startend:quotation") is not null) response = "\"" + response + "\"";
        if (Arg("combination:repeat_prompt") is { } rp) response = rp["prompt_to_repeat"]!.GetValue<string>() + "\n" + response;
        if (Arg("detectable_format:title") is not null) response = (language == "fr" ? $"##{book.Title}##" : $"<<{book.Title}>>") + "\n" + response;
        if (Arg("startend:start_checker") is { } sc) response = sc["start_phrase"]!.GetValue<string>() + ". " + response;
        if (Arg("detectable_content:postscript") is { } ps) response += "\n\n" + ps["postscript_marker"]!.GetValue<string>() + " " + book.PostscriptText;
        if (Arg("startend:end_checker") is { } ec) response += " " + ec["end_phrase"]!.GetValue<string>();

        if (Arg("change_case:english_capital") is not null) response = response.ToUpper(Culture(language));
        if (Arg("change_case:english_lowercase") is not null) response = response.ToLower(Culture(language));
        if (Arg("punctuation:no_comma") is not null) response = response.Replace(",", "");
        if (Arg("language_specific:accents_absent") is not null) response = WithoutAccents(response);
        return response;
    }

    static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static CultureInfo Culture(string language) => CultureInfo.GetCultureInfo(language);

    static string Upper(string word, ref int done)
    {
        done++;
        return word.ToUpperInvariant();
    }

    /// <summary><paramref name="count"/> consecutive groups of sentences, as even as the sentences allow.</summary>
    static IEnumerable<string> Groups(List<string> sentences, int count)
    {
        for (int g = 0; g < count; g++)
        {
            int from = g * sentences.Count / count, to = (g + 1) * sentences.Count / count;
            yield return string.Join(" ", sentences.Skip(from).Take(Math.Max(1, to - from)));
        }
    }

    static int Words(string text) => TextUnits.IfevalWordCount(text);

    static List<string> SplitSentences(string text)
    {
        var result = new List<string>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
            if (text[i] is '.' or '!' or '?' && (i + 1 == text.Length || text[i + 1] == ' '))
            {
                var s = text[start..(i + 1)].Trim();
                if (s.Length > 0) result.Add(s);
                start = i + 1;
            }
        if (text[start..].Trim() is { Length: > 0 } rest) result.Add(rest);
        return result;
    }

    static string WithoutAccents(string text) =>
        new string(text.Normalize(NormalizationForm.FormD).Where(c => CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark).ToArray()).Normalize(NormalizationForm.FormC);
}
