namespace Attune.Merging.Mergekit;

/// <summary>
/// The chat formats a mergekit recipe may name in <c>chat_template</c> (alpaca, chatml, llama3, mistral, exaone), written
/// here as Jinja templates that render each format's standard layout — the template text is Attune's own, so it may
/// differ from mergekit's files in whitespace inside Jinja tags, not in what it renders for a conversation.
/// </summary>
public static class NamedChatTemplates
{
    public static readonly IReadOnlyDictionary<string, string> All = new Dictionary<string, string>
    {
        ["chatml"] =
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ["llama3"] =
            "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ["alpaca"] =
            "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
            + "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
            + "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
        ["mistral"] =
            "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] + '\\n\\n' %}{% set turns = messages[1:] %}"
            + "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
            + "{% for message in turns %}{% if message['role'] == 'user' %}{{ '[INST] ' + (system if loop.first else '') + message['content'] + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
        ["exaone"] =
            "{% for message in messages %}{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ '[|endofturn|]\\n' }}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
    };
}
