using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Modeling;
using Attune.Prompting;

namespace Attune.Server;

/// <summary>A request the API refuses: the HTTP status and an OpenAI-style error body.</summary>
public sealed class ApiError(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public static ApiError BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    public JsonObject Body() => new()
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    };
}

/// <summary>
/// Reads and checks the fields of a completions or chat request body. Every bad value is an
/// <see cref="ApiError"/> naming the field; fields the server does not know are ignored, as
/// OpenAI-compatible servers do.
/// </summary>
sealed class ApiRequest(JsonObject body)
{
    public JsonObject Body => body;

    public static async Task<ApiRequest> ReadAsync(Stream stream, CancellationToken cancel)
    {
        // Read whole and checked first: System.Text.Json parses invalid UTF-8 inside a string and fails only
        // when the string is read, with an InvalidOperationException.
        var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, cancel);
        var bytes = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        if (Utf8Input.FindInvalid(bytes.Span) is var bad and >= 0)
            throw ApiError.BadRequest($"the request body is not valid UTF-8 (byte {bad})");
        JsonNode? node;
        try { node = JsonNode.Parse(bytes.Span, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }); }
        catch (JsonException e) { throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message}"); }
        return node is JsonObject o ? new ApiRequest(o) : throw ApiError.BadRequest("the request body must be a JSON object");
    }

    public JsonNode? this[string name] => body[name];

    public string RequiredString(string name) =>
        body[name] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s
        : throw ApiError.BadRequest(body[name] is null ? $"'{name}' is required" : $"'{name}' must be a non-empty string", name);

    public bool Bool(string name, bool fallback) => body[name] switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw ApiError.BadRequest($"'{name}' must be true or false", name),
    };

    public int? Int(string name, int min, int max)
    {
        if (body[name] is null) return null;
        if (body[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d)
            && d == Math.Floor(d) && d >= min && d <= max)
            return (int)d;
        throw ApiError.BadRequest($"'{name}' must be an integer from {min} to {max}", name);
    }

    public double? Number(string name, double min, double max, bool minExclusive = false)
    {
        if (body[name] is null) return null;
        if (body[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d)
            && (minExclusive ? d > min : d >= min) && d <= max)
            return d;
        throw ApiError.BadRequest($"'{name}' must be a number in {(minExclusive ? "(" : "[")}{min}, {max}]", name);
    }

    /// <summary>The seed: a 64-bit integer (negative ones are taken modulo 2⁶⁴); none given: a fresh random one.</summary>
    public ulong Seed()
    {
        if (body["seed"] is null) return (ulong)Random.Shared.NextInt64();
        if (body["seed"] is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            if (v.TryGetValue<long>(out var l)) return unchecked((ulong)l);
            if (v.TryGetValue<ulong>(out var u)) return u;
        }
        throw ApiError.BadRequest("'seed' must be an integer", "seed");
    }

    /// <summary>'stop': a string or a list of strings.</summary>
    public List<string> Stops() => body["stop"] switch
    {
        null => [],
        JsonValue v when v.TryGetValue<string>(out var s) => s.Length > 0 ? [s] : [],
        JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => a.Select(x => x!.GetValue<string>()).Where(s => s.Length > 0).ToList(),
        _ => throw ApiError.BadRequest("'stop' must be a string or a list of strings", "stop"),
    };

    /// <summary>Sampling, budget and stops shared by both endpoints; llama.cpp/vLLM's extensions top_k, min_p, repetition_penalty included.</summary>
    public GenerationOptions Generation(string maxTokensName, int defaultMaxTokens, IReadOnlyList<string> extraStops)
    {
        foreach (var unsupported in new[] { "presence_penalty", "frequency_penalty" })
            if (Number(unsupported, -2, 2) is double p && p != 0)
                throw ApiError.BadRequest($"'{unsupported}' is not supported (use 'repetition_penalty')", unsupported);
        if (body["logit_bias"] is JsonObject bias && bias.Count > 0)
            throw ApiError.BadRequest("'logit_bias' is not supported", "logit_bias");
        int maxTokens = Int(maxTokensName, 0, int.MaxValue) ?? Int("max_tokens", 0, int.MaxValue) ?? defaultMaxTokens;
        int topK = Int("top_k", -1, int.MaxValue) ?? 0;
        return new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            IgnoreEos = Bool("ignore_eos", false), // vLLM's extension
            StopStrings = [.. Stops(), .. extraStops],
            Sampling = new SamplingOptions
            {
                Temperature = (float)(Number("temperature", 0, 2) ?? 1.0),
                TopP = (float)(Number("top_p", 0, 1, minExclusive: true) ?? 1.0),
                TopK = Math.Max(0, topK),
                MinP = (float)(Number("min_p", 0, 0.999999) ?? 0),
                RepetitionPenalty = (float)(Number("repetition_penalty", 0, 100, minExclusive: true) ?? 1.0),
                Seed = Seed(),
            },
        };
    }

    /// <summary>Chat messages: role and content, the content a string or a list of text parts.</summary>
    public List<ChatMessage> Messages()
    {
        if (body["messages"] is not JsonArray list || list.Count == 0)
            throw ApiError.BadRequest("'messages' must be a non-empty list", "messages");
        var messages = new List<ChatMessage>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            string where = $"messages[{i}]";
            if (list[i] is not JsonObject m) throw ApiError.BadRequest($"'{where}' must be an object", where);
            if (m["role"] is not JsonValue rv || !rv.TryGetValue<string>(out var role) || role is not ("system" or "developer" or "user" or "assistant"))
                throw ApiError.BadRequest($"'{where}.role' must be one of system, developer, user, assistant", $"{where}.role");
            messages.Add(new ChatMessage(role == "developer" ? "system" : role, Content(m["content"], $"{where}.content")));
        }
        return messages;
    }

    static string Content(JsonNode? content, string where) => content switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray parts => string.Concat(parts.Select((p, j) =>
            p is JsonObject o && o["type"]?.GetValue<string>() == "text" && o["text"] is JsonValue t && t.TryGetValue<string>(out var text) ? text
            : throw ApiError.BadRequest($"'{where}[{j}]' must be a text part {{\"type\":\"text\",\"text\":...}} (only text is supported)", where))),
        _ => throw ApiError.BadRequest($"'{where}' must be a string or a list of text parts", where),
    };
}
