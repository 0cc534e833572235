using System.Numerics.Tensors;
using Attune.Text;

namespace Attune.Modeling;

/// <summary>
/// One sequence's side of generation, apart from the forward pass: it samples the next token from a
/// row of logits, and on accepting it applies the stop tokens, stop strings, token budget and
/// repetition guard, and says how much new text is safe to show (never a partial UTF-8 character,
/// never the start of a stop string). <see cref="LanguageModel.Generate"/> drives one; the batching
/// engine drives many over a shared forward pass, so both produce the same tokens.
/// </summary>
public sealed class SequenceDecoder
{
    readonly Func<IReadOnlyList<int>, string> _decode;
    readonly GenerationOptions _options;
    readonly Sampler _sampler;
    readonly HashSet<int> _stopIds;
    readonly List<int> _history;
    readonly List<int> _generated = [];
    int _emitted;

    /// <summary>The most tokens this sequence may add (the request's budget, clipped to the context window).</summary>
    public int Budget { get; }
    public IReadOnlyList<int> Generated => _generated;
    /// <summary>The text so far (cut before a stop string once one appears).</summary>
    public string Text { get; private set; } = "";
    /// <summary>Null while the sequence goes on.</summary>
    public FinishReason? Finish { get; private set; }

    public SequenceDecoder(Tokenizer tokenizer, IEnumerable<int> endOfSequenceIds, IReadOnlyList<int> promptIds, GenerationOptions options, int contextWindow)
        : this(ids => tokenizer.Decode(ids, skipSpecialTokens: false, cleanUpTokenizationSpaces: false), endOfSequenceIds, promptIds, options, contextWindow)
    {
    }

    /// <summary>A decoder whose tokens become text through <paramref name="decode"/> (another engine's tokenizer).</summary>
    public SequenceDecoder(Func<IReadOnlyList<int>, string> decode, IEnumerable<int> endOfSequenceIds, IReadOnlyList<int> promptIds, GenerationOptions options, int contextWindow)
    {
        if (options.MaxNewTokens < 0) throw new AttuneException(null, "--max-tokens", $"{options.MaxNewTokens} must be ≥ 0");
        if (promptIds.Count == 0) throw new AttuneException(null, "the prompt is empty");
        if (promptIds.Count > contextWindow)
            throw new AttuneException(null, $"the prompt of {promptIds.Count} tokens exceeds the model's context window of {contextWindow}");
        _decode = decode;
        _options = options;
        _sampler = new Sampler(options.Sampling);
        _stopIds = [.. options.IgnoreEos ? [] : endOfSequenceIds, .. options.StopTokenIds];
        _history = [.. promptIds];
        Budget = Math.Min(options.MaxNewTokens, contextWindow - promptIds.Count);
        if (Budget == 0) Finish = FinishReason.Length;
    }

    /// <summary>The next token drawn from <paramref name="logits"/> (the row that follows the sequence so far).</summary>
    public int Sample(ReadOnlySpan<float> logits) => _sampler.Next(logits, _history);

    /// <summary>Takes <paramref name="token"/> as the next one; returns the text that became safe to show.</summary>
    public string Accept(int token)
    {
        if (Finish is not null) throw new InvalidOperationException("the sequence has finished");
        if (_stopIds.Contains(token)) { Finish = FinishReason.Stop; return Flush(); }
        _generated.Add(token);
        _history.Add(token);
        Text = _decode(_generated);
        int cut = FirstStop(Text, _options.StopStrings);
        if (cut >= 0)
        {
            Text = Text[..cut];
            Finish = FinishReason.Stop;
            return Flush();
        }
        if (_options.RepetitionGuard is { } guard && guard.IsLooping(_generated)) Finish = FinishReason.Repetition;
        else if (_generated.Count >= Budget) Finish = FinishReason.Length;
        if (Finish is not null) return Flush();
        int safe = SafeLength(Text, _options.StopStrings);
        if (safe <= _emitted) return "";
        var delta = Text[_emitted..safe];
        _emitted = safe;
        return delta;
    }

    /// <summary>Ends the sequence early (a cancelled request).</summary>
    public void Cancel() => Finish ??= FinishReason.Cancelled;

    /// <summary>The text not shown yet; once finished, that is everything that remains.</summary>
    string Flush()
    {
        if (Text.Length <= _emitted) return "";
        var rest = Text[_emitted..];
        _emitted = Text.Length;
        return rest;
    }

    static int FirstStop(string text, IReadOnlyList<string> stops)
    {
        int first = -1;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        return first;
    }

    /// <summary>How much of <paramref name="text"/> can be shown: not a trailing U+FFFD (an unfinished
    /// character) and not a tail that could still become a stop string.</summary>
    static int SafeLength(string text, IReadOnlyList<string> stops)
    {
        int n = text.Length;
        while (n > 0 && text[n - 1] == '\uFFFD') n--;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, n); k > 0; k--)
                if (text.AsSpan(0, n).EndsWith(s.AsSpan(0, k), StringComparison.Ordinal)) { n -= k; break; }
        return n;
    }
}

/// <summary>A token's log-probability under the model, with the most likely alternatives at its position.</summary>
public sealed record TokenLogprob(int Id, double LogProb, IReadOnlyList<(int Id, double LogProb)> Top);

public static class Logprobs
{
    /// <summary>log softmax(<paramref name="logits"/>)[token], and the <paramref name="top"/> most likely tokens (ties by id).</summary>
    public static TokenLogprob Of(ReadOnlySpan<float> logits, int token, int top)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        double logZ = max + Math.Log(sum);
        var best = new List<(int Id, double LogProb)>(top + 1);
        if (top > 0)
        {
            // Keep the best `top` by a single pass with insertion into a short sorted list.
            for (int i = 0; i < logits.Length; i++)
            {
                float l = logits[i];
                if (best.Count == top && l <= logits[best[^1].Id]) continue;
                int at = best.Count;
                while (at > 0 && logits[best[at - 1].Id] < l) at--;
                best.Insert(at, (i, 0));
                if (best.Count > top) best.RemoveAt(top);
            }
            for (int i = 0; i < best.Count; i++) best[i] = (best[i].Id, logits[best[i].Id] - logZ);
        }
        return new TokenLogprob(token, logits[token] - logZ, best);
    }
}
