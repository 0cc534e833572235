namespace Attune.Merging;

/// <summary>
/// TIES merging (Yadav et al. 2023): each task vector (model − base) keeps only its largest-magnitude
/// <c>density</c> fraction (per tensor); each element's sign is elected by the weighted sum; only the
/// kept values that agree with it are summed (divided by their weights' total when normalizing); then
/// base + λ·merged. The magnitude threshold is found exactly in two histogram passes over the chunks
/// (on the high, then the low 16 bits of |δ|'s float pattern), so memory stays bounded; ties at the
/// threshold are all kept.
/// </summary>
public sealed class TiesMethod(IReadOnlyList<double> weights, double density, bool normalize) : IMergeMethod
{
    long[][] _high = [];
    long[][] _low = [];
    uint[] _highBucket = [];
    float[] _threshold = [];
    long[] _aboveHigh = [];
    long _elements;

    public string Name => "ties";
    public int StatisticsPasses => 2;

    public void BeginTensor(string name, long elements)
    {
        int n = weights.Count;
        _elements = elements;
        _high = Enumerable.Range(0, n).Select(_ => new long[65536]).ToArray();
        _low = Enumerable.Range(0, n).Select(_ => new long[65536]).ToArray();
        _highBucket = new uint[n];
        _aboveHigh = new long[n];
        _threshold = new float[n];
    }

    static uint Bits(float delta) => BitConverter.SingleToUInt32Bits(MathF.Abs(delta));

    public void Observe(int pass, ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset)
    {
        for (int k = 0; k < models.Count; k++)
        {
            var m = models[k];
            for (int e = 0; e < b.Length; e++)
            {
                uint bits = Bits(m[e] - b[e]);
                if (pass == 0) _high[k][bits >> 16]++;
                else if (bits >> 16 == _highBucket[k]) _low[k][bits & 0xFFFF]++;
            }
        }
        if (pass == 0 && offset + length >= _elements) ChooseHighBuckets();
        if (pass == 1 && offset + length >= _elements) ChooseThresholds();
    }

    long Keep => (long)Math.Ceiling(density * _elements);

    void ChooseHighBuckets()
    {
        for (int k = 0; k < weights.Count; k++)
        {
            long seen = 0;
            for (int bucket = 65535; bucket >= 0; bucket--)
            {
                if (seen + _high[k][bucket] >= Keep) { _highBucket[k] = (uint)bucket; _aboveHigh[k] = seen; break; }
                seen += _high[k][bucket];
            }
        }
    }

    void ChooseThresholds()
    {
        for (int k = 0; k < weights.Count; k++)
        {
            long seen = _aboveHigh[k];
            _threshold[k] = 0;
            for (int low = 65535; low >= 0; low--)
            {
                seen += _low[k][low];
                if (seen >= Keep) { _threshold[k] = BitConverter.UInt32BitsToSingle((_highBucket[k] << 16) | (uint)low); break; }
            }
        }
    }

    /// <summary>The magnitude a task vector's kept values reach (for tests).</summary>
    public float Threshold(int model) => _threshold[model];

    public void Compute(ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output)
    {
        int n = models.Count;
        Span<double> kept = stackalloc double[n];
        for (int e = 0; e < length; e++)
        {
            if (e >= b.Length) { output[e] = models[0][e]; continue; }
            double elected = 0;
            for (int k = 0; k < n; k++)
            {
                float delta = models[k][e] - b[e];
                kept[k] = density >= 1 || MathF.Abs(delta) >= _threshold[k] ? delta : 0;
                elected += weights[k] * kept[k];
            }
            double sum = 0, total = 0;
            for (int k = 0; k < n; k++)
                if (kept[k] != 0 && Math.Sign(kept[k]) == Math.Sign(elected))
                {
                    sum += weights[k] * kept[k];
                    total += weights[k];
                }
            double merged = normalize && total > 0 ? sum / total : sum;
            output[e] = (float)(b[e] + lambda * merged);
        }
    }
}
