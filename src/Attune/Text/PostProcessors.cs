using System.Text.Json;

namespace Attune.Text;

/// <summary>
/// A tokenizer.json <c>post_processor</c>: adds the special tokens around an encoded sequence
/// when special tokens are asked for (<c>add_special_tokens</c>).
/// </summary>
public abstract class PostProcessor
{
    public abstract void Process(List<int> ids, bool addSpecialTokens);

    internal static PostProcessor? FromJson(JsonElement e, TokenizerJson j, string field)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        var type = j.Type(e, field);
        switch (type)
        {
            case "ByteLevel":
                return null; // only trims offsets, which Attune does not report
            case "TemplateProcessing":
                return TemplateProcessing.Parse(e, j, field);
            case "BertProcessing":
            case "RobertaProcessing":
            {
                int Id(string name)
                {
                    var a = j.Array(e, name, field);
                    return a.GetArrayLength() == 2 && a[1].TryGetInt32(out var id) ? id : throw j.Error($"{field}.{name}", "expected [token, id]");
                }
                return new TemplateProcessing([new TemplateItem(null, Id("cls")), new TemplateItem("A", 0), new TemplateItem(null, Id("sep"))]);
            }
            case "Sequence":
                return new SequenceProcessor(j.Array(e, "processors", field).EnumerateArray()
                    .Select((x, i) => FromJson(x, j, $"{field}.processors[{i}]")).OfType<PostProcessor>().ToArray());
            default:
                throw j.Error($"{field}.type", $"post-processor \"{type}\" is not supported (TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
        }
    }
}

/// <summary>One template entry: the sequence itself (<see cref="Sequence"/> set) or one special token id.</summary>
public readonly record struct TemplateItem(string? Sequence, int Id);

/// <summary><c>TemplateProcessing</c> for single sequences, e.g. <c>&lt;s&gt; $A</c>.</summary>
public sealed class TemplateProcessing(TemplateItem[] single) : PostProcessor
{
    public IReadOnlyList<TemplateItem> Single => single;

    public override void Process(List<int> ids, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return;
        var body = ids.ToArray();
        ids.Clear();
        foreach (var item in single)
        {
            if (item.Sequence is not null) ids.AddRange(body);
            else ids.Add(item.Id);
        }
    }

    internal static TemplateProcessing Parse(JsonElement e, TokenizerJson j, string field)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (e.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object)
            foreach (var p in st.EnumerateObject())
                specials[p.Name] = j.Array(p.Value, "ids", $"{field}.special_tokens.{p.Name}").EnumerateArray()
                    .Select(x => x.TryGetInt32(out var id) ? id : throw j.Error($"{field}.special_tokens.{p.Name}.ids", "must be integers")).ToArray();
        var items = new List<TemplateItem>();
        int k = 0;
        foreach (var entry in j.Array(e, "single", field).EnumerateArray())
        {
            var where = $"{field}.single[{k++}]";
            if (entry.TryGetProperty("SpecialToken", out var sp))
            {
                var name = j.String(sp, "id", where);
                if (!specials.TryGetValue(name, out var ids))
                    throw j.Error(where, $"special token \"{name}\" is not in special_tokens");
                items.AddRange(ids.Select(id => new TemplateItem(null, id)));
            }
            else if (entry.TryGetProperty("Sequence", out var sq))
                items.Add(new TemplateItem(j.String(sq, "id", where), 0));
            else throw j.Error(where, "expected SpecialToken or Sequence");
        }
        return new TemplateProcessing(items.ToArray());
    }
}

public sealed class SequenceProcessor(PostProcessor[] steps) : PostProcessor
{
    public override void Process(List<int> ids, bool addSpecialTokens)
    {
        foreach (var p in steps) p.Process(ids, addSpecialTokens);
    }
}
