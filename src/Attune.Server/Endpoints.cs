using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Attune.Modeling;
using Attune.Prompting;

using Attune.Text;
using Microsoft.AspNetCore.Http;

namespace Attune.Server;

/// <summary>What one choice of a request came to: the prompt's scores, the tokens, and how it ended.</summary>
sealed class ChoiceResult
{
    public PromptScored? Prompt;
    public readonly List<TokenGenerated> Tokens = [];
    public CompletionFinished? Finished;
    public CompletionFailed? Failed;

    public static async Task<ChoiceResult> CollectAsync(ChannelReaderOf reader, CancellationToken cancel)
    {
        var r = new ChoiceResult();
        await foreach (var e in reader.Events.ReadAllAsync(cancel)) r.Add(e);
        return r;
    }

    public void Add(CompletionEvent e)
    {
        switch (e)
        {
            case PromptScored p: Prompt = p; break;
            case TokenGenerated t: Tokens.Add(t); break;
            case CompletionFinished f: Finished = f; break;
            case CompletionFailed f: Failed = f; break;
        }
    }
}

/// <summary>The parts both endpoints share: checking a request against the model, running it, the response's frame.</summary>
abstract class Endpoint(OpenAiServer server, HttpContext ctx)
{
    protected readonly HttpContext Ctx = ctx;
    string? _id;
    /// <summary>The response id: cmpl-… for completions, chatcmpl-… for chat, as OpenAI names them.</summary>
    protected string Id => _id ??= OpenAiServer.NewId(ObjectName.StartsWith("chat") ? "chatcmpl-" : "cmpl-");
    protected readonly long Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    protected string ModelName = "";
    protected BatchEngine Engine = null!;
    protected LanguageModel Model => Engine.Model;
    protected Tokenizer Tokenizer => Engine.Model.Tokenizer;

    protected abstract string ObjectName { get; }
    protected abstract string ChunkObjectName { get; }

    public async Task RunAsync()
    {
        var request = await ApiRequest.ReadAsync(Ctx.Request.Body, Ctx.RequestAborted);
        (ModelName, Engine) = server.Engine(request);
        var jobs = Prepare(request);
        int window = Model.Config.MaxPositionEmbeddings;
        foreach (var job in jobs)
            if (job.PromptIds.Length > window)
                throw ApiError.BadRequest($"the prompt has {job.PromptIds.Length} tokens, over the model's context window of {window}", Prompt, "context_length_exceeded");
        bool stream = request.Bool("stream", false), usage = IncludeUsage(request);
        var (readers, cancel) = OpenAiServer.Submit(Engine, jobs, Ctx);
        try
        {
            if (stream) await StreamAsync(readers, usage);
            else await RespondAsync(readers);
        }
        finally
        {
            cancel.Cancel(); // whatever is still running for this call (a failed sibling choice, an early return) stops now
            cancel.Dispose();
        }
    }

    /// <summary>The request's name for its prompt field (for errors).</summary>
    protected abstract string Prompt { get; }

    /// <summary>Reads the request into engine requests, one per choice (prompts × n).</summary>
    protected abstract List<CompletionRequest> Prepare(ApiRequest request);

    protected abstract JsonObject Choice(int index, ChoiceResult result);

    /// <summary>The stream's first chunk for a choice (echo, or the assistant role), if any.</summary>
    protected abstract JsonObject? OpeningChunk(int index);

    /// <summary>A chunk carrying a generated token's text (and log-probability when asked).</summary>
    protected virtual JsonObject TokenChunk(int index, TokenGenerated token) => TextChunk(index, token.Text, token.Logprob);

    protected abstract JsonObject TextChunk(int index, string text, TokenLogprob? logprob);

    /// <summary>Choices per prompt (n): the prompt's tokens count once per prompt in the usage.</summary>
    protected int ChoicesPerPrompt = 1;

    protected abstract JsonObject ClosingChunk(int index, string finishReason);

    /// <summary>Whether a stop token's (empty) chunk is streamed, carrying its log-probability.</summary>
    protected virtual bool StreamStopTokens => true;

    /// <summary>Text held back by a stream filter (URIAL's closing fence), emitted before the closing chunk.</summary>
    protected virtual string? FlushStream(int index) => null;

    protected static List<CompletionRequest> Choices(IEnumerable<int[]> prompts, GenerationOptions options, int n, int? logprobs, bool scorePrompt) =>
        prompts.SelectMany(ids => Enumerable.Range(0, n).Select(i => new CompletionRequest
        {
            PromptIds = ids,
            Options = options with { Sampling = options.Sampling with { Seed = options.Sampling.Seed + (ulong)i } },
            Logprobs = logprobs,
            ScorePrompt = scorePrompt,
        })).ToList();

    /// <summary>Sampling options checked, their errors as 400s naming the field.</summary>
    protected static GenerationOptions Checked(GenerationOptions options)
    {
        try { options.Sampling.Validate(); }
        catch (AttuneException e) { throw ApiError.BadRequest(e.Problem, e.Location?.TrimStart('-').Replace('-', '_')); }
        return options;
    }

    static bool IncludeUsage(ApiRequest request) =>
        request["stream_options"] is JsonObject o && o["include_usage"] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    async Task RespondAsync(List<ChannelReaderOf> readers)
    {
        var results = await Task.WhenAll(readers.Select(r => ChoiceResult.CollectAsync(r, Ctx.RequestAborted)));
        Ctx.RequestAborted.ThrowIfCancellationRequested();
        if (results.FirstOrDefault(r => r.Failed is not null)?.Failed is { } failed)
            throw failed.IsUserError ? ApiError.BadRequest(failed.Message) : new ApiError(500, failed.Message, type: "server_error");
        if (results.Any(r => r.Finished?.Reason == FinishReason.Cancelled))
            throw new ApiError(503, "the request was cancelled: the server is shutting down", code: "unavailable", type: "server_error");
        var body = Frame(ObjectName);
        body["choices"] = new JsonArray(results.Select((r, i) => (JsonNode)Choice(i, r)).ToArray());
        body["usage"] = Usage(results);
        Ctx.Response.ContentType = "application/json";
        await Ctx.Response.WriteAsync(body.ToJsonString(), Ctx.RequestAborted);
    }

    /// <summary>Server-sent events: one chunk per token as it comes, choices interleaved, then [DONE].</summary>
    async Task StreamAsync(List<ChannelReaderOf> readers, bool includeUsage)
    {
        Ctx.Response.ContentType = "text/event-stream";
        Ctx.Response.Headers.CacheControl = "no-cache";
        Ctx.Response.Headers["X-Accel-Buffering"] = "no";
        var merged = Channel.CreateUnbounded<(int Index, CompletionEvent Event)>();
        var pumps = readers.Select((r, i) => Task.Run(async () =>
        {
            await foreach (var e in r.Events.ReadAllAsync()) merged.Writer.TryWrite((i, e));
        })).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(_ => merged.Writer.TryComplete(), TaskScheduler.Default);

        for (int i = 0; i < readers.Count; i++)
            if (OpeningChunk(i) is { } opening) await SendAsync(opening);
        var results = readers.Select(_ => new ChoiceResult()).ToArray();
        await foreach (var (i, e) in merged.Reader.ReadAllAsync(Ctx.RequestAborted))
        {
            results[i].Add(e);
            switch (e)
            {
                case TokenGenerated { IsStop: true } when !StreamStopTokens:
                    break;
                case TokenGenerated t:
                    await SendAsync(TokenChunk(i, t));
                    break;
                case CompletionFinished f when f.Reason == FinishReason.Cancelled:
                    await SendRawAsync(new ApiError(503, "the request was cancelled: the server is shutting down", code: "unavailable", type: "server_error").Body().ToJsonString());
                    return;
                case CompletionFinished f:
                    if (FlushStream(i) is { Length: > 0 } rest) await SendAsync(TextChunk(i, rest, null));
                    await SendAsync(ClosingChunk(i, FinishName(f.Reason)));
                    break;
                case CompletionFailed f:
                    await SendRawAsync(new ApiError(f.IsUserError ? 400 : 500, f.Message, type: f.IsUserError ? "invalid_request_error" : "server_error").Body().ToJsonString());
                    return;
            }
        }
        if (includeUsage)
        {
            var usage = Frame(ChunkObjectName);
            usage["choices"] = new JsonArray();
            usage["usage"] = Usage(results);
            await SendAsync(usage);
        }
        await SendRawAsync("[DONE]");
    }

    Task SendAsync(JsonObject chunk) => SendRawAsync(chunk.ToJsonString());

    async Task SendRawAsync(string data)
    {
        await Ctx.Response.WriteAsync("data: " + data + "\n\n", Ctx.RequestAborted);
        await Ctx.Response.Body.FlushAsync(Ctx.RequestAborted);
    }

    protected JsonObject Frame(string objectName) => new()
    {
        ["id"] = Id,
        ["object"] = objectName,
        ["created"] = Created,
        ["model"] = ModelName,
    };

    protected JsonObject Chunk(JsonObject choice)
    {
        var chunk = Frame(ChunkObjectName);
        chunk["choices"] = new JsonArray(choice);
        return chunk;
    }

    JsonObject Usage(IReadOnlyList<ChoiceResult> results)
    {
        // A prompt counts once however many choices (n) it has, as OpenAI counts it.
        int prompt = 0, completion = 0;
        for (int i = 0; i < results.Count; i++)
        {
            completion += results[i].Finished?.CompletionTokens ?? 0;
            if (i % ChoicesPerPrompt == 0) prompt += results[i].Finished?.PromptTokens ?? 0;
        }
        return new JsonObject { ["prompt_tokens"] = prompt, ["completion_tokens"] = completion, ["total_tokens"] = prompt + completion };
    }

    protected static string FinishName(FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";
}

/// <summary>
/// <c>POST /v1/completions</c>: prompt as a string, token ids, or a list of either; <c>logprobs</c> with
/// top alternatives and <c>echo</c> (the prompt's own tokens scored), as lm-evaluation-harness uses them
/// to score choices remotely. Offsets and token strings are cut from the decoded text, so the token
/// strings of a choice always join up to its text.
/// </summary>
sealed class CompletionsEndpoint(OpenAiServer server, HttpContext ctx) : Endpoint(server, ctx)
{
    List<(int[] Ids, string Text)> _prompts = [];
    int _n = 1;
    bool _echo;
    int? _logprobs;
    readonly Dictionary<int, int> _streamOffsets = [];

    protected override string ObjectName => "text_completion";
    protected override string ChunkObjectName => "text_completion";
    protected override string Prompt => "prompt";

    protected override List<CompletionRequest> Prepare(ApiRequest request)
    {
        _prompts = ReadPrompts(request);
        _echo = request.Bool("echo", false);
        _logprobs = request.Int("logprobs", 0, 20);
        ChoicesPerPrompt = _n = request.Int("n", 1, 16) ?? 1;
        if (request.Int("best_of", 1, 16) is int bestOf && bestOf != _n)
            throw ApiError.BadRequest("'best_of' other than n is not supported", "best_of");
        var options = Checked(request.Generation("max_tokens", 16, []));
        return Choices(_prompts.Select(p => p.Ids), options, _n, _logprobs, scorePrompt: _echo && _logprobs is not null);
    }

    List<(int[] Ids, string Text)> ReadPrompts(ApiRequest request)
    {
        var node = request["prompt"] ?? throw ApiError.BadRequest("'prompt' is required", "prompt");
        var prompts = new List<(int[], string)>();
        switch (node)
        {
            case JsonValue v when v.TryGetValue<string>(out var text):
                prompts.Add(FromText(text));
                break;
            case JsonArray a when a.Count > 0 && a.All(x => x is JsonValue xv && xv.GetValueKind() == JsonValueKind.Number):
                prompts.Add(FromIds(a, "prompt"));
                break;
            case JsonArray a when a.Count > 0:
                for (int i = 0; i < a.Count; i++)
                    prompts.Add(a[i] switch
                    {
                        JsonValue xv when xv.TryGetValue<string>(out var text) => FromText(text),
                        JsonArray ids when ids.Count > 0 => FromIds(ids, $"prompt[{i}]"),
                        _ => throw ApiError.BadRequest($"'prompt[{i}]' must be a string or a non-empty list of token ids", "prompt"),
                    });
                break;
            default:
                throw ApiError.BadRequest("'prompt' must be a string, a list of token ids, or a non-empty list of either", "prompt");
        }
        return prompts;
    }

    (int[], string) FromText(string text)
    {
        var ids = Tokenizer.Encode(text, addSpecialTokens: true);
        return ids.Length > 0 ? (ids, text) : throw ApiError.BadRequest("the prompt is empty", "prompt");
    }

    (int[], string) FromIds(JsonArray list, string where)
    {
        var ids = new int[list.Count];
        int vocab = Model.Config.VocabSize;
        for (int i = 0; i < ids.Length; i++)
            ids[i] = list[i] is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d >= 0 && d < vocab ? (int)d
                : throw ApiError.BadRequest($"'{where}[{i}]' must be a token id from 0 to {vocab - 1}", "prompt");
        return (ids, Tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    (int[] Ids, string Text) PromptOf(int choice) => _prompts[choice / _n];

    protected override JsonObject Choice(int index, ChoiceResult result)
    {
        var prompt = PromptOf(index);
        var text = result.Finished!.Text;
        return new JsonObject
        {
            ["index"] = index,
            ["text"] = _echo ? prompt.Text + text : text,
            ["logprobs"] = _logprobs is null ? null : LogprobsObject(prompt, result),
            ["finish_reason"] = FinishName(result.Finished.Reason),
        };
    }

    /// <summary>tokens, token_logprobs, top_logprobs and text_offset over the echoed prompt (if asked) and the completion.</summary>
    JsonObject LogprobsObject((int[] Ids, string Text) prompt, ChoiceResult result)
    {
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var tops = new JsonArray();
        var offsets = new JsonArray();
        int baseOffset = 0;
        if (_echo)
        {
            var (pieces, starts, promptEnd) = Pieces(prompt.Ids, 0);
            for (int i = 0; i < prompt.Ids.Length; i++)
            {
                tokens.Add(pieces[i]);
                offsets.Add(starts[i]);
                var scored = i > 0 ? result.Prompt?.Tokens[i - 1] : null;
                logprobs.Add(scored is null ? null : (JsonNode)scored.LogProb);
                tops.Add(scored is null ? null : TopObject(scored));
            }
            baseOffset = promptEnd;
        }
        var kept = result.Tokens.Where(t => t.Id >= 0 && !t.IsStop).ToList();
        var (genPieces, genStarts, end) = Pieces(kept.Select(t => t.Id).ToArray(), baseOffset);
        for (int i = 0; i < kept.Count; i++)
        {
            tokens.Add(genPieces[i]);
            offsets.Add(genStarts[i]);
            logprobs.Add(kept[i].Logprob!.LogProb);
            tops.Add(TopObject(kept[i].Logprob!));
        }
        if (result.Tokens.LastOrDefault(t => t.IsStop) is { Logprob: { } stop })
        {
            // The stop token adds no text, but it was generated: its log-probability is listed, as OpenAI and vLLM list it.
            tokens.Add("");
            offsets.Add(end);
            logprobs.Add(stop.LogProb);
            tops.Add(TopObject(stop));
        }
        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = tops, ["text_offset"] = offsets };
    }

    /// <summary>
    /// Each token's piece of the decoded text and where it starts (in code points, as Python counts
    /// them): token i covers decode(ids[..i+1]) minus decode(ids[..i]), an unfinished UTF-8 character
    /// left to the token that completes it. The two decodes start a few tokens back rather than at 0
    /// (the difference is the same, and a long prompt costs linear time), unless that window holds a
    /// broken character, when they start at 0.
    /// </summary>
    (string[] Pieces, int[] Starts, int End) Pieces(int[] ids, int offset)
    {
        const int Window = 8;
        var pieces = new string[ids.Length];
        var starts = new int[ids.Length];
        int codePoints = offset;
        string Decode(int from, int to, bool last)
        {
            var text = Tokenizer.Decode(ids.AsSpan(from, to - from).ToArray(), skipSpecialTokens: true, cleanUpTokenizationSpaces: false);
            return last ? text : text.TrimEnd('\uFFFD');
        }
        for (int i = 0; i < ids.Length; i++)
        {
            bool last = i == ids.Length - 1;
            int from = Math.Max(0, i - Window);
            var upTo = Decode(from, i + 1, last);
            var before = i > from ? Decode(from, i, false) : "";
            if (from > 0 && (upTo.Contains('\uFFFD') || before.Contains('\uFFFD')))
            {
                upTo = Decode(0, i + 1, last);
                before = Decode(0, i, false);
            }
            var piece = upTo.StartsWith(before, StringComparison.Ordinal) ? upTo[before.Length..] : upTo;
            pieces[i] = piece;
            starts[i] = codePoints;
            codePoints += Attune.Text.CodePoints.Count(piece);
        }
        return (pieces, starts, codePoints);
    }

    JsonObject TopObject(TokenLogprob scored)
    {
        var top = new JsonObject();
        foreach (var (id, lp) in scored.Top)
        {
            var key = Tokenizer.Decode([id], skipSpecialTokens: false, cleanUpTokenizationSpaces: false);
            if (!top.ContainsKey(key)) top[key] = lp;
        }
        return top;
    }

    protected override JsonObject? OpeningChunk(int index)
    {
        if (!_echo) return null;
        var text = PromptOf(index).Text;
        _streamOffsets[index] = Attune.Text.CodePoints.Count(text); // the completion's offsets count from the end of the echoed prompt
        return Chunk(new JsonObject { ["index"] = index, ["text"] = text, ["logprobs"] = null, ["finish_reason"] = null });
    }

    protected override JsonObject TextChunk(int index, string text, TokenLogprob? logprob)
    {
        JsonNode? logprobs = null;
        if (_logprobs is not null && logprob is { } lp)
        {
            int offset = _streamOffsets.GetValueOrDefault(index);
            logprobs = new JsonObject
            {
                ["tokens"] = new JsonArray(text),
                ["token_logprobs"] = new JsonArray(lp.LogProb),
                ["top_logprobs"] = new JsonArray(TopObject(lp)),
                ["text_offset"] = new JsonArray(offset),
            };
        }
        _streamOffsets[index] = _streamOffsets.GetValueOrDefault(index) + Attune.Text.CodePoints.Count(text);
        return Chunk(new JsonObject { ["index"] = index, ["text"] = text, ["logprobs"] = logprobs, ["finish_reason"] = null });
    }

    protected override JsonObject ClosingChunk(int index, string finishReason) =>
        Chunk(new JsonObject { ["index"] = index, ["text"] = "", ["logprobs"] = null, ["finish_reason"] = finishReason });
}

/// <summary>
/// <c>POST /v1/chat/completions</c>: the conversation through the model's chat template, or, with
/// <c>"mode": "urial"</c> (and <c>"lang"</c>, <c>"shots"</c>), through a URIAL prompt for base models.
/// </summary>
sealed class ChatEndpoint(OpenAiServer server, HttpContext ctx) : Endpoint(server, ctx)
{
    bool _urial;
    bool _logprobs;
    readonly Dictionary<int, BufferedCleaner> _cleaners = [];

    protected override string ObjectName => "chat.completion";
    protected override string ChunkObjectName => "chat.completion.chunk";
    protected override bool StreamStopTokens => false;
    protected override string Prompt => "messages";

    protected override List<CompletionRequest> Prepare(ApiRequest request)
    {
        var messages = request.Messages();
        var modeName = request["mode"] is JsonValue mv && mv.TryGetValue<string>(out var m) ? m : "chat";
        if (modeName is not ("chat" or "urial")) throw ApiError.BadRequest("'mode' must be chat or urial", "mode");
        _urial = modeName == "urial";
        var lang = request["lang"] is JsonValue lv && lv.TryGetValue<string>(out var l) ? l : "en";
        if (!UrialPrompt.Languages.Contains(lang)) throw ApiError.BadRequest($"'lang' must be one of {string.Join(", ", UrialPrompt.Languages)}", "lang");
        int shots = request.Int("shots", 0, 64) ?? UrialPrompt.DefaultShots;
        int[] ids;
        try
        {
            ids = ChatPrompt.Encode(Tokenizer, _urial ? PromptMode.Urial : PromptMode.Chat, _urial ? UrialPrompt.BuiltIn(lang) : null, messages, shots);
        }
        catch (AttuneException e) { throw ApiError.BadRequest(e.Problem + (_urial ? "" : " (or send \"mode\": \"urial\")"), "messages"); }
        _logprobs = request.Bool("logprobs", false);
        int top = request.Int("top_logprobs", 0, 20) ?? 0;
        int n = ChoicesPerPrompt = request.Int("n", 1, 16) ?? 1;
        int room = Math.Max(0, Model.Config.MaxPositionEmbeddings - ids.Length);
        var options = Checked(request.Generation("max_completion_tokens", room, _urial ? UrialPrompt.StopStrings : []));
        return Choices([ids], options, n, _logprobs ? top : null, scorePrompt: false);
    }

    string Answer(string text) => _urial ? UrialPrompt.CleanAnswer(text) : text;

    protected override JsonObject Choice(int index, ChoiceResult result) => new()
    {
        ["index"] = index,
        ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = Answer(result.Finished!.Text) },
        ["logprobs"] = _logprobs ? new JsonObject { ["content"] = new JsonArray(result.Tokens.Where(t => t.Id >= 0 && !t.IsStop).Select(t => (JsonNode)ContentLogprob(t.Logprob!)).ToArray()) } : null,
        ["finish_reason"] = FinishName(result.Finished.Reason),
    };

    JsonObject ContentLogprob(TokenLogprob lp)
    {
        var entry = Entry(lp.Id, lp.LogProb);
        entry["top_logprobs"] = new JsonArray(lp.Top.Select(t => (JsonNode)Entry(t.Id, t.LogProb)).ToArray());
        return entry;
    }

    JsonObject Entry(int id, double logprob)
    {
        var token = Tokenizer.Decode([id], skipSpecialTokens: false, cleanUpTokenizationSpaces: false);
        return new JsonObject
        {
            ["token"] = token,
            ["logprob"] = logprob,
            ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(token).Select(b => (JsonNode)(int)b).ToArray()),
        };
    }

    protected override JsonObject? OpeningChunk(int index) =>
        Chunk(new JsonObject { ["index"] = index, ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" }, ["logprobs"] = null, ["finish_reason"] = null });

    protected override JsonObject TokenChunk(int index, TokenGenerated token)
    {
        if (!_urial) return TextChunk(index, token.Text, token.Logprob);
        // The URIAL answer loses its closing fence and surrounding blanks even when streamed.
        return TextChunk(index, Cleaner(index).Write(token.Text), token.Logprob);
    }

    protected override JsonObject TextChunk(int index, string text, TokenLogprob? logprob) => Chunk(new JsonObject
    {
        ["index"] = index,
        ["delta"] = new JsonObject { ["content"] = text },
        ["logprobs"] = _logprobs && logprob is { } lp ? new JsonObject { ["content"] = new JsonArray(ContentLogprob(lp)) } : null,
        ["finish_reason"] = null,
    });

    protected override string? FlushStream(int index) => _urial ? Cleaner(index).Finish() : null;

    /// <summary>A choice's URIAL filter, returning what it lets through per call.</summary>
    BufferedCleaner Cleaner(int index) => _cleaners.TryGetValue(index, out var c) ? c : _cleaners[index] = new BufferedCleaner();

    sealed class BufferedCleaner
    {
        readonly StringBuilder _out = new();
        readonly UrialPrompt.StreamCleaner _cleaner;

        public BufferedCleaner() => _cleaner = new UrialPrompt.StreamCleaner(s => _out.Append(s));

        public string Write(string text) { _cleaner.Write(text); return Take(); }

        public string Finish() { _cleaner.Finish(); return Take(); }

        string Take() { var s = _out.ToString(); _out.Clear(); return s; }
    }

    protected override JsonObject ClosingChunk(int index, string finishReason) =>
        Chunk(new JsonObject { ["index"] = index, ["delta"] = new JsonObject(), ["logprobs"] = null, ["finish_reason"] = finishReason });
}
