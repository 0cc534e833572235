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
        var template = ChatTemplate.FromConfig(tokenizer.Config);
        var messages = conversation.Select(m => (JsonNode?)new JsonObject { ["role"] = m.Role, ["content"] = m.Content });
        return template.Render(messages, addGenerationPrompt: true).Text;
    }

    /// <summary>Token ids of a conversation's prompt in the chosen mode (raw takes the last user turn as is).</summary>
    public static int[] Encode(Tokenizer tokenizer, PromptMode mode, UrialPrompt? urial, IReadOnlyList<ChatMessage> conversation, int shots = UrialPrompt.DefaultShots) => mode switch
    {
        PromptMode.Chat => tokenizer.Encode(RenderChat(tokenizer, conversation), addSpecialTokens: false),
        PromptMode.Urial => tokenizer.Encode((urial ?? throw new ArgumentNullException(nameof(urial))).Render(conversation, shots), addSpecialTokens: true),
        _ => tokenizer.Encode(conversation[^1].Content, addSpecialTokens: true),
    };
}
