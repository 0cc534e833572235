using Attune.Formats;

namespace Attune.Modeling;

/// <summary>
/// Rotary position embeddings (Su et al. 2021) in the half-rotation layout Hugging Face stores
/// q and k in: dimension i pairs with i + d/2, rotated by angle pos · θ^(−2i/d). Angles are
/// computed in double precision and tabulated per position; llama3 and linear scaling change
/// the frequencies as transformers does.
/// </summary>
public sealed class Rope
{
    readonly int _half;
    readonly double[] _invFreq;
    float[] _cos = [];
    float[] _sin = [];
    int _positions;

    public int HeadDim { get; }

    public Rope(ModelConfig c)
    {
        HeadDim = c.HeadDim;
        _half = c.HeadDim / 2;
        _invFreq = InverseFrequencies(c);
    }

    public static double[] InverseFrequencies(ModelConfig c)
    {
        int half = c.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        if (c.RopeScaling is { Type: "linear" } lin)
            for (int i = 0; i < half; i++) inv[i] /= lin.Factor;
        else if (c.RopeScaling is { Type: "llama3" } s)
        {
            // Long wavelengths are slowed by the factor, short ones kept, and the band between blended.
            double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            for (int i = 0; i < half; i++)
            {
                double wavelen = 2 * Math.PI / inv[i];
                if (wavelen < highWavelen) continue;
                if (wavelen > lowWavelen) { inv[i] /= s.Factor; continue; }
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                inv[i] = (1 - smooth) * inv[i] / s.Factor + smooth * inv[i];
            }
        }
        return inv;
    }

    /// <summary>Makes sure positions [0, n) are tabulated. Not thread-safe: call before parallel work.</summary>
    public void Reserve(int n)
    {
        if (n <= _positions) return;
        int cap = Math.Max(n, Math.Max(64, _positions * 2));
        var cos = new float[cap * _half];
        var sin = new float[cap * _half];
        for (int p = 0; p < cap; p++)
            for (int i = 0; i < _half; i++)
            {
                double a = p * _invFreq[i];
                cos[p * _half + i] = (float)Math.Cos(a);
                sin[p * _half + i] = (float)Math.Sin(a);
            }
        _cos = cos;
        _sin = sin;
        _positions = cap;
    }

    /// <summary>Rotates <paramref name="heads"/> consecutive head vectors at position <paramref name="pos"/> in place.</summary>
    public unsafe void Apply(float* x, int heads, int pos)
    {
        fixed (float* cosBase = _cos, sinBase = _sin)
        {
            float* cos = cosBase + pos * _half, sin = sinBase + pos * _half;
            for (int h = 0; h < heads; h++)
            {
                float* v = x + h * HeadDim;
                for (int i = 0; i < _half; i++)
                {
                    float a = v[i], b = v[i + _half];
                    v[i] = a * cos[i] - b * sin[i];
                    v[i + _half] = b * cos[i] + a * sin[i];
                }
            }
        }
    }
}
