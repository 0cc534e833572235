using System.Globalization;
using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Tasks;
using Attune.Tensors;
using static Attune.Evaluation.BuiltinData;

namespace Attune.Experiments;

/// <summary>
/// The demo world: a small trilingual (en/fr/es) world generated from the project's word lists with a
/// seed. Half its documents are runs of two to eight examples of a built-in task in the task's own format
/// (as lists and Q/A pages are on the web), drawn from the task's generator but never a test item; the other
/// half are about people and their city, job and pet, reviews, topics, sums, opposites and translations
/// (sentences and glossaries), letter games and short dialogues. Its instruction data are requests with
/// verifiable instructions drawn as the IF suite draws them, answered by replies composed to follow them
/// (<see cref="DemoInstructions"/>), and preference pairs (that reply against the plain answer that breaks
/// an instruction). Items of the built-in evaluation suite's test splits never appear in the world in the
/// suite's own format.
/// </summary>
public static class DemoWorld
{
    public sealed record Corpus(IReadOnlyList<string> Documents, IReadOnlyList<JsonObject> Sft, IReadOnlyList<JsonObject> Preferences)
    {
        /// <summary>Composed responses the IF checkers rejected (dropped from the data).</summary>
        public int DroppedResponses { get; init; }
    }

    static readonly string[] Languages = ["en", "fr", "es"];

    static JsonObject Lexicon(string lang) => BuiltinData.Load("tasks", lang);

    /// <summary>Request phrasings per language: about a person, a sum, an opposite, a translation, a review.</summary>
    static readonly Dictionary<string, Dictionary<string, string>> Requests = new()
    {
        ["en"] = new()
        {
            ["person"] = "Tell me about {name}.", ["sum"] = "What is {a} plus {b}?", ["opposite"] = "What is the opposite of \"{word}\"?",
            ["translate"] = "How do you say \"{word}\" in {language}?", ["review"] = "Write a short review of a {subject}.",
            ["person_answer"] = "{passage}", ["sum_answer"] = "{a} plus {b} is {c}.", ["opposite_answer"] = "The opposite of \"{word}\" is \"{answer}\".",
            ["translate_answer"] = "In {language}, \"{word}\" is \"{answer}\".", ["review_answer"] = "The {subject} {verdict}.",
            ["title"] = "My answer", ["ps"] = "P.S. Thank you for asking.",
        },
        ["fr"] = new()
        {
            ["person"] = "Parle-moi de {name}.", ["sum"] = "Combien font {a} plus {b} ?", ["opposite"] = "Quel est le contraire de « {word} » ?",
            ["translate"] = "Comment dit-on « {word} » en {language} ?", ["review"] = "Écris un court avis sur un {subject}.",
            ["person_answer"] = "{passage}", ["sum_answer"] = "{a} plus {b} font {c}.", ["opposite_answer"] = "Le contraire de « {word} » est « {answer} ».",
            ["translate_answer"] = "En {language}, « {word} » se dit « {answer} ».", ["review_answer"] = "Le {subject} {verdict}.",
            ["title"] = "Ma réponse", ["ps"] = "P.S. Merci pour ta question.",
        },
        ["es"] = new()
        {
            ["person"] = "Háblame de {name}.", ["sum"] = "¿Cuánto es {a} más {b}?", ["opposite"] = "¿Cuál es el contrario de «{word}»?",
            ["translate"] = "¿Cómo se dice «{word}» en {language}?", ["review"] = "Escribe una reseña corta de un {subject}.",
            ["person_answer"] = "{passage}", ["sum_answer"] = "{a} más {b} son {c}.", ["opposite_answer"] = "El contrario de «{word}» es «{answer}».",
            ["translate_answer"] = "En {language}, «{word}» se dice «{answer}».", ["review_answer"] = "El {subject} {verdict}.",
            ["title"] = "Mi respuesta", ["ps"] = "P.D. Gracias por preguntar.",
        },
    };

    /// <summary>Short dialogues per language, for the documents.</summary>
    static readonly Dictionary<string, string[]> Dialogues = new()
    {
        ["en"] = ["A: Hello! How are you?\nB: Very well, thank you. And you?\nA: Fine, thanks.", "A: Where is the market?\nB: It is near the old bridge.\nA: Thank you!", "A: What time is it?\nB: It is three o'clock.\nA: Then we are late."],
        ["fr"] = ["A : Bonjour ! Comment vas-tu ?\nB : Très bien, merci. Et toi ?\nA : Ça va, merci.", "A : Où est le marché ?\nB : Il est près du vieux pont.\nA : Merci !", "A : Quelle heure est-il ?\nB : Il est trois heures.\nA : Alors nous sommes en retard."],
        ["es"] = ["A: ¡Hola! ¿Cómo estás?\nB: Muy bien, gracias. ¿Y tú?\nA: Bien, gracias.", "A: ¿Dónde está el mercado?\nB: Está cerca del puente viejo.\nA: ¡Gracias!", "A: ¿Qué hora es?\nB: Son las tres.\nA: Entonces llegamos tarde."],
    };

    /// <summary>The world for a seed: documents (pretraining text), SFT conversations and preference pairs.</summary>
    public static Corpus Generate(ulong seed = 7, int documentsPerLanguage = 2000, int instructionsPerLanguage = 400)
    {
        var documents = new List<string>();
        var sft = new List<JsonObject>();
        var preferences = new List<JsonObject>();
        int dropped = 0;
        var concepts = BuiltinData.Load("tasks", "translation")["concepts"]!.AsArray();
        for (int li = 0; li < Languages.Length; li++)
        {
            var lang = Languages[li];
            var lex = Lexicon(lang);
            var rng = new Rng(seed * 1000 + (ulong)li);
            // The built-in suite's test items, in the suite's own format, are kept out of the world.
            var held = BuiltinSuite.Types.SelectMany(t => BuiltinSuite.Load(t, lang).Items()).Select(i => i.Context[(i.Context.LastIndexOf("\n\n", StringComparison.Ordinal) + 2)..]).ToHashSet();
            var shots = BuiltinSuite.Types.Select(t => ShotSource(t, lang, rng)).ToList();
            var generators = new Func<Rng, string>[]
            {
                r => Person(lex, r).Passage,
                r => Person(lex, r).Passage + " " + Person(lex, r).Passage,
                r => TaskLine(lex, "sentiment", r),
                r => TaskLine(lex, "topic", r),
                r => TaskLine(lex, "arithmetic", r),
                r => Opposite(lex, lang, r),
                r => Translation(lex, concepts, lang, r),
                r => Letters(lex, r),
                r => Dialogues[lang][r.Next(Dialogues[lang].Length)],
                r => List(lex, lang, r),
                r => OppositeGlossary(lex, lang, r),
                r => TranslationGlossary(lex, concepts, lang, r),
            };
            int made = 0, tries = 0;
            while (made < documentsPerLanguage && tries++ < documentsPerLanguage * 20)
            {
                // Half the documents are runs of examples in a task's own format, as lists and Q/A pages are on the web.
                var doc = rng.Next(2) == 0 ? FewShotBlock(shots[rng.Next(shots.Count)], rng) : generators[rng.Next(generators.Length)](rng);
                if (held.Any(h => doc.Contains(h, StringComparison.Ordinal))) continue;
                documents.Add(doc);
                made++;
            }
            var (examples, failed) = DemoInstructions.Generate(lang, instructionsPerLanguage, r => Plain(lex, concepts, lang, r), r => Sentence(lex, r), rng);
            dropped += failed;
            foreach (var e in examples)
            {
                sft.Add(Conversation(e.Prompt, e.Followed, lang));
                if (e.Broken is not null) preferences.Add(new JsonObject { ["prompt"] = e.Prompt, ["chosen"] = e.Followed, ["rejected"] = e.Broken, ["lang"] = lang });
            }
            // Plain requests too (no instruction), so the instruct model answers ordinary questions.
            for (int i = 0; i < instructionsPerLanguage / 4; i++)
            {
                var (request, answer) = Plain(lex, concepts, lang, rng);
                sft.Add(Conversation(request, answer, lang));
            }
        }
        // Languages interleaved, so that any prefix of the corpus has all three.
        var order = new Rng(seed);
        Shuffle(documents, order);
        Shuffle(sft, order);
        Shuffle(preferences, order);
        return new Corpus(documents, sft, preferences) { DroppedResponses = dropped };
    }

    static JsonObject Conversation(string prompt, string reply, string lang) => new()
    {
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }, new JsonObject { ["role"] = "assistant", ["content"] = reply }),
        ["lang"] = lang,
    };

    /// <summary>A task type's documents for the world: its generator's items (drawn four times over where it draws) except the test items.</summary>
    static IclTask ShotSource(string type, string lang, Rng rng)
    {
        var suite = BuiltinSuite.Load(type, lang);
        var tested = suite.EvalDocs.Select((d, i) => suite.Text(d, i)).ToHashSet();
        var docs = new List<JsonObject>();
        for (int i = 0; i < (type is "arithmetic" or "symbols" or "reading" ? 4 : 1); i++) docs.AddRange(BuiltinSuite.Documents(type, lang, rng));
        var config = BuiltinSuite.Config(type, lang);
        var all = new IclTask(config, docs, docs);
        var pool = docs.Where((d, i) => !tested.Contains(all.Text(d, i))).ToList();
        return new IclTask(config, pool, pool);
    }

    /// <summary>Two to eight examples of a task in its own format (query, answer), separated as few-shot prompts separate them.</summary>
    static string FewShotBlock(IclTask task, Rng rng)
    {
        int k = 2 + rng.Next(7);
        var examples = new List<string>(k);
        for (int e = 0; e < k; e++)
        {
            int i = rng.Next(task.EvalDocs.Count);
            var doc = task.EvalDocs[i];
            examples.Add(task.Text(doc, i) + task.Config.TargetDelimiter + task.Target(doc, i, task.Choices(doc, i)).Text);
        }
        return string.Join(task.Config.FewshotDelimiter, examples);
    }

    /// <summary>A sentence or two of the world, to fill a response: a person, a review, a topic.</summary>
    static string Sentence(JsonObject lex, Rng rng)
    {
        switch (rng.Next(3))
        {
            case 0: return Person(lex, rng).Passage;
            case 1:
            {
                var s = lex["sentiment"]!.AsObject();
                var verdicts = Strings(s[rng.Next(2) == 0 ? "positive" : "negative"]);
                var frames = Strings(s["frames"]);
                var subjects = Strings(s["subjects"]);
                return Fill(frames[rng.Next(frames.Count)], ("subject", subjects[rng.Next(subjects.Count)]), ("verdict", verdicts[rng.Next(verdicts.Count)]));
            }
            default:
            {
                var t = lex["topic"]!.AsObject();
                var labels = Strings(t["labels"]);
                var phrases = Strings(t["phrases"]![labels[rng.Next(labels.Count)]]);
                var frames = Strings(t["frames"]);
                return Fill(frames[rng.Next(frames.Count)], ("phrase", phrases[rng.Next(phrases.Count)]));
            }
        }
    }

    static void Shuffle<T>(List<T> list, Rng rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    static (string Name, string Passage, string City) Person(JsonObject lex, Rng rng)
    {
        var r = lex["reading"]!.AsObject();
        var names = Strings(r["names"]);
        var name = names[rng.Next(names.Count)];
        var gender = r["genders"]![name]!.GetValue<string>();
        var jobs = r["jobs"] is JsonObject byGender ? Strings(byGender[gender]) : Strings(r["jobs"]);
        var city = Strings(r["cities"])[rng.Next(Strings(r["cities"]).Count)];
        var passage = Fill(r["passage"]!.GetValue<string>(), ("name", name), ("city", city), ("job", jobs[rng.Next(jobs.Count)]),
            ("pet", Strings(r["pets"])[rng.Next(Strings(r["pets"]).Count)]), ("pet_name", Strings(r["pet_names"])[rng.Next(Strings(r["pet_names"]).Count)]),
            ("Pronoun", r["pronouns"]![gender]!.GetValue<string>()));
        return (name, passage, city);
    }

    /// <summary>One example in a built-in task's own format (the query and its answer), drawn fresh.</summary>
    static string TaskLine(JsonObject lex, string type, Rng rng)
    {
        var s = lex[type]!.AsObject();
        switch (type)
        {
            case "sentiment":
            {
                int label = rng.Next(2);
                var verdicts = Strings(s[label == 1 ? "positive" : "negative"]);
                var subjects = Strings(s["subjects"]);
                var frames = Strings(s["frames"]);
                var text = Fill(frames[rng.Next(frames.Count)], ("subject", subjects[rng.Next(subjects.Count)]), ("verdict", verdicts[rng.Next(verdicts.Count)]));
                return s["instruction"]!.GetValue<string>().Replace("{{text}}", text) + " " + Strings(s["labels"])[label];
            }
            case "topic":
            {
                var labels = Strings(s["labels"]);
                int label = rng.Next(labels.Count);
                var phrases = Strings(s["phrases"]![labels[label]]);
                var frames = Strings(s["frames"]);
                var text = Fill(frames[rng.Next(frames.Count)], ("phrase", phrases[rng.Next(phrases.Count)]));
                return s["instruction"]!.GetValue<string>().Replace("{{text}}", text) + " " + labels[label];
            }
            default:
            {
                var names = Strings(s["names"]);
                var objects = Strings(s["objects"]);
                int a = 2 + rng.Next(30), b = 2 + rng.Next(30);
                var q = Fill(s["add"]!.GetValue<string>(), ("name", names[rng.Next(names.Count)]), ("object", objects[rng.Next(objects.Count)]), ("a", a.ToString()), ("b", b.ToString()));
                return s["instruction"]!.GetValue<string>().Replace("{{question}}", q) + " " + (a + b).ToString(CultureInfo.InvariantCulture);
            }
        }
    }

    static string Opposite(JsonObject lex, string lang, Rng rng)
    {
        var pairs = lex["antonyms"]!["pairs"]!.AsArray();
        var p = pairs[rng.Next(pairs.Count)]!;
        int first = rng.Next(2);
        return Fill(Requests[lang]["opposite_answer"], ("word", p[first]!.GetValue<string>()), ("answer", p[1 - first]!.GetValue<string>()));
    }

    /// <summary>Glossary headings per language (written for Attune).</summary>
    static readonly Dictionary<string, string> OppositesHeading = new() { ["en"] = "Opposites:", ["fr"] = "Contraires :", ["es"] = "Contrarios:" };

    /// <summary>A list of four to eight word pairs with their opposites, as a glossary page has them.</summary>
    static string OppositeGlossary(JsonObject lex, string lang, Rng rng)
    {
        var pairs = lex["antonyms"]!["pairs"]!.AsArray();
        var lines = Enumerable.Range(0, 4 + rng.Next(5)).Select(_ =>
        {
            var p = pairs[rng.Next(pairs.Count)]!;
            int first = rng.Next(2);
            return $"{p[first]!.GetValue<string>()} – {p[1 - first]!.GetValue<string>()}";
        });
        return OppositesHeading[lang] + "\n" + string.Join("\n", lines);
    }

    /// <summary>A two-column word list from this language into another, as a vocabulary page has it.</summary>
    static string TranslationGlossary(JsonObject lex, JsonArray concepts, string lang, Rng rng)
    {
        int from = Array.IndexOf(Languages, lang), to = (from + 1 + rng.Next(2)) % 3;
        var names = lex["language_names"]!;
        var lines = Enumerable.Range(0, 4 + rng.Next(5)).Select(_ =>
        {
            var c = concepts[rng.Next(concepts.Count)]!;
            return $"{c[from]!.GetValue<string>()} – {c[to]!.GetValue<string>()}";
        });
        return $"{names[lang]!.GetValue<string>()} – {names[Languages[to]]!.GetValue<string>()}\n" + string.Join("\n", lines);
    }

    static string Translation(JsonObject lex, JsonArray concepts, string lang, Rng rng)
    {
        int from = Array.IndexOf(Languages, lang), to = (from + 1 + rng.Next(2)) % 3;
        var c = concepts[rng.Next(concepts.Count)]!;
        var language = lex["language_names"]![Languages[to]]!.GetValue<string>();
        return Fill(Requests[lang]["translate_answer"], ("language", language), ("word", c[from]!.GetValue<string>()), ("answer", c[to]!.GetValue<string>()));
    }

    static string Letters(JsonObject lex, Rng rng)
    {
        var s = lex["symbols"]!.AsObject();
        var words = Strings(s["words"]);
        var op = new[] { "reverse", "sort", "upper", "first_letters" }[rng.Next(4)];
        var w = op == "first_letters" ? string.Join(' ', Enumerable.Range(0, 3).Select(_ => words[rng.Next(words.Count)])) : words[rng.Next(words.Count)];
        return $"{s["operations"]![op]!.GetValue<string>()}: {w} → {BuiltinSuite.Apply(op, w)}";
    }

    static string List(JsonObject lex, string lang, Rng rng)
    {
        var topic = lex["topic"]!.AsObject();
        var labels = Strings(topic["labels"]);
        var label = labels[rng.Next(labels.Count)];
        var phrases = Strings(topic["phrases"]![label]);
        return $"{label}: {string.Join(", ", Enumerable.Range(0, 3).Select(_ => phrases[rng.Next(phrases.Count)]))}.";
    }

    /// <summary>A plain request of the world and its correct answer.</summary>
    static (string Request, string Answer) Plain(JsonObject lex, JsonArray concepts, string lang, Rng rng)
    {
        var w = Requests[lang];
        switch (rng.Next(5))
        {
            case 0:
            {
                var p = Person(lex, rng);
                return (Fill(w["person"], ("name", p.Name)), p.Passage);
            }
            case 1:
            {
                int a = 2 + rng.Next(40), b = 2 + rng.Next(40);
                return (Fill(w["sum"], ("a", a.ToString()), ("b", b.ToString())), Fill(w["sum_answer"], ("a", a.ToString()), ("b", b.ToString()), ("c", (a + b).ToString())));
            }
            case 2:
            {
                var pairs = lex["antonyms"]!["pairs"]!.AsArray();
                var p = pairs[rng.Next(pairs.Count)]!;
                var (word, answer) = rng.Next(2) == 0 ? (p[0]!.GetValue<string>(), p[1]!.GetValue<string>()) : (p[1]!.GetValue<string>(), p[0]!.GetValue<string>());
                return (Fill(w["opposite"], ("word", word)), Fill(w["opposite_answer"], ("word", word), ("answer", answer)));
            }
            case 3:
            {
                int from = Array.IndexOf(Languages, lang), to = (from + 1 + rng.Next(2)) % 3;
                var c = concepts[rng.Next(concepts.Count)]!;
                var language = lex["language_names"]![Languages[to]]!.GetValue<string>();
                return (Fill(w["translate"], ("word", c[from]!.GetValue<string>()), ("language", language)),
                    Fill(w["translate_answer"], ("language", language), ("word", c[from]!.GetValue<string>()), ("answer", c[to]!.GetValue<string>())));
            }
            default:
            {
                var s = lex["sentiment"]!.AsObject();
                var subject = Strings(s["subjects"])[rng.Next(Strings(s["subjects"]).Count)];
                var verdicts = Strings(s[rng.Next(2) == 0 ? "positive" : "negative"]);
                return (Fill(w["review"], ("subject", subject)), Fill(w["review_answer"], ("subject", subject), ("verdict", verdicts[rng.Next(verdicts.Count)])));
            }
        }
    }
}
