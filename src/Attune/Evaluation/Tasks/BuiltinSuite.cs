using System.Text.Json.Nodes;
using Attune.Tensors;
using static Attune.Evaluation.BuiltinData;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Tasks;

/// <summary>
/// Attune's own few-shot suite in English, French and Spanish: nine classic task types, each built
/// from the project's word lists (data/tasks/{lang}.json, data/tasks/translation.json) by templates
/// whose labels follow from construction — sentiment, topic, natural-language inference and paraphrase
/// (multiple choice), antonyms, word translation, arithmetic word problems, symbol manipulation and
/// reading comprehension (generation). Each task has 150 test items and a separate few-shot pool,
/// drawn with a fixed seed, so every machine evaluates the same items.
/// </summary>
public static class BuiltinSuite
{
    public const int TestItems = 150;
    public const int Shots = 5;
    public static readonly IReadOnlyList<string> Types =
        ["sentiment", "topic", "nli", "paraphrase", "antonyms", "translation", "arithmetic", "symbols", "reading"];
    public static readonly IReadOnlyList<string> Languages = ["en", "fr", "es"];

    /// <summary>Tasks named by <c>builtin:all</c>, <c>builtin:TYPE</c> or <c>builtin:TYPE_LANG</c>.</summary>
    public static List<IclTask> Resolve(string name)
    {
        var what = name["builtin:".Length..];
        if (what == "all") return [.. from t in Types from l in Languages select Load(t, l)];
        var parts = what.Split('_');
        if (Types.Contains(what)) return [.. Languages.Select(l => Load(what, l))];
        if (parts.Length == 2 && Types.Contains(parts[0]) && Languages.Contains(parts[1])) return [Load(parts[0], parts[1])];
        throw new AttuneException(null, "--tasks", $"\"{name}\" is not builtin:all, builtin:TYPE or builtin:TYPE_LANG (types: {string.Join(", ", Types)}; languages: {string.Join(", ", Languages)})");
    }

    /// <summary>One built-in task: its configuration (as a harness YAML would give it) and its documents.</summary>
    public static IclTask Load(string type, string language)
    {
        var rng = new Rng(0x5EED_0000UL + (ulong)Types.ToList().IndexOf(type) * 16 + (ulong)Languages.ToList().IndexOf(language));
        var docs = Documents(type, language, rng);
        Shuffle(docs, rng);
        // Identical texts would make a few-shot example give the answer away; keep the first of each.
        docs = docs.GroupBy(d => d["text"]?.ToString() + "\u0001" + d["premise"] + d["hypothesis"] + d["sentence1"] + d["sentence2"] + d["word"] + d["target"] + d["question"] + d["passage"] + d["input"] + d["operation"])
            .Select(g => g.First()).ToList();
        int pool = Math.Min(docs.Count - TestItems, 40);
        if (pool < Shots + 1) throw new InvalidOperationException($"built-in {type}_{language} has only {docs.Count} distinct items");
        var test = docs.Take(TestItems).ToList();
        var train = docs.Skip(TestItems).Take(pool).ToList();
        return new IclTask(Config(type, language), test, train);
    }

    /// <summary>
    /// The documents a task type's generator makes for a language, in construction order: every combination of the
    /// word lists for the enumerated types, and draws from <paramref name="rng"/> for arithmetic, symbols and reading.
    /// <see cref="Load"/> splits them into the test items and the few-shot pool; the demo world draws its own.
    /// </summary>
    public static List<JsonObject> Documents(string type, string language, Rng rng)
    {
        var data = BuiltinData.Load("tasks", language);
        var section = data[type]?.AsObject() ?? throw new AttuneException(null, "--tasks", $"no built-in {type} task");
        return type switch
        {
            "sentiment" => Sentiment(section),
            "topic" => Topic(section),
            "nli" => Nli(section),
            "paraphrase" => Paraphrase(section),
            "antonyms" => Antonyms(section),
            "translation" => Translation(data, language),
            "arithmetic" => Arithmetic(section, rng),
            "symbols" => Symbols(section, rng),
            "reading" => Reading(section, rng),
            _ => throw new AttuneException(null, "--tasks", $"no built-in {type} task"),
        };
    }

    /// <summary>A built-in task type's configuration (as a harness YAML would give it) for one language.</summary>
    public static TaskConfig Config(string type, string language)
    {
        var section = BuiltinData.Load("tasks", language)[type]!.AsObject();
        var instruction = section["instruction"]?.GetValue<string>() ?? "";
        bool choice = type is "sentiment" or "topic" or "nli" or "paraphrase";
        return new TaskConfig
        {
            Name = $"{type}_{language}",
            Source = "builtin",
            Language = language,
            DataFiles = new Dictionary<string, IReadOnlyList<string>>(),
            EvalSplit = "test",
            FewshotSplit = "train",
            OutputType = choice ? OutputType.MultipleChoice : OutputType.GenerateUntil,
            DocToText = JsonValue.Create(instruction),
            DocToTarget = JsonValue.Create(choice ? "label" : "answer"),
            DocToChoice = choice ? new JsonArray(Strings(section["labels"]).Select(l => (JsonNode)l).ToArray()) : null,
            NumFewshot = Shots,
            Until = ["\n"],
            MaxGenTokens = 24,
            Metrics = type switch
            {
                _ when choice => [new MetricSpec("acc"), new MetricSpec("acc_norm")],
                "reading" => [new MetricSpec("exact_match", IgnoreCase: true, IgnorePunctuation: true), new MetricSpec("f1")],
                "translation" => [new MetricSpec("exact_match", IgnoreCase: true, IgnorePunctuation: true), new MetricSpec("chrf")],
                _ => [new MetricSpec("exact_match", IgnoreCase: true, IgnorePunctuation: type != "symbols")],
            },
            FilterPipelines = choice ? [] : type == "arithmetic"
                ? [new FilterPipeline("answer", [new FilterStep("regex", @"(-?\d+)"), new FilterStep("take_first")])]
                : [new FilterPipeline("answer", [new FilterStep("remove_whitespace"), new FilterStep("take_first")])],
        };
    }

    static void Shuffle<T>(List<T> list, Rng rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    static List<JsonObject> Sentiment(JsonObject s)
    {
        var docs = new List<JsonObject>();
        foreach (var subject in Strings(s["subjects"]))
            foreach (var (verdicts, label) in new[] { (Strings(s["negative"]), 0), (Strings(s["positive"]), 1) })
                foreach (var verdict in verdicts)
                    foreach (var frame in Strings(s["frames"]))
                        docs.Add(new JsonObject { ["text"] = Fill(frame, ("subject", subject), ("verdict", verdict)), ["label"] = label });
        return docs;
    }

    static List<JsonObject> Topic(JsonObject s)
    {
        var labels = Strings(s["labels"]);
        var docs = new List<JsonObject>();
        var phrases = s["phrases"]!.AsObject();
        for (int l = 0; l < labels.Count; l++)
            foreach (var phrase in Strings(phrases[labels[l]]))
                foreach (var frame in Strings(s["frames"]))
                    docs.Add(new JsonObject { ["text"] = Fill(frame, ("phrase", phrase)), ["label"] = l });
        return docs;
    }

    /// <summary>Labels: 0 true (entailed), 1 neither, 2 false (contradicted).</summary>
    static List<JsonObject> Nli(JsonObject s)
    {
        var docs = new List<JsonObject>();
        foreach (var name in Strings(s["names"]))
            foreach (var item in s["items"]!.AsArray())
                foreach (var number in Strings(s["numbers"]))
                {
                    var (thing, category) = (item![0]!.GetValue<string>(), item[1]!.GetValue<string>());
                    var fill = new[] { ("name", name), ("number", number), ("item", thing), ("category", category) };
                    var premise = Fill(s["premise"]!.GetValue<string>(), fill);
                    foreach (var (kind, label) in new[] { ("entailment", 0), ("neutral", 1), ("contradiction", 2) })
                        docs.Add(new JsonObject { ["premise"] = premise, ["hypothesis"] = Fill(s[kind]!.GetValue<string>(), fill), ["label"] = label });
                }
        return docs;
    }

    /// <summary>Labels: 1 when the second sentence swaps a word for a synonym, 0 for an opposite.</summary>
    static List<JsonObject> Paraphrase(JsonObject s)
    {
        var docs = new List<JsonObject>();
        foreach (var frame in s["frames"]!.AsArray())
            foreach (var name in Strings(s["names"]))
                foreach (var (pairs, label) in new[] { (frame!["same"]!.AsArray(), 1), (frame["different"]!.AsArray(), 0) })
                    foreach (var pair in pairs)
                    {
                        var text = frame["text"]!.GetValue<string>();
                        var first = Fill(text, ("name", name), ("a", pair![0]!.GetValue<string>()));
                        var second = Fill(text, ("name", name), ("a", pair[1]!.GetValue<string>()));
                        docs.Add(new JsonObject { ["sentence1"] = first, ["sentence2"] = second, ["label"] = label });
                        docs.Add(new JsonObject { ["sentence1"] = second, ["sentence2"] = first, ["label"] = label });
                    }
        return docs;
    }

    static List<JsonObject> Antonyms(JsonObject s) =>
        s["pairs"]!.AsArray().SelectMany(p => new[]
        {
            new JsonObject { ["word"] = p![0]!.GetValue<string>(), ["answer"] = p[1]!.GetValue<string>() },
            new JsonObject { ["word"] = p[1]!.GetValue<string>(), ["answer"] = p[0]!.GetValue<string>() },
        }).ToList();

    static List<JsonObject> Translation(JsonObject data, string language)
    {
        var concepts = BuiltinData.Load("tasks", "translation")["concepts"]!.AsArray();
        int from = Languages.ToList().IndexOf(language);
        var names = data["language_names"]!.AsObject();
        var docs = new List<JsonObject>();
        foreach (var c in concepts)
            for (int to = 0; to < Languages.Count; to++)
                if (to != from)
                    docs.Add(new JsonObject
                    {
                        ["word"] = c![from]!.GetValue<string>(), ["target"] = Languages[to],
                        ["target_name"] = names[Languages[to]]!.GetValue<string>(), ["answer"] = c[to]!.GetValue<string>(),
                    });
        return docs;
    }

    static List<JsonObject> Arithmetic(JsonObject s, Rng rng)
    {
        var names = Strings(s["names"]);
        var objects = Strings(s["objects"]);
        var docs = new List<JsonObject>();
        for (int i = 0; i < 3 * (TestItems + 40); i++)
        {
            var op = (i % 3) switch { 0 => "add", 1 => "subtract", _ => "multiply" };
            int a, b, answer;
            if (op == "multiply") { a = 2 + rng.Next(8); b = 2 + rng.Next(8); answer = a * b; }
            else if (op == "add") { a = 2 + rng.Next(30); b = 2 + rng.Next(30); answer = a + b; }
            else { a = 10 + rng.Next(30); b = 1 + rng.Next(a - 1); answer = a - b; }
            var question = Fill(s[op]!.GetValue<string>(), ("name", names[rng.Next(names.Count)]), ("object", objects[rng.Next(objects.Count)]),
                ("a", a.ToString()), ("b", b.ToString()));
            docs.Add(new JsonObject { ["question"] = question, ["answer"] = answer.ToString() });
        }
        return docs;
    }

    /// <summary>The result of a symbol operation, by its definition.</summary>
    public static string Apply(string operation, string input) => operation switch
    {
        "reverse" => new string(input.Reverse().ToArray()),
        "sort" => new string(input.Order().ToArray()),
        "first_letters" => string.Concat(input.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => w[0])),
        "upper" => input.ToUpperInvariant(),
        _ => throw new ArgumentException(operation),
    };

    static List<JsonObject> Symbols(JsonObject s, Rng rng)
    {
        var words = Strings(s["words"]);
        var names = s["operations"]!.AsObject();
        var docs = new List<JsonObject>();
        foreach (var op in new[] { "reverse", "sort", "upper" })
            foreach (var w in words)
                docs.Add(new JsonObject { ["operation"] = names[op]!.GetValue<string>(), ["op"] = op, ["input"] = w, ["answer"] = Apply(op, w) });
        for (int i = 0; i < TestItems; i++)
        {
            var input = string.Join(' ', Enumerable.Range(0, 3).Select(_ => words[rng.Next(words.Count)]));
            docs.Add(new JsonObject { ["operation"] = names["first_letters"]!.GetValue<string>(), ["op"] = "first_letters", ["input"] = input, ["answer"] = Apply("first_letters", input) });
        }
        return docs;
    }

    static List<JsonObject> Reading(JsonObject s, Rng rng)
    {
        var names = Strings(s["names"]);
        var genders = s["genders"]!.AsObject();
        var docs = new List<JsonObject>();
        var fields = new[] { "city", "job", "pet_name" };
        for (int i = 0; i < TestItems + 60; i++)
        {
            var name = names[rng.Next(names.Count)];
            var gender = genders[name]!.GetValue<string>();
            var jobs = s["jobs"] is JsonObject byGender ? Strings(byGender[gender]) : Strings(s["jobs"]);
            var values = new Dictionary<string, string>
            {
                ["name"] = name,
                ["city"] = Strings(s["cities"])[rng.Next(8)],
                ["job"] = jobs[rng.Next(jobs.Count)],
                ["pet"] = Strings(s["pets"])[rng.Next(Strings(s["pets"]).Count)],
                ["pet_name"] = Strings(s["pet_names"])[rng.Next(Strings(s["pet_names"]).Count)],
                ["Pronoun"] = s["pronouns"]![gender]!.GetValue<string>(),
            };
            var passage = Fill(s["passage"]!.GetValue<string>(), values.Select(kv => (kv.Key, kv.Value)).ToArray());
            var field = fields[i % 3];
            var question = Fill(s["questions"]![field]!.GetValue<string>(), ("name", name));
            docs.Add(new JsonObject { ["passage"] = passage, ["question"] = question, ["field"] = field, ["answer"] = values[field] });
        }
        return docs;
    }
}
