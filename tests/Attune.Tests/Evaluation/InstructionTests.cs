using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Evaluation.Instructions;

namespace Attune.Tests.Evaluation;

public class InstructionTests
{
    /// <summary>Each checker with a response that follows it and one that does not.</summary>
    public static TheoryData<string, string, string, string, string> Cases => new()
    {
        { "keywords:existence", """{"keywords":["river","stone"]}""", "en", "The river ran past a Stone wall.", "The river ran past a wall." },
        { "keywords:existence", """{"keywords":["rivière"]}""", "fr", "Les Rivières coulent.", "Les fleuves coulent." },
        { "keywords:forbidden_words", """{"forbidden_words":["sea"]}""", "en", "Seaside towns are quiet.", "The sea is calm." },
        { "keywords:frequency", """{"keyword":"luz","frequency":2,"relation":"at least"}""", "es", "La luz entra; luz de mañana.", "La luz entra por la ventana." },
        { "keywords:frequency", """{"keyword":"cat","frequency":2,"relation":"less than"}""", "en", "One cat.", "A cat and a cat." },
        { "keywords:letter_frequency", """{"letter":"é","let_frequency":3,"let_relation":"at least"}""", "fr", "Été, café, thé.", "Un café." },
        { "language:response_language", """{"language":"fr"}""", "fr", "Je pense que la réponse est simple et que nous pouvons la trouver ensemble.", "I think the answer is simple and that we can find it together." },
        { "language:response_language", """{"language":"es"}""", "es", "Creo que la respuesta es muy sencilla y que la podemos encontrar con calma.", "Je pense que la réponse est simple et que nous pouvons la trouver." },
        { "length_constraints:number_words", """{"num_words":5,"relation":"less than"}""", "fr", "Aujourd'hui il pleut.", "Il pleut beaucoup sur la ville aujourd'hui." },
        { "length_constraints:number_words", """{"num_words":4,"relation":"at least"}""", "en", "A well-known fact holds.", "Too short." },
        { "length_constraints:number_sentences", """{"num_sentences":3,"relation":"at least"}""", "en", "Mr. Smith left. He came back at 3.5 p.m. today. Then he slept.", "Mr. Smith left. He came back." },
        { "length_constraints:number_sentences", """{"num_sentences":2,"relation":"less than"}""", "es", "El Sr. Gómez llegó tarde.", "¿Vienes? ¡Claro que sí!" },
        { "length_constraints:number_paragraphs", """{"num_paragraphs":2}""", "en", "First part.\n***\nSecond part.\n***", "First part.\n***\n\n***\nSecond part." },
        { "length_constraints:nth_paragraph_first_word", """{"num_paragraphs":2,"nth_paragraph":2,"first_word":"entonces"}""", "es", "Primero.\n\nEntonces, sí.", "Primero.\n\nLuego, sí." },
        // In Spanish the "first word" may be several.
        { "length_constraints:nth_paragraph_first_word", """{"num_paragraphs":2,"nth_paragraph":2,"first_word":"por lo tanto"}""", "es", "Primero.\n\nPor lo tanto, sí.", "Primero.\n\nPor eso, sí." },
        { "detectable_format:number_bullet_lists", """{"num_bullets":2}""", "en", "Items:\n* one\n- two", "Items:\n* one\n* two\n* three" },
        // Spanish bullets are asterisks only.
        { "detectable_format:number_bullet_lists", """{"num_bullets":2}""", "es", "Lista:\n* uno\n- otro\n* dos", "Lista:\n* uno\n- dos" },
        { "detectable_format:multiple_sections", """{"section_spliter":"SECCIÓN","num_sections":2}""", "es", "SECCIÓN 1\nHola.\nSECCIÓN 2\nAdiós.", "SECCIÓN 1\nHola y adiós." },
        { "detectable_format:number_highlighted_sections", """{"num_highlights":2}""", "en", "This is *key* and *also key*.", "This is *key* only." },
        { "detectable_format:title", "{}", "en", "<<The lighthouse>>\nOnce upon a time.", "The lighthouse\nOnce upon a time." },
        // M-IFEval's French titles are between double hashes.
        { "detectable_format:title", "{}", "fr", "##Le phare##\nIl était une fois.", "<<Le phare>>\nIl était une fois." },
        { "detectable_format:json_format", "{}", "en", "```json\n{\"a\": 1}\n```", "Here is JSON: {\"a\": 1}" },
        // The options each language's prompts list: "My answer is yes." in English, "Oui." in French, "Sí." in Spanish.
        { "detectable_format:constrained_response", "{}", "es", "Sí. Es la mejor opción.", "Sí, claro." },
        { "detectable_format:constrained_response", "{}", "fr", "Peut-être. Cela dépend.", "Peut-être, cela dépend." },
        { "detectable_format:constrained_response", "{}", "en", "My answer is no.", "No." },
        { "detectable_content:number_placeholders", """{"num_placeholders":2}""", "en", "Dear [name], see you at [place].", "Dear [name], see you soon." },
        { "detectable_content:number_placeholders", """{"num_placeholders":1,"relation":"como máximo"}""", "es", "Querido [nombre], hasta pronto.", "Querido [nombre], nos vemos en [lugar]." },
        { "detectable_content:postscript", """{"postscript_marker":"P.S."}""", "fr", "Merci.\n\nP.S. À demain.", "Merci, à demain." },
        { "detectable_content:postscript", """{"postscript_marker":"P.D."}""", "es", "Gracias.\nP.D. Hasta mañana.", "Gracias.\nPD Hasta mañana." },
        { "startend:end_checker", """{"end_phrase":"À bientôt."}""", "fr", "C'était bien. À bientôt.", "À bientôt. C'était bien." },
        // M-IFEval's Spanish check forgives a final period after the phrase.
        { "startend:end_checker", """{"end_phrase":"Un saludo"}""", "es", "Gracias. Un saludo.", "Un saludo. Gracias." },
        { "startend:start_checker", """{"start_phrase":"Para empezar"}""", "es", "Para empezar, hay que leer.", "Hay que leer, para empezar." },
        { "startend:quotation", "{}", "fr", "« Bonjour à tous »", "Bonjour « à tous »" },
        // Capitals and lower case in the instruction's language.
        { "change_case:english_capital", "{}", "en", "THE WEATHER IS NICE TODAY AND WE ARE GOING TO THE PARK.", "THE WEATHER IS NICE today AND WE ARE GOING TO THE PARK." },
        { "change_case:english_capital", "{}", "en", "THE WEATHER IS NICE TODAY AND WE ARE GOING TO THE PARK.", "EL TIEMPO ES BUENO HOY Y VAMOS AL PARQUE CON LOS NIÑOS." },
        { "change_case:english_lowercase", "{}", "en", "the weather is nice today and we are going to the park.", "The weather is nice today and we are going to the park." },
        { "change_case:french_capital", "{}", "fr", "LE TEMPS EST BEAU AUJOURD'HUI ET NOUS ALLONS AU PARC AVEC LES ENFANTS.", "LE TEMPS EST BEAU aujourd'hui ET NOUS ALLONS AU PARC AVEC LES ENFANTS." },
        { "change_case:french_lowercase", "{}", "fr", "le temps est beau aujourd'hui et nous allons au parc avec les enfants en 2025 !", "the weather is nice today and we are going to the park." },
        { "change_case:spanish_capital", "{}", "es", "EL TIEMPO ES BUENO HOY Y VAMOS AL PARQUE CON LOS NIÑOS.", "EL TIEMPO ES BUENO HOY Y VAMOS AL PARQUE CON LOS niños." },
        { "change_case:spanish_lowercase", "{}", "es", "el tiempo es bueno hoy y vamos al parque con los niños.", "El tiempo es bueno hoy y vamos al parque con los niños." },
        { "change_case:capital_word_frequency", """{"capital_frequency":2,"capital_relation":"at least"}""", "en", "This is VERY VERY important.", "This is VERY important." },
        // As nltk's tokens: a single capital letter is a word in capitals, and a contraction is a token of its own.
        { "change_case:capital_word_frequency", """{"capital_frequency":3,"capital_relation":"at least"}""", "en", "I DON'T know.", "I don't know." },
        { "change_case:capital_word_frequency", """{"capital_frequency":2,"capital_relation":"moins de"}""", "fr", "C'est TRÈS bien.", "C'est TRÈS TRÈS bien." },
        { "change_case:capital_word_frequency", """{"capital_frequency":2,"capital_relation":"como máximo"}""", "es", "Es MUY MUY bueno.", "ES MUY MUY bueno." },
        { "punctuation:no_comma", "{}", "en", "No commas here.", "Well, here is one." },
        { "punctuation:question_marks", "{}", "es", "Dime, ¿qué hora es?", "Dime, qué hora es?" },
        { "punctuation:exclamation_marks", "{}", "es", "¡Qué bien!", "Qué bien!" },
        { "combination:repeat_prompt", """{"prompt_to_repeat":"Describe a cat."}""", "en", "Describe a cat. A cat is small.", "A cat is small." },
        { "combination:two_responses", "{}", "en", "First answer.\n******\nSecond answer.", "First answer.\n******\nFirst answer." },
        { "language_specific:accents_present", """{"min_accents":3}""", "fr", "L'été à la forêt.", "Le soleil brille." },
        // M-IFEval's French and Spanish instructions.
        { "special_character:ethel_or_cedilla", """{"forbidden_char":"ç"}""", "fr", "Cela commence.", "Ça commence." },
        { "special_character:no_accents", "{}", "fr", "L'ete a la foret.", "L'été à la forêt." },
        { "special_character:accents", """{"word_to_accentuate":{"ete":"été","foret":"forêt"}}""", "fr", "L'été à la forêt.", "L'ete à la forêt." },
        { "detectable_content:informal_address", "{}", "fr", "Souviens-toi de ce jour.", "Souvenez-vous de ce jour." },
        { "detectable_content:no_digits", "{}", "fr", "Vingt-deux ans.", "22 ans." },
        { "special_character:enie", """{"let_frequency":2}""", "es", "El niño y la niña.", "El niño y el chico." },
        { "special_character:dieresis", """{"let_frequency":1}""", "es", "Una cigüeña vuela.", "Una grulla vuela." },
        { "special_character:tildes", """{"num_words":2,"relation":"al menos"}""", "es", "Él está aquí.", "Él esta aqui." },
        { "language_specific:accents_absent", "{}", "es", "Manana vamos al rio.", "Mañana vamos al río." },
        { "language_specific:letter_present", """{"letter":"ç"}""", "fr", "Ça commence.", "Cela commence." },
        { "language_specific:letter_present", """{"letter":"ñ"}""", "es", "El niño juega.", "El chico juega." },
        { "language_specific:inverted_punctuation", "{}", "es", "¿Vienes mañana? ¡Qué bien! Te espero.", "Vienes mañana? Qué bien! Te espero." },
        { "language_specific:informal_address", "{}", "fr", "Tu peux venir quand tu veux, je t'attends.", "Vous pouvez venir quand vous voulez." },
        { "language_specific:informal_address", "{}", "fr", "Souviens-toi de ce jour.", "Souvenez-vous de ce jour." },
        { "language_specific:formal_address", "{}", "es", "Usted puede venir cuando quiera.", "Tú puedes venir cuando quieras." },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_checker_passes_a_following_response_and_fails_one_that_does_not(string id, string kwargs, string lang, string follows, string breaks)
    {
        var instruction = new Instruction(id, JsonNode.Parse(kwargs)!.AsObject());
        Assert.True(Checkers.Follows(instruction, follows, lang), $"{id} should accept: {follows}");
        Assert.False(Checkers.Follows(instruction, breaks, lang), $"{id} should refuse: {breaks}");
    }

    [Fact]
    public void Every_checker_has_cases_and_there_are_at_least_twenty_five()
    {
        var covered = Cases.Select(c => (string)c[0]).ToHashSet();
        Assert.All(Checkers.Ids, id => Assert.Contains(id, covered));
        Assert.True(Checkers.Ids.Count >= 25);
    }

    [Fact]
    public void Bad_arguments_and_unknown_instructions_name_themselves()
    {
        var e = Assert.Throws<AttuneException>(() => Checkers.Follows(new Instruction("keywords:frequency", new JsonObject { ["keyword"] = "x" }), "x", "en"));
        Assert.Contains("keywords:frequency", e.Message);
        Assert.Contains("frequency", e.Message);
        e = Assert.Throws<AttuneException>(() => Checkers.Follows(new Instruction("keywords:rhymes", []), "x", "en"));
        Assert.Contains("keywords:rhymes", e.Message);
    }

    [Theory]
    [InlineData("en", "Dr. Smith arrived at 10 a.m. on Monday. It rained. J. K. Rowling wrote e.g. novels! Did she?", 4)]
    [InlineData("fr", "M. Dupont est arrivé. Il pleuvait… puis, p. ex. le vent souffla. Fin.", 3)]
    [InlineData("en", "all lower case here. still one more. and a third!", 3)]
    [InlineData("fr", "Il y en a. Mais pas assez.", 2)]
    [InlineData("es", "El Sr. Pérez llegó. ¿Qué hora es? ¡Las tres! Luego, p. ej. llovió.", 4)]
    // Punkt does not end a sentence at a line break: a title or an item without a full stop runs on; a list
    // marker before a capitalised word is a sentence of its own.
    [InlineData("en", "<<A list>>\n* first item\n* second item\n\nThe end", 1)]
    [InlineData("en", "Steps:\n1. Open the door.\n2. Walk in.", 4)]
    [InlineData("en", "We met at 3. then we left.", 1)]
    // spaCy's Spanish sentences end at a line break too, but not after an abbreviation such as "etc.".
    [InlineData("es", "Título\nPrimera frase. Segunda frase.", 3)]
    [InlineData("es", "Libros, revistas, etc.\nPlan de trabajo.", 1)]
    public void Sentences_are_split_by_the_rules_of_each_language(string lang, string text, int expected) =>
        Assert.Equal(expected, TextUnits.Sentences(text, lang).Count);

    [Theory]
    [InlineData("L'homme est peut-être là, à 3.5 km_h.", 10)] // l, homme, est, peut, être, là, à, 3, 5, km_h: \w+ runs
    [InlineData("¿Qué año? ¡2025!", 3)]
    public void IFEval_counts_runs_of_word_characters(string text, int expected) => Assert.Equal(expected, TextUnits.IfevalWordCount(text));

    [Theory]
    [InlineData("¿Qué tal? Bien-estar, 1.000 € y 10 %.", 8)] // qué, tal, bien, estar, 1.000, €, y, 10; punctuation (% too) is not a word
    [InlineData("Hola  mundo", 3)] // the second space is a token of its own, as in spaCy
    [InlineData("l'agua EE.UU.", 2)]
    public void Spanish_words_are_spacy_tokens_without_punctuation(string text, int expected) => Assert.Equal(expected, TextUnits.SpacyWords(text).Count);

    [Theory]
    [InlineData("L'homme est peut-être là.", 5)] // l, homme, est, peut-être, là
    [InlineData("It's a well-known café — 3.5 stars.", 7)]
    [InlineData("¿Qué año? ¡2025!", 3)]
    public void Words_are_counted_across_languages(string text, int expected) => Assert.Equal(expected, TextUnits.Words(text).Count);

    [Theory]
    [InlineData("The weather is nice today and we are going to the park with the children.", "en")]
    [InlineData("Le temps est beau aujourd'hui et nous allons au parc avec les enfants.", "fr")]
    [InlineData("El tiempo es bueno hoy y vamos al parque con los niños.", "es")]
    [InlineData("OK.", "unknown")]
    [InlineData("Creo que sí, que es posible, pero no lo sé.", "es")]
    [InlineData("Nous avons vu le film et nous sommes sortis avant la fin.", "fr")]
    public void The_language_of_a_response_is_identified(string text, string expected) => Assert.Equal(expected, TextUnits.Identify(text));

    [Fact]
    public void Loose_scoring_forgives_a_preamble_and_markdown_emphasis()
    {
        var prompt = new IfPrompt("k", "en", "Start with Hello.", [new Instruction("startend:start_checker", new JsonObject { ["start_phrase"] = "Hello" })]);
        var item = IfEvaluation.Score(prompt, "Sure! Here you go:\n**Hello** there.");
        Assert.False(item.Strict[0]);
        Assert.True(item.Loose[0]);
        var summary = IfEvaluation.Summarize("en", [item, IfEvaluation.Score(prompt, "Hello there.")]);
        Assert.Equal(0.5, summary.PromptStrict.Value);
        Assert.Equal(1.0, summary.PromptLoose.Value);
        Assert.Equal((1, 2), summary.PerInstruction["startend:start_checker"]);
    }

    [Theory]
    [InlineData("en")]
    [InlineData("fr")]
    [InlineData("es")]
    public void The_built_in_suite_has_over_a_hundred_valid_prompts_per_language(string lang)
    {
        var prompts = IfSuite.BuiltIn(lang);
        Assert.True(prompts.Count >= 100);
        Assert.Equal(prompts.Count, prompts.Select(p => p.Prompt).Distinct().Count());
        foreach (var p in prompts)
        {
            Assert.Equal(lang, p.Language);
            Assert.InRange(p.Instructions.Count, 1, 3);
            foreach (var i in p.Instructions)
            {
                Checkers.Validate(i, lang);
                // The arguments the checker reads are written in the prompt (keywords, phrases, counts).
                foreach (var (name, value) in i.Kwargs)
                    if (name is not ("relation" or "let_relation" or "capital_relation" or "language" or "prompt_to_repeat"))
                        Assert.Contains(value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value is JsonArray a ? a[0]!.GetValue<string>() : value!.ToJsonString(), p.Prompt);
            }
        }
        // Every instruction the language's data phrases is used.
        var used = prompts.SelectMany(p => p.Instructions).Select(i => i.Id).ToHashSet();
        Assert.True(used.Count >= (lang == "en" ? 24 : 28), $"{used.Count} kinds used");
        // No prompt asks for two things that cannot both hold.
        foreach (var p in prompts)
        {
            var ids = p.Instructions.Select(i => i.Id).ToHashSet();
            Assert.False(ids.Contains("combination:repeat_prompt") && ids.Contains("punctuation:no_comma") && p.Prompt.Split(". ")[0].Contains(','), p.Prompt);
            Assert.False(ids.Contains("detectable_format:json_format") && ids.Contains("punctuation:no_comma"), p.Prompt);
            Assert.False(p.Instructions.Any(i => i.Id == "length_constraints:number_sentences" && i.Kwargs["relation"]!.ToString() == "less than")
                && ids.Contains("detectable_format:number_bullet_lists"), p.Prompt);
            foreach (var f in p.Instructions.Where(i => i.Id == "keywords:forbidden_words"))
                Assert.All(f.Kwargs["forbidden_words"]!.AsArray(), w => Assert.DoesNotContain(w!.GetValue<string>(), p.Prompt.Split(". ")[0], StringComparison.OrdinalIgnoreCase));
        }
        Assert.Equal(IfSuite.BuiltIn(lang).Select(p => p.Prompt), prompts.Select(p => p.Prompt)); // fixed seed
    }

    [Fact]
    public void An_IFEval_format_file_loads_with_nulls_and_a_default_language()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["if.jsonl"], """
            {"key": 1001, "prompt": "Write a haiku. Do not use commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"num_words": null}]}
            {"key": 1002, "prompt": "Écris deux phrases.", "instruction_id_list": ["length_constraints:number_sentences"], "kwargs": [{"num_sentences": 2, "relation": "at least"}], "lang": "fr"}
            """);
        var prompts = IfSuite.Load(tmp["if.jsonl"]);
        Assert.Equal(["en", "fr"], prompts.Select(p => p.Language));
        Assert.Equal("1001", prompts[0].Key);
        File.WriteAllText(tmp["bad.jsonl"], """{"prompt": "x", "instruction_id_list": ["keywords:frequency"], "kwargs": [{"keyword": "a"}]}""" + "\n");
        var e = Assert.Throws<AttuneException>(() => IfSuite.Load(tmp["bad.jsonl"]));
        Assert.Contains("line 1", e.Message);
        Assert.Contains("frequency", e.Message);
    }

    [Theory]
    [InlineData("Tell me about cats.", "", "en", CriticalError.Empty)]
    [InlineData("Tell me about cats.", "cats cats cats cats cats cats cats cats cats cats cats cats cats cats cats cats cats cats", "en", CriticalError.Repetition)]
    [InlineData("Parle-moi des chats.", "Cats are small animals that like to sleep all day and play at night.", "fr", CriticalError.WrongLanguage)]
    [InlineData("Tell me about cats.", "Here:\n```python\ndef cat():\n    return 1\n```", "en", CriticalError.UnaskedCode)]
    [InlineData("Write a python function that returns one.", "```python\ndef one():\n    return 1\n```", "en", CriticalError.None)]
    [InlineData("Tell me about cats.", "Cats are small animals that like to sleep all day.", "en", CriticalError.None)]
    public void Critical_errors_are_detected(string request, string response, string lang, CriticalError expected) =>
        Assert.Equal(expected, CriticalErrors.Detect(request, response, lang));
}
