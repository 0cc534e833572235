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

            Jsonl.Transform(io, r => TemplateRecords.Render(template, r));
            return Program.Success;
        });
        return cmd;
    }
}
