using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Evaluation.Metrics;

namespace Attune.Evaluation.Judging;

/// <summary>One of AlpacaEval's annotations: an instruction, the baseline's output (output_1), the model's (output_2) and the judge's preference.</summary>
public sealed record AlpacaAnnotation(string Instruction, string Output1, string Output2, string? Generator1, string? Generator2, double? Preference);

/// <summary>AlpacaEval's files: annotations.json (read), and the leaderboard metrics computed from them.</summary>
public static class AlpacaEvalFiles
{
    /// <summary>Reads annotations.json: a JSON list of objects with instruction, output_1, output_2 and preference (null or a number, or a number written as text).</summary>
    public static List<AlpacaAnnotation> ReadAnnotations(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON (line {e.LineNumber + 1}): {e.Message.Split(". Path")[0]}"); }
        catch (IOException e) { throw new AttuneException(path, e.Message); }
        if (root is not JsonArray list) throw new AttuneException(path, "must be a JSON list of annotations, as AlpacaEval writes annotations.json");
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

    /// <summary>The leaderboard's metrics for a set of annotations (lengths in Unicode code points, as Python's len counts them).</summary>
    public static AlpacaEvalWinRate Metrics(IReadOnlyList<AlpacaAnnotation> annotations) =>
        AlpacaEvalWinRate.Compute(annotations.Select(a => a.Preference).ToList(), annotations.Select(a => (double)(CodePoints(a.Output1) - CodePoints(a.Output2))).ToList());

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
        json["length_controlled_method"] = "length_controlled_minimal";
        json["length_weight"] = Num(m.LengthWeight);
        json["lc_extreme_change"] = m.ExtremeChange;
        return json;
    }
}
