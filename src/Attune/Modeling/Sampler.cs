using System.Numerics.Tensors;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>How the next token is chosen. Temperature 0 is greedy (argmax).</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0f;
    /// <summary>Keep the k most likely tokens (0: all).</summary>
    public int TopK { get; init; } = 0;
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1: all).</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens less likely than min_p × the most likely one (0: none).</summary>
    public float MinP { get; init; } = 0f;
    /// <summary>CTRL-style penalty on tokens already in the sequence (1: none).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public ulong Seed { get; init; } = 0;

    /// <summary>Throws a clear error naming the first invalid option.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) Bad("--temperature", $"{Temperature} must be ≥ 0");
        if (TopK < 0) Bad("--top-k", $"{TopK} must be ≥ 0");
        if (!(TopP > 0 && TopP <= 1)) Bad("--top-p", $"{TopP} must be in (0, 1]");
        if (!(MinP >= 0 && MinP < 1)) Bad("--min-p", $"{MinP} must be in [0, 1)");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) Bad("--repetition-penalty", $"{RepetitionPenalty} must be > 0");
        return this;
    }

    static void Bad(string option, string problem) => throw new AttuneException(null, option, problem);
}

/// <summary>
/// Picks next tokens from logits, in transformers' order: repetition penalty, temperature,
/// top-k, top-p, min-p, then a draw from the seeded generator.
/// </summary>
public sealed class Sampler
{
    readonly SamplingOptions _o;
    readonly Rng _rng;
    float[] _work = [];
    int[] _order = [];

    public Sampler(SamplingOptions options)
    {
        _o = options.Validate();
        _rng = new Rng(options.Seed);
    }

    public int Next(ReadOnlySpan<float> logits, IReadOnlyCollection<int>? previous = null)
    {
        int n = logits.Length;
        if (_work.Length < n) { _work = new float[n]; _order = new int[n]; }
        var w = _work.AsSpan(0, n);
        logits.CopyTo(w);
        if (_o.RepetitionPenalty != 1f && previous is not null)
            foreach (var id in previous.Distinct())
                if ((uint)id < (uint)n) w[id] = w[id] > 0 ? w[id] / _o.RepetitionPenalty : w[id] * _o.RepetitionPenalty;
        if (_o.Temperature == 0) return TensorPrimitives.IndexOfMax(w);

        TensorPrimitives.Divide(w, _o.Temperature, w);
        Ops.Softmax(w);
        if (_o.TopK == 0 && _o.TopP >= 1 && _o.MinP == 0)
        {
            // Nothing is cut, so no order is needed: draw over the ids as they come (a full sort of a
            // 50k vocabulary would cost more than a small model's forward step).
            double u0 = _rng.NextDouble();
            for (int i = 0; i < n; i++)
            {
                u0 -= w[i];
                if (u0 <= 0) return i;
            }
            return TensorPrimitives.IndexOfMax(w); // rounding left a sliver of mass: the likeliest token
        }
        // Candidates by falling probability; ties by id, so the draw is reproducible.
        var order = _order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = i;
        var probs = _work;
        order.Sort((a, b) => probs[a] != probs[b] ? probs[b].CompareTo(probs[a]) : a.CompareTo(b));
        int keep = _o.TopK > 0 ? Math.Min(_o.TopK, n) : n;
        if (_o.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += w[order[i]];
                if (cumulative >= _o.TopP) { keep = i + 1; break; }
            }
        }
        if (_o.MinP > 0)
        {
            float floor = _o.MinP * w[order[0]];
            int k = 1;
            while (k < keep && w[order[k]] >= floor) k++;
            keep = k;
        }
        double total = 0;
        for (int i = 0; i < keep; i++) total += w[order[i]];
        double u = _rng.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            u -= w[order[i]];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }
}
