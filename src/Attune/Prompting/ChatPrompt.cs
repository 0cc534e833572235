using System.Text.Json.Nodes;
using Attune.Text;
using Attune.Text.Templates;

namespace Attune.Prompting;

/// <summary>How a conversation becomes a prompt: the model's own chat template, or URIAL for base models.</summary>
public enum PromptMode { Raw, Chat, Urial }

/// <summary>Prompts for conversations, in the three modes the study compares.</summary>
public static class ChatPrompt
{
    public static PromptMode ParseMode(string text, string field = "--mode") => text switch
    {
        "raw" => PromptMode.Raw,
        "chat" => PromptMode.Chat,
        "urial" => PromptMode.Urial,
        _ => throw new AttuneException(null, field, $"\"{text}\" is not one of raw, chat, urial"),
    };

    /// <summary>
    /// The conversation through the tokenizer's chat template, ending with the assistant's opening
    /// (add_generation_prompt). Tokenize the result without adding special tokens: the template writes
    /// them itself, as transformers' apply_chat_template does.
    /// </summary>
    public static string RenderChat(Tokenizer tokenizer, IReadOnlyList<ChatMessage> conversation)
    {
        if (tokenizer.Config.ChatTemplate is null)
            throw new AttuneException(tokenizer.Source, "the model has no chat_template in tokenizer_config.json; use --mode urial (base models) or raw");
        return RenderChat(tokenizer, conversation, templateName: null, continueFinalMessage: false);
    }

    /// <summary>
    /// A conversation through the tokenizer's chat template (the one named, or its default), ending with the assistant's
    /// opening, or — <paramref name="continueFinalMessage"/> — cut right after the last message's text so the model
    /// continues it, as transformers' apply_chat_template(continue_final_message=True) does.
    /// </summary>
    public static string RenderChat(Tokenizer tokenizer, IReadOnlyList<ChatMessage> conversation, string? templateName, bool continueFinalMessage) =>
        RenderChat(TemplateOf(tokenizer, templateName), conversation, continueFinalMessage, tokenizer.Source);

    /// <summary>The tokenizer's chat template (the one named, or its default); one line when it has none.</summary>
    public static ChatTemplate TemplateOf(Tokenizer tokenizer, string? templateName) =>
        tokenizer.Config.ChatTemplate is null
            ? throw new AttuneException(tokenizer.Source, "--apply-chat-template", "the model has no chat_template in tokenizer_config.json")
            : ChatTemplate.FromConfig(tokenizer.Config, templateName);

    /// <summary>
    /// A task prompt's conversation through a chat template, as lm-evaluation-harness renders it: a template that
    /// refuses the system message (Gemma's raise "System role not supported") is tried again without it.
    /// </summary>
    public static string RenderTaskChat(ChatTemplate template, IReadOnlyList<ChatMessage> conversation, bool continueFinalMessage, string? source = null)
    {
        try { return RenderChat(template, conversation, continueFinalMessage, source); }
        catch (TemplateException) when (conversation.Any(m => m.Role == "system"))
        {
            return RenderChat(template, conversation.Where(m => m.Role != "system").ToList(), continueFinalMessage, source);
        }
    }

    /// <summary>A conversation through a chat template, with the assistant's opening or continuing the last message (see above).</summary>
    public static string RenderChat(ChatTemplate template, IReadOnlyList<ChatMessage> conversation, bool continueFinalMessage, string? source = null)
    {
        var messages = conversation.Select(m => (JsonNode?)new JsonObject { ["role"] = m.Role, ["content"] = m.Content });
        var text = template.Render(messages, addGenerationPrompt: !continueFinalMessage).Text;
        if (!continueFinalMessage) return text;
        var last = conversation[^1].Content.Trim();
        int at = text.LastIndexOf(last, StringComparison.Ordinal);
        return at < 0 ? throw new AttuneException(source, "chat_template", "the rendered conversation does not contain the final message, so it cannot be continued")
            : text[..(at + last.Length)];
    }

    /// <summary>Token ids of a conversation's prompt in the chosen mode (raw takes the last user turn as is).</summary>
    public static int[] Encode(Tokenizer tokenizer, PromptMode mode, UrialPrompt? urial, IReadOnlyList<ChatMessage> conversation, int shots = UrialPrompt.DefaultShots) => mode switch
    {
        PromptMode.Chat => tokenizer.Encode(RenderChat(tokenizer, conversation), addSpecialTokens: false),
        PromptMode.Urial => tokenizer.Encode((urial ?? throw new ArgumentNullException(nameof(urial))).Render(conversation, shots), addSpecialTokens: true),
        _ => tokenizer.Encode(conversation[^1].Content, addSpecialTokens: true),
    };
}
