using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Text;
using Attune.Text.Templates;

namespace Attune.Training;

/// <summary>
/// Supervised fine-tuning examples with the loss on the assistant's tokens only. <c>{"messages"}</c> records go
/// through the chat template: the assistant spans come from its <c>{% generation %}</c> blocks when it has them,
/// otherwise from rendering each prefix of the conversation (with and without the assistant's reply).
/// <c>{"prompt","completion"}</c> records are joined as plain text. Either way an end-of-sequence token closes
/// the trained text and is itself a target, so the model learns to stop.
/// </summary>
public static class SftData
{
    /// <summary>The token appended where a reply has no end token of its own: config.json's first eos_token_id, else the tokenizer's.</summary>
    public static int? EndToken(Checkpoint ckpt, Tokenizer tokenizer) =>
        ckpt.Config.EosTokenIds.Count > 0 ? ckpt.Config.EosTokenIds[0] : tokenizer.EosId;

    /// <summary>
    /// The examples of a JSONL file. <paramref name="eosIds"/> are the tokens that end a reply (any of them closing the
    /// trained span counts); <paramref name="endToken"/> is the one added where none does.
    /// </summary>
    public static List<TrainingExample> Load(string path, Tokenizer tokenizer, IReadOnlySet<int> eosIds, int endToken, int maxLength, BadRecords? bad = null)
    {
        if (!File.Exists(path)) throw new AttuneException(path, "file not found");
        var template = tokenizer.Config.ChatTemplate is null ? null : ChatTemplate.FromConfig(tokenizer.Config);
        var examples = new List<TrainingExample>();
        foreach (var (n, record) in JsonLines.ReadFile(path, bad))
        {
            string where = $"line {n}";
            var example = (bad ?? new BadRecords()).Guard(() =>
            {
                var e = record["messages"] is JsonArray messages
                    ? FromMessages(messages, template ?? throw new AttuneException(path, where, "\"messages\" need a chat_template in tokenizer_config.json; use prompt/completion records for a base model"), tokenizer, eosIds, endToken, path, where)
                    : FromPromptCompletion(Field(record, "prompt", path, where), Field(record, "completion", path, where), tokenizer, endToken, path, where);
                return e.Tokens.Length > maxLength
                    ? throw new AttuneException(path, where, $"is {e.Tokens.Length} tokens, longer than the block size {maxLength}")
                    : e;
            });
            if (example is not null) examples.Add(example);
        }
        if (examples.Count == 0) throw new AttuneException(path, "holds no example");
        return examples;
    }

    static string Field(JsonObject o, string name, string path, string where) =>
        o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new AttuneException(path, where, $"needs a string field \"{name}\" (or \"messages\")");

    /// <summary>Prompt and completion as plain text (the prompt with the tokenizer's special tokens), the loss on the completion and the end token.</summary>
    public static TrainingExample FromPromptCompletion(string prompt, string completion, Tokenizer tokenizer, int endToken, string path, string where)
    {
        if (completion.Length == 0) throw new AttuneException(path, where, "has an empty completion");
        var ids = tokenizer.Encode(prompt, addSpecialTokens: true).ToList();
        int start = ids.Count;
        tokenizer.Encode(completion, ids, addSpecialTokens: false);
        ids.Add(endToken);
        return Shift(ids, [(start, ids.Count)]);
    }

    /// <summary>A conversation through the chat template, the loss on the assistant's turns and the end token.</summary>
    public static TrainingExample FromMessages(JsonArray messages, ChatTemplate template, Tokenizer tokenizer, IReadOnlySet<int> eosIds, int endToken, string path, string where)
    {
        var list = messages.Select(m => m?.DeepClone()).ToList();
        for (int i = 0; i < list.Count; i++)
            if (list[i] is not JsonObject m || m["role"] is not JsonValue role || !role.TryGetValue<string>(out _)
                || m["content"] is not JsonValue content || !content.TryGetValue<string>(out _))
                throw new AttuneException(path, where, $"message {i + 1} needs \"role\" and \"content\" strings");
        if (!list.Any(m => (string?)m!["role"] == "assistant"))
            throw new AttuneException(path, where, "has no assistant message to train on");
        if (list.Any(m => (string?)m!["role"] == "assistant" && string.IsNullOrEmpty((string?)m!["content"])))
            throw new AttuneException(path, where, "has an empty assistant message");

        ChatRendering full;
        try { full = template.Render(list); }
        catch (TemplateException e) { throw new AttuneException(path, where, $"the chat template failed: {e.Message}"); }
        var spans = new List<(int Start, int End)>();
        if (full.GenerationSpans.Count > 0)
            spans.AddRange(full.GenerationSpans.Select(s => (s.Start, s.End)));
        else
            for (int i = 0; i < list.Count; i++)
            {
                if ((string?)list[i]!["role"] != "assistant") continue;
                string before = template.Render(list.Take(i), addGenerationPrompt: true).Text;
                string through = template.Render(list.Take(i + 1)).Text;
                if (!full.Text.StartsWith(before, StringComparison.Ordinal) || !full.Text.StartsWith(through, StringComparison.Ordinal))
                    throw new AttuneException(path, where, "the chat template renders a conversation's prefixes differently from the whole; give it {% generation %} blocks");
                spans.Add((before.Length, through.Length));
            }

        // Token boundaries: each span edge must fall between tokens of the whole text.
        var ids = tokenizer.Encode(full.Text, addSpecialTokens: false).ToList();
        var tokenSpans = spans.Select(s => (TokenEdge(s.Start), TokenEdge(s.End))).ToList();
        var (lastStart, lastEnd) = tokenSpans[^1];
        if (!ids.Skip(lastStart).Take(lastEnd - lastStart).Any(eosIds.Contains))
        {
            // The end-of-sequence token must be learnt: take the template's own when it follows the span
            // (generation blocks often leave it outside), otherwise add one.
            if (lastEnd >= ids.Count || !eosIds.Contains(ids[lastEnd])) ids.Insert(lastEnd, endToken);
            tokenSpans[^1] = (lastStart, lastEnd + 1);
        }
        return Shift(ids, tokenSpans);

        int TokenEdge(int chars)
        {
            var prefix = tokenizer.Encode(full.Text[..chars], addSpecialTokens: false);
            if (prefix.Length > ids.Count || !ids.Take(prefix.Length).SequenceEqual(prefix))
                throw new AttuneException(path, where, $"an assistant turn starts or ends inside a token (character {chars})");
            return prefix.Length;
        }
    }

    /// <summary>Inputs and next-token targets, with targets only where the predicted token lies in a trained span.</summary>
    static TrainingExample Shift(List<int> ids, IReadOnlyList<(int Start, int End)> trained)
    {
        if (ids.Count < 2) throw new InvalidOperationException("an example needs at least two tokens");
        var tokens = ids.Take(ids.Count - 1).ToArray();
        var targets = Enumerable.Repeat(CrossEntropy.Ignore, tokens.Length).ToArray();
        foreach (var (start, end) in trained)
            for (int j = Math.Max(start, 1); j < end; j++) targets[j - 1] = ids[j];
        return new TrainingExample(tokens, targets);
    }
}
