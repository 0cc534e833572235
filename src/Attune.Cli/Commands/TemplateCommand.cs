using System.CommandLine;
using System.Text.Json.Nodes;
using Attune.Text.Templates;

namespace Attune.Cli.Commands;

/// <summary>
/// <c>attune template</c>: conversations (JSONL) through a tokenizer_config.json's chat template,
/// one <c>{"text"}</c> (or <c>{"error"}</c> when the template refuses the conversation) per line.
/// </summary>
public static class TemplateCommand
{
    public static Command Build()
    {
        var config = new Option<string>("--tokenizer-config")
        {
            Description = "A tokenizer_config.json with a chat_template (or the checkpoint folder holding one)",
            Required = true,
        };
        var name = new Option<string?>("--template-name")
        {
            Description = "Which template to use when chat_template is a list of named templates (default: 'tool_use' for lines with tools if present, else 'default')",
        };
        var cmd = new Command("template",
            "Render conversations: JSONL {\"messages\", \"add_generation_prompt\"} on stdin → {\"text\"} or {\"error\"} on stdout. " +
            "Optional per line: \"tools\", \"documents\", and any other field as a template variable (e.g. \"enable_thinking\").")
        {
            config, name,
        };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var path = parse.GetValue(config)!;
            if (Directory.Exists(path)) path = Path.Combine(path, "tokenizer_config.json");
            var template = ChatTemplate.Load(path, parse.GetValue(name));
            // A template that does not parse fails the command at once, not once per line.
            if (template.Names.Count == 0 || template.TemplateName is not null || template.Names.Contains("default"))
                template.Resolve();

            foreach (var (line, rec) in Jsonl.Read(io.In))
            {
                if (rec["messages"] is not JsonArray messages)
                    throw new AttuneException("<stdin>", $"line {line}", "field \"messages\" must be an array of messages");
                bool addGenerationPrompt = rec["add_generation_prompt"] switch
                {
                    null => false,
                    JsonValue v when v.TryGetValue<bool>(out var b) => b,
                    _ => throw new AttuneException("<stdin>", $"line {line}", "field \"add_generation_prompt\" must be true or false"),
                };
                var tools = Optional(rec, "tools", line);
                var documents = Optional(rec, "documents", line);
                var variables = new Dictionary<string, JsonNode?>();
                foreach (var (key, value) in rec)
                    if (key is not ("messages" or "add_generation_prompt" or "tools" or "documents"))
                        variables[key] = value;

                JsonObject result;
                try
                {
                    var rendering = template.Render(messages, addGenerationPrompt, tools, documents, variables);
                    result = new JsonObject { ["text"] = rendering.Text };
                    if (rendering.GenerationSpans.Count > 0)
                        result["generation_spans"] = new JsonArray(rendering.GenerationSpans
                            .Select(s => (JsonNode)new JsonArray(s.Start, s.End)).ToArray());
                }
                catch (TemplateException e)
                {
                    // The conversation broke a rule of the template (or hit a limit): report it for this line and go on.
                    result = new JsonObject { ["error"] = $"{e.Location}: {e.Problem}" };
                }
                Jsonl.Write(io.Out, result);
            }
            return Program.Success;
        });
        return cmd;
    }

    static JsonArray? Optional(JsonObject rec, string field, int line) => rec[field] switch
    {
        null => null,
        JsonArray a => a,
        _ => throw new AttuneException("<stdin>", $"line {line}", $"field \"{field}\" must be an array or null"),
    };
}
