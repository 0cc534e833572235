using System.Text.Json.Nodes;

namespace Attune.Text;

/// <summary>What <c>attune tokenize</c> and <c>detokenize</c> do to one JSONL record: <c>{"text"}</c> ↔ <c>{"ids"}</c>.</summary>
public static class TokenizerRecords
{
    public static JsonObject Encode(Tokenizer tokenizer, RecordFields record, bool addSpecialTokens) =>
        new() { ["ids"] = new JsonArray(tokenizer.Encode(record.RequiredString("text"), addSpecialTokens).Select(id => (JsonNode)id).ToArray()) };

    public static JsonObject Decode(Tokenizer tokenizer, RecordFields record, bool skipSpecialTokens) =>
        new() { ["text"] = tokenizer.Decode(record.RequiredInts("ids"), skipSpecialTokens) };
}
