using System.Text;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Text.Templates;

namespace Attune.Evaluation.Instructions;

/// <summary>
/// Responses that already exist, scored as IFEval's evaluation_main scores them: a response file with <c>prompt</c>
/// and <c>response</c> per line (IFEval's input_response_data; its eval_results files qualify too), matched to the
/// input's prompts by text, and the verdicts written as its eval_results_strict.jsonl and eval_results_loose.jsonl.
/// </summary>
public static class IfVerdicts
{
    /// <summary>Each prompt's response; a later line for the same prompt wins, as in IFEval's dictionary. A response that is not text (null) follows nothing.</summary>
    public static Dictionary<string, string?> LoadResponses(string path)
    {
        var responses = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (line, rec) in JsonLines.ReadFile(path))
        {
            var prompt = rec["prompt"] is JsonValue p && p.TryGetValue<string>(out var text) ? text
                : throw new AttuneException(path, $"line {line}: prompt", "must be the prompt's text (a response file has \"prompt\" and \"response\" per line)");
            if (!rec.ContainsKey("response")) throw new AttuneException(path, $"line {line}: response", "is missing");
            responses[prompt] = rec["response"] is JsonValue r && r.TryGetValue<string>(out var response) ? response : null;
        }
        return responses;
    }

    /// <summary>Scores every prompt's response; each prompt must have one (IFEval stops on a prompt without).</summary>
    public static List<IfItem> Score(IReadOnlyList<IfPrompt> prompts, IReadOnlyDictionary<string, string?> responses, string responsesPath)
    {
        var missing = prompts.Where(p => !responses.ContainsKey(p.Prompt)).ToList();
        if (missing.Count == prompts.Count && prompts.Count > 0)
            throw new AttuneException(responsesPath, $"matches none of the {prompts.Count} prompts (responses are matched to prompts by their exact text)");
        if (missing.Count > 0)
            throw new AttuneException(responsesPath, $"has no response for {missing.Count} of the {prompts.Count} prompts, the first with key {missing[0].Key}");
        return prompts.Select(p => responses[p.Prompt] is { } r ? IfEvaluation.Score(p, r) : IfEvaluation.Unanswered(p)).ToList();
    }

    /// <summary>
    /// Writes eval_results_strict.jsonl and eval_results_loose.jsonl into <paramref name="dir"/> as IFEval writes them
    /// (its keys in its order, Python's json.dumps spacing and ASCII escapes), each file whole or not at all.
    /// </summary>
    public static void Write(string dir, IReadOnlyList<IfItem> items)
    {
        Directory.CreateDirectory(dir);
        foreach (var (name, strict) in new[] { ("eval_results_strict.jsonl", true), ("eval_results_loose.jsonl", false) })
        {
            var sb = new StringBuilder();
            foreach (var item in items)
            {
                var follows = strict ? item.Strict : item.Loose;
                var record = new JsonObject
                {
                    ["follow_all_instructions"] = follows.All(x => x),
                    ["follow_instruction_list"] = new JsonArray(follows.Select(x => (JsonNode)x).ToArray()),
                    ["instruction_id_list"] = new JsonArray((item.Prompt.SourceIds ?? item.Prompt.Instructions.Select(i => i.Id).ToList()).Select(x => (JsonNode)x).ToArray()),
                    ["prompt"] = item.Prompt.Prompt,
                    ["response"] = item.Unanswered ? null : item.Response,
                };
                sb.Append(TemplateJson.DumpsPython(record, ensureAscii: true)).Append('\n');
            }
            AtomicFile.WriteAllText(Path.Combine(dir, name), sb.ToString());
        }
    }
}
