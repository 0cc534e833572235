using System.Text.Json;
using System.Text.RegularExpressions;

namespace Attune.Text;

/// <summary>Typed reads from tokenizer.json with errors that name the file and the field.</summary>
internal readonly struct TokenizerJson(string source)
{
    public string Source => source;

    public AttuneException Error(string field, string problem) => new(source, field, problem);

    public string Type(JsonElement e, string field)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw Error(field, "must be an object");
        if (!e.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
            throw Error($"{field}.type", "missing");
        return t.GetString()!;
    }

    public string String(JsonElement e, string name, string field, string? fallback = null)
    {
        if (e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String) return v.GetString()!;
        if (fallback is not null && (!e.TryGetProperty(name, out v) || v.ValueKind == JsonValueKind.Null)) return fallback;
        throw Error($"{field}.{name}", "missing or not a string");
    }

    public string? OptionalString(JsonElement e, string name, string field)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        throw Error($"{field}.{name}", "must be a string");
    }

    public bool Bool(JsonElement e, string name, string field, bool fallback)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"{field}.{name}", "must be true or false"),
        };
    }

    public int Int(JsonElement e, string name, string field, int fallback)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i)) return i;
        throw Error($"{field}.{name}", "must be an integer");
    }

    public JsonElement Array(JsonElement e, string name, string field)
    {
        if (e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array) return v;
        throw Error($"{field}.{name}", "missing or not an array");
    }

    /// <summary>A <c>{"String": "…"}</c> or <c>{"Regex": "…"}</c> pattern.</summary>
    public Pattern Pattern(JsonElement e, string field)
    {
        if (!e.TryGetProperty("pattern", out var p) || p.ValueKind != JsonValueKind.Object)
            throw Error($"{field}.pattern", "missing; expected {\"String\": …} or {\"Regex\": …}");
        if (p.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String)
            return new Pattern(s.GetString()!, null, null);
        if (p.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
        {
            var text = r.GetString()!;
            var scanner = SplitScanner.ForPattern(text);
            Regex regex;
            try { regex = new Regex(text, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(10)); }
            catch (ArgumentException ex) { throw Error($"{field}.pattern.Regex", $"not a valid regular expression: {ex.Message}"); }
            return new Pattern(text, regex, scanner);
        }
        throw Error($"{field}.pattern", "expected {\"String\": …} or {\"Regex\": …}");
    }
}

/// <summary>A literal string or a regular expression, as tokenizer.json spells patterns.</summary>
public sealed record Pattern(string Text, Regex? Regex, SplitScanner? Scanner)
{
    /// <summary>Appends the (start, length) of every match in <paramref name="s"/>.</summary>
    public void Matches(string s, int start, int length, List<(int Start, int Length)> found)
    {
        if (Regex is null)
        {
            if (Text.Length == 0) return;
            var span = s.AsSpan(start, length);
            int i = 0;
            while (i <= span.Length - Text.Length)
            {
                int k = span[i..].IndexOf(Text, StringComparison.Ordinal);
                if (k < 0) break;
                found.Add((start + i + k, Text.Length));
                i += k + Text.Length;
            }
            return;
        }
        if (Scanner is not null)
        {
            int before = found.Count;
            Scanner.Split(s.AsSpan(start, length), found);
            if (start != 0)
                for (int k = before; k < found.Count; k++) found[k] = (found[k].Start + start, found[k].Length);
            return;
        }
        for (var m = Regex.Match(s, start, length); m.Success; m = m.NextMatch())
            if (m.Length > 0) found.Add((m.Index, m.Length));
    }

    public string Replace(string s, string content) =>
        Regex is null ? s.Replace(Text, content, StringComparison.Ordinal) : Regex.Replace(s, content.Replace("$", "$$"));
}
