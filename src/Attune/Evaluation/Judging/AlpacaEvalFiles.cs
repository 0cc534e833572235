using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Judging;

/// <summary>One of AlpacaEval's annotations: an instruction, the baseline's output (output_1), the model's (output_2) and the judge's preference.</summary>
public sealed record AlpacaAnnotation(string Instruction, string Output1, string Output2, string? Generator1, string? Generator2, double? Preference);

/// <summary>One entry of AlpacaEval's model_outputs.json (or its eval set, which has no output yet).</summary>
public sealed record AlpacaOutput(string Instruction, string? Output, string? Generator, string? Dataset, string? Language);

/// <summary>
/// AlpacaEval's files: model_outputs.json (read and written: instruction, output, generator, dataset), annotations.json
/// (read and written: output_1 the baseline, output_2 the model, preference in [1, 2]), and the leaderboard's metrics.
/// </summary>
public static class AlpacaEvalFiles
{
    /// <summary>Whether a file holds a JSON list (AlpacaEval's files) rather than JSON Lines.</summary>
    public static bool IsJsonList(string path)
    {
        try
        {
            using var reader = new StreamReader(path);
            int c;
            while ((c = reader.Read()) >= 0)
                if (!char.IsWhiteSpace((char)c) && c != 0xFEFF) return c == '[';
            return false;
        }
        catch (IOException e) { throw new AttuneException(path, e.Message); }
        catch (UnauthorizedAccessException e) { throw new AttuneException(path, e.Message); }
    }

    static JsonArray ReadList(string path, string what)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON (line {e.LineNumber + 1}): {e.Message.Split(". Path")[0]}"); }
        catch (IOException e) { throw new AttuneException(path, e.Message); }
        return root as JsonArray ?? throw new AttuneException(path, $"must be a JSON list of {what}, as AlpacaEval writes it");
    }

    /// <summary>Reads model_outputs.json (or an eval set without outputs when <paramref name="requireOutput"/> is false).</summary>
    public static List<AlpacaOutput> ReadModelOutputs(string path, bool requireOutput)
    {
        var list = ReadList(path, "outputs");
        var outputs = new List<AlpacaOutput>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            AttuneException Bad(string field, string what) => new(path, $"entry {i}: {field}", what);
            if (list[i] is not JsonObject o) throw Bad("", "must be an object");
            string? Optional(string field) => o[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            var instruction = Optional("instruction") is { Length: > 0 } text ? text : throw Bad("instruction", "must be a non-empty text");
            var output = Optional("output");
            if (requireOutput && output is null) throw Bad("output", "must be a text");
            var lang = Optional("lang");
            if (lang is not (null or "en" or "fr" or "es")) throw Bad("lang", "must be en, fr or es");
            outputs.Add(new AlpacaOutput(instruction, output, Optional("generator"), Optional("dataset"), lang));
        }
        if (outputs.Count == 0) throw new AttuneException(path, "has no entries");
        return outputs;
    }

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes model_outputs.json: each instruction with the model's output, its generator name and dataset.</summary>
    public static void WriteModelOutputs(string path, IReadOnlyList<JudgeItem> items, IReadOnlyList<string> outputs, string generator) =>
        Formats.AtomicFile.WriteAllText(path, new JsonArray(items.Select((it, i) => (JsonNode)new JsonObject
        {
            ["instruction"] = it.Instruction, ["output"] = outputs[i], ["generator"] = generator, ["dataset"] = it.Dataset ?? "attune", ["lang"] = it.Language,
        }).ToArray()).ToJsonString(Indented));

    /// <summary>Writes annotations.json in AlpacaEval's shape: output_1 the reference (the baseline), output_2 the model's answer, preference 1 + the model's share (null when unreadable).</summary>
    public static void WriteAnnotations(string path, IReadOnlyList<PairwiseJudgment> pairs, string generator, string baseline, string annotator) =>
        Formats.AtomicFile.WriteAllText(path, new JsonArray(pairs.Select(p => (JsonNode)new JsonObject
        {
            ["instruction"] = p.Item.Instruction, ["output_1"] = p.Item.Reference, ["generator_1"] = baseline, ["dataset"] = p.Item.Dataset ?? "attune",
            ["output_2"] = p.Response, ["generator_2"] = generator, ["annotator"] = annotator,
            ["preference"] = p.Preference is { } share ? 1 + share : null,
        }).ToArray()).ToJsonString(Indented));

    /// <summary>Reads annotations.json: a JSON list of objects with instruction, output_1, output_2 and preference (null or a number, or a number written as text).</summary>
    public static List<AlpacaAnnotation> ReadAnnotations(string path)
    {
        var list = ReadList(path, "annotations");
        var annotations = new List<AlpacaAnnotation>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            AttuneException Bad(string field, string what) => new(path, $"annotation {i}: {field}", what);
            if (list[i] is not JsonObject o) throw Bad("", "must be an object");
            string Text(string field) => o[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Bad(field, "must be a text");
            string? Optional(string field) => o[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            double? preference = o["preference"] switch
            {
                null => null,
                JsonValue v when v.TryGetValue<double>(out var d) => d,
                JsonValue v when v.TryGetValue<string>(out var s) && double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => d,
                _ => throw Bad("preference", "must be a number in [1, 2] (or null)"),
            };
            annotations.Add(new AlpacaAnnotation(Text("instruction"), Text("output_1"), Text("output_2"), Optional("generator_1"), Optional("generator_2"), preference));
        }
        if (annotations.Count == 0) throw new AttuneException(path, "has no annotations");
        return annotations;
    }

    /// <summary>
    /// The leaderboard's metrics for a set of annotations (lengths in Unicode code points, as Python's len counts them);
    /// with each instruction's difficulty, the length-controlled rate of the model with the difficulty term (length_controlled_noreg).
    /// </summary>
    public static AlpacaEvalWinRate Metrics(IReadOnlyList<AlpacaAnnotation> annotations, IReadOnlyList<double>? difficulty = null) =>
        AlpacaEvalWinRate.Compute(annotations.Select(a => a.Preference).ToList(), annotations.Select(a => (double)(CodePoints(a.Output1) - CodePoints(a.Output2))).ToList(), difficulty);

    /// <summary>
    /// Each annotation's instruction difficulty from a CSV with an <c>instruction_difficulty</c> column (AlpacaEval's
    /// instruction_difficulty.csv): matched by an <c>instruction</c> column when there is one, else row for row in the
    /// annotations' order (the eval set's).
    /// </summary>
    public static List<double> ReadDifficulty(string path, IReadOnlyList<AlpacaAnnotation> annotations)
    {
        List<Dictionary<string, string>> rows;
        try { rows = Tasks.TaskData.ReadCsv(path).Select(r => r.ToDictionary(kv => kv.Key, kv => kv.Value?.ToString() ?? "")).ToList(); }
        catch (IOException e) { throw new AttuneException(path, e.Message); }
        if (rows.Count == 0 || !rows[0].ContainsKey("instruction_difficulty")) throw new AttuneException(path, "instruction_difficulty", "needs a column of that name (one number per instruction)");
        double Number(Dictionary<string, string> row, int line) =>
            double.TryParse(row["instruction_difficulty"], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d
                : throw new AttuneException(path, $"line {line + 2}: instruction_difficulty", "must be a number");
        if (rows[0].ContainsKey("instruction"))
        {
            var byText = new Dictionary<string, double>(StringComparer.Ordinal);
            for (int i = 0; i < rows.Count; i++) byText[rows[i]["instruction"]] = Number(rows[i], i);
            return annotations.Select((a, i) => byText.TryGetValue(a.Instruction, out var d) ? d
                : throw new AttuneException(path, $"has no difficulty for annotation {i}'s instruction")).ToList();
        }
        if (rows.Count < annotations.Count) throw new AttuneException(path, $"has {rows.Count} difficulties for {annotations.Count} annotations (row for row, as it has no instruction column)");
        return annotations.Select((_, i) => Number(rows[i], i)).ToList();
    }

    /// <summary>A text's length as Python's len counts it.</summary>
    public static int CodePoints(string s) => s.EnumerateRunes().Count();

    /// <summary>The metrics under AlpacaEval's names and units (percent), as its leaderboard lists them.</summary>
    public static JsonObject ToJson(AlpacaEvalWinRate m, string? model = null)
    {
        static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
        var json = new JsonObject();
        if (model is not null) json["model"] = model;
        json["win_rate"] = Num(m.WinRate);
        json["standard_error"] = Num(m.StandardError);
        json["n_wins"] = m.Wins;
        json["n_wins_base"] = m.WinsBase;
        json["n_draws"] = m.Draws;
        json["n_total"] = m.Total;
        json["discrete_win_rate"] = Num(m.DiscreteWinRate);
        json["length_controlled_winrate"] = Num(m.LengthControlled);
        json["lc_standard_error"] = Num(m.LengthControlledStandardError);
        json["length_controlled_method"] = m.LengthControlledMethod;
        json["length_weight"] = Num(m.LengthWeight);
        json["lc_extreme_change"] = m.ExtremeChange;
        return json;
    }
}
