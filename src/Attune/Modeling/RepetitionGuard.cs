namespace Attune.Modeling;

/// <summary>
/// Stops generation caught in a loop: the last <see cref="MinSpan"/> or more tokens repeat a block of
/// at most <see cref="MaxPeriod"/> tokens at least <see cref="MinRepeats"/> times. The seed paper counts
/// such endless repetitions as critical errors, so evaluations report when the guard fired.
/// </summary>
public sealed record RepetitionGuard
{
    public int MaxPeriod { get; init; } = 16;
    public int MinRepeats { get; init; } = 4;
    public int MinSpan { get; init; } = 32;

    public RepetitionGuard Validate()
    {
        if (MaxPeriod < 1) throw new AttuneException(null, "repetition guard", "MaxPeriod must be ≥ 1");
        if (MinRepeats < 2) throw new AttuneException(null, "repetition guard", "MinRepeats must be ≥ 2");
        if (MinSpan < 2) throw new AttuneException(null, "repetition guard", "MinSpan must be ≥ 2");
        return this;
    }

    /// <summary>True when the end of <paramref name="tokens"/> is such a loop.</summary>
    public bool IsLooping(IReadOnlyList<int> tokens)
    {
        for (int period = 1; period <= MaxPeriod; period++)
        {
            int span = Math.Max(MinSpan, period * MinRepeats);
            if (tokens.Count < span) continue;
            int start = tokens.Count - span;
            bool periodic = true;
            for (int i = start + period; i < tokens.Count && periodic; i++)
                periodic = tokens[i] == tokens[i - period];
            if (periodic) return true;
        }
        return false;
    }
}
