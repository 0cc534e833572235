namespace Attune.Merging;

/// <summary>
/// DARE (Yu et al. 2024): each model's task vector (model − base) loses each element with probability
/// <c>dropRate</c>; the survivors are rescaled by 1/(1 − dropRate) (unless turned off); then task
/// arithmetic. Whether an element drops depends only on (seed, tensor, model, element index), so the
/// result does not depend on chunking, thread count or machine.
/// </summary>
public sealed class DareMethod(IReadOnlyList<double> weights, double dropRate, bool rescale, ulong seed) : IMergeMethod
{
    ulong _tensorKey;

    public string Name => "dare";
    public int StatisticsPasses => 0;

    public void BeginTensor(string name, long elements)
    {
        ulong h = seed ^ 0x9E3779B97F4A7C15UL;
        foreach (var c in name) h = Mix(h ^ c);
        _tensorKey = h;
    }

    public void Observe(int pass, ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset) { }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>True when element <paramref name="index"/> of model <paramref name="model"/> survives.</summary>
    public bool Keeps(int model, long index) =>
        (Mix(_tensorKey ^ Mix((ulong)index * 31 + (ulong)model + 1)) >> 11) * (1.0 / (1UL << 53)) >= dropRate;

    public void Compute(ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output)
    {
        double scale = rescale && dropRate < 1 ? 1 / (1 - dropRate) : 1;
        for (int e = 0; e < length; e++)
        {
            if (e >= b.Length) { output[e] = models[0][e]; continue; }
            double delta = 0;
            for (int k = 0; k < models.Count; k++)
                if (Keeps(k, offset + e)) delta += weights[k] * scale * (models[k][e] - b[e]);
            output[e] = (float)(b[e] + lambda * delta);
        }
    }
}
