using System.Text.Json.Nodes;

namespace Attune.Text.Templates;

/// <summary>
/// What <c>attune template</c> does to one JSONL record: <c>messages</c>, <c>add_generation_prompt</c>, optional
/// <c>tools</c> and <c>documents</c>, any other field a template variable → <c>{"text"}</c> (with the assistant's
/// generation spans when the template marks them), or <c>{"error"}</c> when the template refuses the conversation.
/// </summary>
public static class TemplateRecords
{
    public static JsonObject Render(ChatTemplate template, RecordFields record)
    {
        var messages = record.RequiredArray("messages", "an array of messages");
        bool addGenerationPrompt = record.OptionalBool("add_generation_prompt", false);
        var tools = record.OptionalArray("tools");
        var documents = record.OptionalArray("documents");
        var variables = record.Record.Where(kv => kv.Key is not ("messages" or "add_generation_prompt" or "tools" or "documents"))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        try
        {
            var rendering = template.Render(messages, addGenerationPrompt, tools, documents, variables);
            var result = new JsonObject { ["text"] = rendering.Text };
            if (rendering.GenerationSpans.Count > 0)
                result["generation_spans"] = new JsonArray(rendering.GenerationSpans.Select(s => (JsonNode)new JsonArray(s.Start, s.End)).ToArray());
            return result;
        }
        catch (TemplateException e)
        {
            // The conversation broke a rule of the template (or hit a limit): reported for this line, the run goes on.
            return new JsonObject { ["error"] = $"{e.Location}: {e.Problem}" };
        }
    }
}
