using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Attune.Checkpoints;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Tasks;
using Attune.Experiments;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Text;
using Attune.Text.Templates;
using Attune.Training;

namespace Attune.Tests.Mutation;

/// <summary>
/// One input Attune reads: the file each mutated input replaces, the valid seed it is mutated from, how it is
/// mutated, and the library call that reads it (the one the CLI makes), which disposes what it opens.
/// </summary>
public sealed class MutationTarget
{
    public required string Name { get; init; }
    public required string File { get; init; }
    public required byte[] Seed { get; init; }
    public required Func<Mutator, byte[], byte[]> Mutate { get; init; }
    public required Action Load { get; init; }
    /// <summary>Files beside <see cref="File"/> that a load leaves and the next input must not see (SQLite's WAL).</summary>
    public IReadOnlyList<string> Scratch { get; init; } = [];
}

/// <summary>The seeds (a tiny checkpoint, its GGUF, data, task and results files, all made here) and a target for each parser.</summary>
public static class MutationTargets
{
    public static readonly string[] Names =
    [
        "safetensors", "safetensors index", "gguf", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "chat template", "sft jsonl", "dpo jsonl", "pretrain jsonl", "task yaml", "ifeval input", "judge set", "judge responses", "results store", "task parquet",
    ];

    /// <summary>Makes the seeds under <paramref name="dir"/> and returns the targets, in <see cref="Names"/> order.</summary>
    public static List<MutationTarget> Create(string dir)
    {
        var model = Path.Combine(dir, "seed-model");
        ModelInitializer.Write(model, Presets.Find("tiny", "llama").Config, seed: 5, DType.F32);
        var tokenizer = Tokenizer.Load(model);
        var eos = new HashSet<int> { tokenizer.EosId ?? 0 };
        int end = tokenizer.EosId ?? 0;

        string Copy(string name)
        {
            var to = Path.Combine(dir, name);
            Directory.CreateDirectory(to);
            foreach (var f in Directory.GetFiles(model)) System.IO.File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
            return to;
        }
        void LoadModel(string path)
        {
            using var lm = LanguageModel.Load(path);
        }
        MutationTarget ModelFile(string name, string fileName, Func<Mutator, byte[], byte[]> mutate)
        {
            var folder = Copy(name);
            var file = Path.Combine(folder, fileName);
            return new MutationTarget { Name = name, File = file, Seed = System.IO.File.ReadAllBytes(file), Mutate = mutate, Load = () => LoadModel(folder) };
        }

        var targets = new List<MutationTarget>
        {
            ModelFile("safetensors", SafeTensorsIndex.SingleFileName, SafeTensors),
        };

        var sharded = Path.Combine(dir, "safetensors index");
        ModelInitializer.Write(sharded, Presets.Find("tiny", "llama").Config, seed: 5, DType.F32, maxShardBytes: 200_000);
        var index = Path.Combine(sharded, SafeTensorsIndex.IndexFileName);
        targets.Add(new MutationTarget { Name = "safetensors index", File = index, Seed = System.IO.File.ReadAllBytes(index), Mutate = JsonFile, Load = () => LoadModel(sharded) });

        var gguf = Path.Combine(dir, "gguf", "model.gguf");
        Directory.CreateDirectory(Path.GetDirectoryName(gguf)!);
        GgufConverter.ToGguf(model, gguf, GgmlType.Q8_0);
        var ggufSeed = System.IO.File.ReadAllBytes(gguf);
        var ggufFields = GgufFields(ggufSeed);
        targets.Add(new MutationTarget { Name = "gguf", File = gguf, Seed = ggufSeed, Mutate = Binary(ggufFields), Load = () => LoadModel(gguf) });

        targets.Add(ModelFile("config.json", Checkpoint.ConfigFileName, JsonFile));
        targets.Add(ModelFile("generation_config.json", Checkpoint.GenerationConfigFileName, JsonFile));

        var tokFolder = Copy("tokenizer.json");
        targets.Add(new MutationTarget
        {
            Name = "tokenizer.json", File = Path.Combine(tokFolder, Checkpoint.TokenizerFileName),
            Seed = System.IO.File.ReadAllBytes(Path.Combine(tokFolder, Checkpoint.TokenizerFileName)), Mutate = JsonFile, Load = () => UseTokenizer(tokFolder),
        });
        var configFolder = Copy("tokenizer_config.json");
        var configFile = Path.Combine(configFolder, Checkpoint.TokenizerConfigFileName);
        targets.Add(new MutationTarget { Name = "tokenizer_config.json", File = configFile, Seed = System.IO.File.ReadAllBytes(configFile), Mutate = JsonFile, Load = () => UseTokenizer(configFolder) });
        var templateFolder = Copy("chat template");
        var templateFile = Path.Combine(templateFolder, Checkpoint.TokenizerConfigFileName);
        targets.Add(new MutationTarget { Name = "chat template", File = templateFile, Seed = System.IO.File.ReadAllBytes(templateFile), Mutate = Template, Load = () => UseTokenizer(templateFolder) });

        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(data);
        var sft = Write(Path.Combine(data, "sft.jsonl"), string.Join("\n",
            """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]}""",
            """{"prompt": "The capital of France is", "completion": " Paris."}""",
            """{"messages": [{"role": "user", "content": "Bonjour !"}, {"role": "assistant", "content": "Bonjour, comment puis-je aider ?"}]}""") + "\n");
        var templated = tokenizer;
        targets.Add(new MutationTarget { Name = "sft jsonl", File = sft, Seed = System.IO.File.ReadAllBytes(sft), Mutate = JsonLinesFile, Load = () => SftData.Load(sft, templated, eos, end, 256) });
        var dpo = Write(Path.Combine(data, "dpo.jsonl"), string.Join("\n",
            """{"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I will not."}""",
            """{"prompt": [{"role": "user", "content": "Say hi."}], "chosen": [{"role": "assistant", "content": "Hi!"}], "rejected": [{"role": "assistant", "content": "No."}]}""",
            """{"messages": [{"role": "user", "content": "¿Qué hora es?"}], "chosen": "Son las tres.", "rejected": "?"}""") + "\n");
        targets.Add(new MutationTarget
        {
            Name = "dpo jsonl", File = dpo, Seed = System.IO.File.ReadAllBytes(dpo), Mutate = JsonLinesFile,
            Load = () => new DpoData { Tokenizer = templated, EosIds = eos, EndToken = end, MaxLength = 256 }.Load(dpo),
        });
        var pretrain = Write(Path.Combine(data, "pretrain.jsonl"), string.Join("\n",
            """{"text": "The museum opens at nine."}""", """{"text": "Le musée ouvre à neuf heures."}""", """{"text": "El museo abre a las nueve."}""") + "\n");
        targets.Add(new MutationTarget
        {
            Name = "pretrain jsonl", File = pretrain, Seed = System.IO.File.ReadAllBytes(pretrain), Mutate = JsonLinesFile,
            Load = () => PretrainData.Pack(PretrainData.ReadDocuments(pretrain), templated, 16, end),
        });

        var task = TaskSeed(Path.Combine(dir, "task"));
        targets.Add(new MutationTarget { Name = "task yaml", File = task, Seed = System.IO.File.ReadAllBytes(task), Mutate = Yaml, Load = () => UseTask(task) });

        var ifInput = Path.Combine(data, "ifeval.jsonl");
        Write(ifInput, string.Join("\n", IfSuite.Languages.SelectMany(l => IfSuite.BuiltIn(l).Take(4)).Select(p => new JsonObject
        {
            ["key"] = p.Key, ["lang"] = p.Language, ["prompt"] = p.Prompt,
            ["instruction_id_list"] = new JsonArray(p.Instructions.Select(i => (JsonNode)JsonValue.Create(i.Id)).ToArray()),
            ["kwargs"] = new JsonArray(p.Instructions.Select(i => (JsonNode)i.Kwargs.DeepClone()).ToArray()),
        }.ToJsonString())) + "\n");
        targets.Add(new MutationTarget { Name = "ifeval input", File = ifInput, Seed = System.IO.File.ReadAllBytes(ifInput), Mutate = JsonLinesFile, Load = () => UseIfInput(ifInput) });

        var judgeSet = Write(Path.Combine(data, "judge-set.jsonl"), string.Join("\n",
            """{"id": "a1", "instruction": "Name three rivers in France.", "lang": "en"}""",
            """{"id": "a2", "instruction": "Écrivez un haïku sur la pluie.", "lang": "fr", "output": "Pluie sur les toits"}""",
            """{"instruction": "Explica la fotosíntesis en una frase.", "lang": "es"}""") + "\n");
        targets.Add(new MutationTarget { Name = "judge set", File = judgeSet, Seed = System.IO.File.ReadAllBytes(judgeSet), Mutate = JsonLinesFile, Load = () => Judge.LoadSet(judgeSet) });
        var responses = Write(Path.Combine(data, "judge-responses.jsonl"), string.Join("\n",
            """{"output": "The Seine, the Loire and the Rhône."}""", """{"reference": "Pluie sur les toits, le jardin boit en silence."}""",
            """{"response": "Las plantas convierten luz en azúcar."}""") + "\n");
        targets.Add(new MutationTarget
        {
            Name = "judge responses", File = responses, Seed = System.IO.File.ReadAllBytes(responses), Mutate = JsonLinesFile,
            Load = () => Judge.WithReferences(Judge.LoadSet(judgeSet), responses),
        });

        var store = StoreSeed(Path.Combine(dir, "store", "results.db"));
        targets.Add(new MutationTarget
        {
            Name = "results store", File = store, Seed = System.IO.File.ReadAllBytes(store), Mutate = Sqlite(store), Load = () => UseStore(store),
            Scratch = [store + "-wal", store + "-shm"],
        });
        // A Hub data set's Parquet split (nested list and struct columns, as allenai/ai2_arc has them).
        var parquet = Path.Combine(dir, "test-00000-of-00001.parquet");
        Parquet.Serialization.ParquetSerializer.SerializeAsync(ParquetSeedRows, parquet).GetAwaiter().GetResult();
        var parquetSeed = System.IO.File.ReadAllBytes(parquet);
        targets.Add(new MutationTarget
        {
            Name = "task parquet", File = parquet, Seed = parquetSeed,
            // The footer's length (the 4 bytes before the closing PAR1) and the opening magic, or byte damage.
            Mutate = Binary([new BinaryField(parquetSeed.Length - 8, 4), new BinaryField(0, 4)]),
            Load = () => Attune.Evaluation.Tasks.TaskData.LoadDocs(parquet),
        });
        return targets;
    }

    sealed class ParquetSeedRow
    {
        [System.Text.Json.Serialization.JsonPropertyName("question")] public string Question { get; set; } = "";
        [System.Text.Json.Serialization.JsonPropertyName("choices")] public ParquetSeedChoices Choices { get; set; } = new();
        [System.Text.Json.Serialization.JsonPropertyName("answerKey")] public string AnswerKey { get; set; } = "";
        [System.Text.Json.Serialization.JsonPropertyName("score")] public double Score { get; set; }
    }

    sealed class ParquetSeedChoices
    {
        [System.Text.Json.Serialization.JsonPropertyName("text")] public List<string> Text { get; set; } = [];
        [System.Text.Json.Serialization.JsonPropertyName("label")] public List<string> Label { get; set; } = [];
    }

    static readonly List<ParquetSeedRow> ParquetSeedRows =
    [
        new() { Question = "Which one is a fruit?", Choices = new() { Text = ["stone", "apple"], Label = ["A", "B"] }, AnswerKey = "B", Score = 0.5 },
        new() { Question = "¿Qué derrite el hielo?", Choices = new() { Text = ["el calor", "el frío", "la sal"], Label = ["A", "B", "C"] }, AnswerKey = "A", Score = 1 },
    ];

    static string Write(string path, string text)
    {
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    // ---- loads: what the CLI does after reading each file ----

    static readonly JsonNode[] Conversation =
    [
        new JsonObject { ["role"] = "system", ["content"] = "Be brief." },
        new JsonObject { ["role"] = "user", ["content"] = "Quelle heure est-il ?" },
    ];

    static void UseTokenizer(string folder)
    {
        var t = Tokenizer.Load(folder);
        var ids = t.Encode("Le musée ouvre à 9h. <|im_start|>user héllo 12345", addSpecialTokens: true);
        t.Decode(ids);
        if (t.Config.ChatTemplate is not null)
            t.Encode(ChatTemplate.FromConfig(t.Config, configPath: Path.Combine(folder, Checkpoint.TokenizerConfigFileName)).Render(Conversation, addGenerationPrompt: true).Text);
    }

    static void UseTask(string path)
    {
        foreach (var config in TaskConfig.Load(path))
        {
            var task = new IclTask(config);
            var items = task.Items(limit: 4);
            if (config.OutputType == OutputType.GenerateUntil) task.Filter("The answer is 42.");
            else task.LoglikelihoodRequests(items).ToList();
        }
    }

    static void UseIfInput(string path)
    {
        foreach (var prompt in IfSuite.Load(path))
            IfEvaluation.Score(prompt, "Here is my answer, in English: *three* words. P.S. done");
    }

    static void UseStore(string path)
    {
        using var store = new ResultsStore(path);
        store.FinishedKeys();
        store.Cells(withItems: true);
    }

    // ---- seeds ----

    static string TaskSeed(string dir)
    {
        Directory.CreateDirectory(dir);
        Write(Path.Combine(dir, "train.jsonl"), """
            {"text": "I loved it", "label": 1}
            {"text": "Awful service", "label": 0}
            {"question": "2+2", "answer": "4"}
            """);
        Write(Path.Combine(dir, "test.jsonl"), """
            {"text": "Great food", "label": 1, "question": "3+4", "answer": "7"}
            {"text": "Too slow", "label": 0, "question": "5+5", "answer": "10"}
            """);
        return Write(Path.Combine(dir, "task.yaml"), """
            - task: sentiment_en
              lang: en
              dataset_path: json
              dataset_kwargs:
                data_files: {train: train.jsonl, test: test.jsonl}
              test_split: test
              fewshot_split: train
              output_type: multiple_choice
              doc_to_text: "Review: {{text}}\nSentiment:"
              doc_to_target: label
              doc_to_choice: ["negative", "positive"]
              num_fewshot: 2
              fewshot_config: {sampler: first_n}
              metric_list: [{metric: acc}, {metric: acc_norm}]
            - task: sums
              dataset_path: test.jsonl
              test_split: test
              output_type: generate_until
              doc_to_text: "Q: {{question}}\nA:"
              doc_to_target: "{{answer}}"
              num_fewshot: 1
              generation_kwargs: {until: ["\n"], max_gen_toks: 8}
              metric_list: [{metric: exact_match, ignore_case: true, regexes_to_ignore: [","]}]
              filter_list: [{name: answer, filter: [{function: regex, regex_pattern: "(-?\\d+)"}, {function: take_first}]}]
            """);
    }

    static string StoreSeed(string path)
    {
        using (var store = new ResultsStore(path))
        {
            var run = store.BeginRun("attune sweep", "test", new JsonObject { ["lambdas"] = new JsonArray(0.0, 0.5, 1.0) });
            foreach (var (lambda, i) in new[] { 0.0, 0.5, 1.0 }.Select((l, i) => (l, i)))
                store.Commit(run, new CellResult($"cell{i}", "partial", lambda, "if", "en", $"model@{lambda}",
                    new JsonObject { ["mode"] = "chat", ["shots"] = 3 },
                    [new Aggregate("prompt_strict", 0.25 * i, 0.1, 0.4, 12), new Aggregate("judge", double.NaN, null, null, 0)],
                    [new JsonObject { ["prompt"] = "p", ["ok"] = true }, new JsonObject { ["prompt"] = "q", ["ok"] = false }], 1.5 + i));
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return path;
    }

    // ---- mutations per format ----

    static byte[] JsonFile(Mutator m, byte[] seed) => m.Rng.Next(4) == 0 ? m.Bytes(seed) : Encoding.UTF8.GetBytes(m.Json(Encoding.UTF8.GetString(seed)));

    /// <summary>Byte damage anywhere, or JSON mutations on one line.</summary>
    static byte[] JsonLinesFile(Mutator m, byte[] seed)
    {
        if (m.Rng.Next(4) == 0) return m.Bytes(seed);
        var lines = Encoding.UTF8.GetString(seed).Split('\n').ToList();
        int i = m.Rng.Next(lines.Count - 1);
        if (m.Rng.Next(6) == 0) lines.Insert(i, lines[i]);
        else lines[i] = m.Json(lines[i]);
        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }

    static readonly string[] YamlAttacks =
    [
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "9223372036854775808", "-2147483649", "2147483647", "1e308", "!function utils.doc_to_text", "~", "null", "[]", "{}",
        "&a [x, *a]", "*undefined", "\"\\uD800\"", "!!binary AAAA", "{a: 1, a: 2}", "? [complex]\n  : key", "'''", "|\n  block",
        "\"(a+)+$\"", "\"[\"", "\"(?<=x*)y\"",
    ];

    /// <summary>Byte damage, or a line of the task file with a value replaced by something hostile, repeated or dropped.</summary>
    static byte[] Yaml(Mutator m, byte[] seed)
    {
        if (m.Rng.Next(3) == 0) return m.Bytes(seed);
        var lines = Encoding.UTF8.GetString(seed).Split('\n').ToList();
        int i = m.Rng.Next(lines.Count);
        switch (m.Rng.Next(4))
        {
            case 0: lines.Insert(i, lines[i]); break;
            case 1: lines.RemoveAt(i); break;
            default:
                int colon = lines[i].IndexOf(": ", StringComparison.Ordinal);
                var value = m.Pick(YamlAttacks);
                lines[i] = colon >= 0 ? lines[i][..(colon + 2)] + value : lines[i] + " " + value;
                break;
        }
        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }

    /// <summary>Templates that cost too much or nest too deep; each must stop at a limit with a template error.</summary>
    public static readonly string[] HostileTemplates =
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ range(10**9) | list | length }}",
        "{{ 'x' * 10**12 }}",
        "{{ 'ab' * 9223372036854775807 }}",
        "{{ [1, 2] * 10**10 }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(0) }}",
        "{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}",
        "{{ " + new string('[', 50_000) + new string(']', 50_000) + " }}",
        string.Concat(Enumerable.Repeat("{% if true %}", 20_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 20_000)),
        "{{ ('x' * 100000) | replace('', 'yy') | replace('', 'yy') }}",
        "{{ 'x' | center(10**9) }}", "{{ 'x'.ljust(10**9) }}", "{{ 'x'.rjust(9223372036854775807) }}", "{{ '1'.zfill(10**10) }}",
        "{{ 'x' | indent(10**9) }}", "{{ ('a\n' * 1000) | indent(100000) }}", "{{ '%*d' | format(10**9, 1) }}", "{{ '%0999999999d' % 1 }}",
        "{{ 'a b' | wordwrap(1) * 10**7 }}", "{{ 'x' | truncate(-9223372036854775808) }}",
        "{{ 2 ** 10 ** 10 }}", "{{ 2 ** 64 }}", "{{ -9223372036854775808 // -1 }}", "{{ -9223372036854775808 % -1 }}", "{{ 1 // 0 }}", "{{ 1 % 0 }}",
        "{{ 9223372036854775807 + 1 }}", "{{ (2 ** 62) * 4 }}", "{{ -(-9223372036854775808) }}", "{{ 9223372036854775808 }}",
        "{{ messages[10**18] }}", "{{ messages[-9223372036854775808] }}", "{{ 'abc'[9223372036854775807:] }}", "{{ 'abc'[::-9223372036854775808] }}",
        "{{ 'abc'[::0] }}", "{{ range(0, 10, 0) | list }}", "{{ range(-9223372036854775808, 9223372036854775807) | length }}",
        "{{ range(9223372036854775807, -9223372036854775808, -1) | length }}",
        "{{ (range(3000) | list) | sort | join(',') * 5000 }}",
        "{% set x = [] %}{% for i in range(10**6) %}{% set _ = x.append(x) %}{% endfor %}{{ x | length }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x | tojson }}",
        "{{ messages | tojson(indent=10**9) }}", "{{ 'x' | batch(0) | list }}", "{{ range(10) | batch(10**18) | list }}", "{{ range(10) | slice(10**9) | list }}",
        "{{ '{0:>999999999}'.format(1) }}", "{{ 'a'.split('') }}", "{{ 'x'.replace('x', 'xx', 10**18) }}", "{{ 'x'.expandtabs(10**9) }}",
        "{{ raise_exception('no') }}", "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
        "{% for m in messages %}{% set messages = messages + messages %}{% endfor %}",
        "{{ strftime_now('%' * 100000) }}", "{{ '%s' * 100000 % () }}", "{{ 'x' * -1 }}", "{{ 1e308 * 10 }}", "{{ (1e308 * 10) | int }}",
        "{{ 'nan' | float | int }}", "{{ 1e300 | int }}", "{{ '9' * 400 | int }}", "{{ 10 ** -400 }}", "{{ 0 ** -1 }}", "{{ (-8) ** 0.5 }}",
    ];

    /// <summary>The chat template of tokenizer_config.json: a hostile one, or the seed's damaged as text.</summary>
    static byte[] Template(Mutator m, byte[] seed)
    {
        var config = JsonNode.Parse(seed)!.AsObject();
        var template = config["chat_template"]!.GetValue<string>();
        string mutated = m.Rng.Next(3) switch
        {
            0 => m.Pick(HostileTemplates),
            1 => m.Pick(HostileTemplates) + template,
            _ => Encoding.UTF8.GetString(m.Bytes(Encoding.UTF8.GetBytes(template))),
        };
        config["chat_template"] = mutated;
        return Encoding.UTF8.GetBytes(config.ToJsonString());
    }

    static Func<Mutator, byte[], byte[]> Binary(IReadOnlyList<BinaryField> fields) =>
        (m, seed) => m.Rng.Next(2) == 0 ? m.ExtremeInteger(seed, fields) : m.Bytes(seed);

    /// <summary>The 8-byte header length, the header's JSON (with the length kept right, so the JSON is what is tested), or byte damage.</summary>
    static byte[] SafeTensors(Mutator m, byte[] seed)
    {
        switch (m.Rng.Next(3))
        {
            case 0: return m.ExtremeInteger(seed, [new BinaryField(0, 8), new BinaryField(0, 4), new BinaryField(4, 4)]);
            case 1: return m.Bytes(seed);
            default:
            {
                int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(seed);
                var header = Encoding.UTF8.GetBytes(m.Json(Encoding.UTF8.GetString(seed, 8, n)));
                var length = new byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                return [.. length, .. header, .. seed.AsSpan(8 + n)];
            }
        }
    }

    /// <summary>Where every count, length, type and offset of a GGUF file is (gguf.md's layout), found by walking a valid one.</summary>
    public static List<BinaryField> GgufFields(byte[] b)
    {
        var fields = new List<BinaryField> { new(4, 4), new(8, 8), new(16, 8) };
        long p = 24;
        ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)at));
        uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)at));
        void Str()
        {
            fields.Add(new(p, 8));
            p += 8 + (long)U64(p);
        }
        long ScalarSize(uint type) => type switch { 0 or 1 or 7 => 1, 2 or 3 => 2, 4 or 5 or 6 => 4, _ => 8 };
        ulong tensors = U64(8), kvs = U64(16);
        for (ulong i = 0; i < kvs; i++)
        {
            Str();
            uint type = U32(p);
            fields.Add(new(p, 4));
            p += 4;
            if (type == 8) Str();
            else if (type == 9)
            {
                uint et = U32(p);
                fields.Add(new(p, 4));
                ulong n = U64(p + 4);
                fields.Add(new(p + 4, 8));
                p += 12;
                for (ulong k = 0; k < n; k++)
                    if (et == 8)
                    {
                        if (k < 4 || k == n - 1) Str(); // a few of the vocabulary's string lengths
                        else p += 8 + (long)U64(p);
                    }
                    else p += ScalarSize(et);
            }
            else p += ScalarSize(type);
        }
        for (ulong i = 0; i < tensors; i++)
        {
            Str();
            uint dims = U32(p);
            fields.Add(new(p, 4));
            p += 4;
            for (int d = 0; d < dims; d++, p += 8) fields.Add(new(p, 8));
            fields.Add(new(p, 4));
            fields.Add(new(p + 4, 8));
            p += 12;
        }
        return fields;
    }

    /// <summary>
    /// SQLite files: extreme values in the database header and the b-tree page headers (fileformat2.html), byte damage,
    /// or a value of the store's tables replaced by one of the wrong type (SQLite keeps whatever type it is given).
    /// </summary>
    static Func<Mutator, byte[], byte[]> Sqlite(string storePath)
    {
        return (m, seed) =>
        {
            int pageSize = BinaryPrimitives.ReadUInt16BigEndian(seed.AsSpan(16)) is var s && s == 1 ? 65536 : BinaryPrimitives.ReadUInt16BigEndian(seed.AsSpan(16));
            var fields = new List<BinaryField>
            {
                new(16, 2, true), new(18, 1), new(19, 1), new(20, 1), new(21, 1), new(22, 1), new(23, 1), new(24, 4, true), new(28, 4, true),
                new(32, 4, true), new(36, 4, true), new(40, 4, true), new(44, 4, true), new(48, 4, true), new(52, 4, true), new(56, 4, true),
                new(64, 4, true), new(92, 4, true), new(96, 4, true),
            };
            for (long page = 0; page * pageSize < seed.Length; page++)
            {
                long at = page * pageSize + (page == 0 ? 100 : 0);
                fields.AddRange([new(at, 1), new(at + 1, 2, true), new(at + 3, 2, true), new(at + 5, 2, true), new(at + 7, 1), new(at + 8, 4, true), new(at + 8, 2, true), new(at + 12, 2, true)]);
            }
            return m.Rng.Next(3) switch
            {
                0 => m.ExtremeInteger(seed, fields),
                1 => m.Bytes(seed),
                _ => WrongSqlValue(m, seed, storePath + ".mutating"),
            };
        };
    }

    static readonly (string Table, string[] Columns)[] StoreColumns =
    [
        ("meta", ["name", "value"]), ("runs", ["id", "started", "command", "version", "plan"]),
        ("cells", ["key", "run", "arm", "lambda", "suite", "lang", "model", "settings", "seconds", "finished"]),
        ("aggregates", ["cell", "name", "value", "low", "high", "n"]), ("items", ["cell", "idx", "record"]),
    ];

    static readonly string[] SqlValues =
    [
        "NULL", "'x'", "''", "'{'", "'[1]'", "'null'", "X'FF00'", "-1", "0", "9223372036854775807", "-9223372036854775808", "1e308", "'NaN'", "2.5",
        "'" + new string('z', 100_000) + "'",
    ];

    static byte[] WrongSqlValue(Mutator m, byte[] seed, string scratch)
    {
        System.IO.File.WriteAllBytes(scratch, seed);
        var (table, columns) = m.Pick(StoreColumns);
        var column = m.Pick(columns);
        try
        {
            using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={scratch};Pooling=False");
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"PRAGMA foreign_keys=OFF; UPDATE {table} SET {column} = {m.Pick(SqlValues)} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY rowid LIMIT 1 OFFSET {m.Rng.Next(3)})";
            cmd.ExecuteNonQuery();
        }
        catch (Microsoft.Data.Sqlite.SqliteException) { } // a NOT NULL or key constraint: the file stays as it was
        var bytes = System.IO.File.ReadAllBytes(scratch);
        foreach (var f in new[] { scratch, scratch + "-wal", scratch + "-shm" }) System.IO.File.Delete(f);
        return bytes;
    }
}
