using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Text;

/// <summary>
/// What tokenizer_config.json adds to tokenizer.json: the named special tokens, whether BOS/EOS
/// are added, decode clean-up, and the chat template (kept as written; rendered elsewhere).
/// </summary>
public sealed record TokenizerConfig
{
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    public string? PadToken { get; init; }
    public string? UnkToken { get; init; }
    public bool? AddBosToken { get; init; }
    public bool? AddEosToken { get; init; }
    public bool CleanUpTokenizationSpaces { get; init; }
    public string? TokenizerClass { get; init; }
    /// <summary>The <c>chat_template</c> value: a string, or a list of <c>{name, template}</c>.</summary>
    public JsonNode? ChatTemplate { get; init; }

    public static readonly TokenizerConfig Empty = new();

    public static TokenizerConfig Load(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(Utf8Input.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw new AttuneException(path, $"not valid JSON: {e.Message}"); }
        catch (IOException e) { throw new AttuneException(path, $"cannot read: {e.Message}"); }
        if (root is not JsonObject o) throw new AttuneException(path, "not a JSON object");
        return Parse(o, path);
    }

    public static TokenizerConfig Parse(JsonObject o, string path)
    {

        string? Token(string name)
        {
            var n = o[name];
            return n switch
            {
                null => null,
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonObject obj when obj["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
                _ => throw new AttuneException(path, name, "must be a string, an object with \"content\", or null"),
            };
        }
        bool? Flag(string name)
        {
            var n = o[name];
            if (n is null) return null;
            return n is JsonValue v && v.TryGetValue<bool>(out var b) ? b
                : throw new AttuneException(path, name, "must be true or false");
        }
        var template = o["chat_template"];
        if (template is not null and not JsonArray && !(template is JsonValue tv && tv.TryGetValue<string>(out _)))
            throw new AttuneException(path, "chat_template", "must be a string or a list of {name, template}");
        return new TokenizerConfig
        {
            BosToken = Token("bos_token"),
            EosToken = Token("eos_token"),
            PadToken = Token("pad_token"),
            UnkToken = Token("unk_token"),
            AddBosToken = Flag("add_bos_token"),
            AddEosToken = Flag("add_eos_token"),
            CleanUpTokenizationSpaces = Flag("clean_up_tokenization_spaces") ?? false,
            TokenizerClass = o["tokenizer_class"] is JsonValue cls && cls.TryGetValue<string>(out var c) ? c : null,
            ChatTemplate = template?.DeepClone(),
        };
    }
}
