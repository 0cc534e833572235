using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Prompting;
using Attune.Text;
using Attune.Text.Templates;

namespace Attune.Training;

/// <summary>
/// Preference data for DPO, one JSON object per line, TRL's shapes: <c>"prompt"</c> (a string, or a list of
/// messages ending with a user turn) or <c>"messages"</c>, and <c>"chosen"</c> / <c>"rejected"</c> (strings, or
/// message lists whose last assistant turn is the reply). The prompt goes through the chat template
/// (<see cref="PromptMode.Chat"/>), a URIAL prompt for base models (<see cref="PromptMode.Urial"/>: the reply is
/// written as the answer block, closing fence included), or is used as is (<see cref="PromptMode.Raw"/>). The loss
/// covers the reply and the end token, exactly as SFT's.
/// </summary>
public sealed class DpoData
{
    public required Tokenizer Tokenizer { get; init; }
    public required IReadOnlySet<int> EosIds { get; init; }
    public required int EndToken { get; init; }
    public required int MaxLength { get; init; }
    public PromptMode Format { get; init; } = PromptMode.Chat;
    public UrialPrompt? Urial { get; init; }
    public int UrialShots { get; init; } = UrialPrompt.DefaultShots;
    /// <summary>Bad lines: an error (default), or counted and skipped.</summary>
    public BadRecords Bad { get; init; } = new();

    public List<PreferencePair> Load(string path)
    {
        var template = Format == PromptMode.Chat
            ? (Tokenizer.Config.ChatTemplate is null
                ? throw new AttuneException(path, "the chat format needs a chat_template in tokenizer_config.json; use --format urial or raw for a base model")
                : ChatTemplate.FromConfig(Tokenizer.Config))
            : null;
        var pairs = new List<PreferencePair>();
        foreach (var (n, record) in JsonLines.ReadFile(path, Bad))
        {
            string where = $"line {n}";
            var pair = Bad.Guard(() =>
            {
                var prompt = Prompt(record, path, where);
                var chosen = Example(prompt, Reply(record, "chosen", path, where), template, path, where);
                var rejected = Example(prompt, Reply(record, "rejected", path, where), template, path, where);
                foreach (var (e, name) in new[] { (chosen, "chosen"), (rejected, "rejected") })
                    if (e.Tokens.Length > MaxLength)
                        throw new AttuneException(path, where, $"the prompt with the {name} reply is {e.Tokens.Length} tokens, longer than the block size {MaxLength}");
                return new PreferencePair(chosen, rejected);
            });
            if (pair is not null) pairs.Add(pair);
        }
        if (pairs.Count == 0) throw new AttuneException(path, "holds no preference pair");
        return pairs;
    }

    static List<ChatMessage> Prompt(JsonObject record, string path, string where)
    {
        var node = record["prompt"] ?? record["messages"];
        if (node is JsonValue v && v.TryGetValue<string>(out var text))
            return [new ChatMessage("user", text)];
        if (node is JsonArray list)
        {
            var messages = Messages(list, path, where);
            if (messages.Count == 0 || messages[^1].Role != "user")
                throw new AttuneException(path, where, "the prompt's messages must end with a user turn");
            return messages;
        }
        throw new AttuneException(path, where, "needs \"prompt\" (a string or a list of messages) or \"messages\"");
    }

    static List<ChatMessage> Messages(JsonArray list, string path, string where) =>
        list.Select((m, i) => m is JsonObject o && o["role"] is JsonValue r && r.TryGetValue<string>(out var role)
                && o["content"] is JsonValue c && c.TryGetValue<string>(out var content)
            ? new ChatMessage(role, content)
            : throw new AttuneException(path, where, $"message {i + 1} needs \"role\" and \"content\" strings")).ToList();

    static string Reply(JsonObject record, string field, string path, string where)
    {
        string? reply = record[field] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray list => Messages(list, path, where).LastOrDefault(m => m.Role == "assistant")?.Content,
            _ => throw new AttuneException(path, where, $"needs a string field \"{field}\" (or a list of messages ending with the assistant's reply)"),
        };
        if (string.IsNullOrWhiteSpace(reply)) throw new AttuneException(path, where, $"has an empty \"{field}\" reply");
        return reply;
    }

    TrainingExample Example(List<ChatMessage> prompt, string reply, ChatTemplate? template, string path, string where)
    {
        switch (Format)
        {
            case PromptMode.Chat:
                var conversation = new JsonArray(prompt.Append(new ChatMessage("assistant", reply))
                    .Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray());
                return SftData.FromMessages(conversation, template!, Tokenizer, EosIds, EndToken, path, where);
            case PromptMode.Urial:
                var urial = Urial ?? UrialPrompt.BuiltIn("en");
                string text;
                try { text = urial.Render(prompt, UrialShots); }
                catch (AttuneException e) { throw new AttuneException(path, where, e.Message); }
                return SftData.FromPromptCompletion(text, reply.Trim() + "\n" + UrialPrompt.Fence, Tokenizer, EndToken, path, where);
            default:
                if (prompt.Count != 1) throw new AttuneException(path, where, "the raw format needs the prompt as one string");
                return SftData.FromPromptCompletion(prompt[0].Content, reply, Tokenizer, EndToken, path, where);
        }
    }
}
