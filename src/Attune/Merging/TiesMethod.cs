namespace Attune.Merging;

/// <summary>
/// TIES merging (Yadav et al. 2023) as mergekit computes it: each task vector δ = model − base keeps exactly
/// int(density·n) of its elements, the largest magnitudes (among equal magnitudes at the threshold, the earlier
/// elements; mergekit's argsort leaves their order unspecified); each value is weighted; an element's sign is elected
/// by the sum of the weighted values (a sum of 0 elects +), and only the weighted values of that sign are summed (a
/// zero value agrees with neither), divided by their weights' total when normalizing (a total of 0 divides by 1); then
/// base + λ·merged. The magnitude threshold is found exactly in two histogram passes over the chunks (on the high, then
/// the low 16 bits of |δ|'s float pattern), so memory stays bounded.
/// </summary>
public sealed class TiesMethod(IReadOnlyList<double> weights, double density, bool normalize) : IMergeMethod
{
    long[][] _high = [];
    long[][] _low = [];
    uint[] _highBucket = [];
    float[] _threshold = [];
    long[] _aboveHigh = [];
    long[] _above = [];
    long _elements;
    /// <summary>Elements kept at the threshold so far (the chunks stream in order).</summary>
    long[] _taken = [];
    /// <summary>Which elements of the current chunk each task vector keeps: decided once per chunk, whatever λ each output uses.</summary>
    bool[][] _keep = [];
    long _keepOffset = -1;

    public string Name => "ties";
    string _name = "";
    public int StatisticsPasses => 2;

    public void BeginTensor(string name, long elements)
    {
        _name = name;
        int n = weights.Count;
        _elements = elements;
        _high = Enumerable.Range(0, n).Select(_ => new long[65536]).ToArray();
        _low = Enumerable.Range(0, n).Select(_ => new long[65536]).ToArray();
        _highBucket = new uint[n];
        _aboveHigh = new long[n];
        _above = new long[n];
        _threshold = new float[n];
        _taken = new long[n];
        _keepOffset = -1;
        if (density < 1 && Keep <= 0) throw new AttuneException(null, _name, $"density {density} keeps no element of a tensor of {elements} (int(density·n) = 0)");
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

    long Keep => (long)(density * _elements);

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
                if (seen + _low[k][low] >= Keep)
                {
                    _threshold[k] = BitConverter.UInt32BitsToSingle((_highBucket[k] << 16) | (uint)low);
                    _above[k] = seen;
                    break;
                }
                seen += _low[k][low];
            }
        }
    }

    /// <summary>The magnitude a task vector's kept values reach (for tests).</summary>
    public float Threshold(int model) => _threshold[model];

    public void Compute(ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output)
    {
        int n = models.Count;
        // Outputs for several λ see the same chunk one after another: the kept elements (and the count of those kept at the
        // threshold) advance once per chunk, not once per output.
        if (offset != _keepOffset)
        {
            _keepOffset = offset;
            if (_keep.Length != n || _keep[0].Length < length) _keep = Enumerable.Range(0, n).Select(_ => new bool[length]).ToArray();
            for (int k = 0; k < n; k++)
                for (int e = 0; e < length && e < b.Length; e++)
                {
                    float magnitude = MathF.Abs(models[k][e] - b[e]);
                    _keep[k][e] = density >= 1 || magnitude > _threshold[k] || (magnitude == _threshold[k] && _taken[k] < Keep - _above[k] && ++_taken[k] > 0);
                }
        }
        Span<double> weighted = stackalloc double[n];
        for (int e = 0; e < length; e++)
        {
            if (e >= b.Length) { output[e] = models[0][e]; continue; }
            double vote = 0;
            for (int k = 0; k < n; k++)
            {
                weighted[k] = _keep[k][e] ? weights[k] * (models[k][e] - b[e]) : 0;
                vote += weighted[k];
            }
            int elected = vote >= 0 ? 1 : -1;
            double sum = 0, total = 0;
            for (int k = 0; k < n; k++)
                if (Math.Sign(weighted[k]) == elected)
                {
                    sum += weighted[k];
                    total += weights[k];
                }
            double merged = normalize && total != 0 ? sum / total : sum;
            output[e] = (float)(b[e] + lambda * merged);
        }
    }
}
