using System.Runtime.CompilerServices;
using Attune.Formats;

namespace Attune.Modeling;

/// <summary>
/// Rotary position embeddings (Su et al. 2021) in the half-rotation layout Hugging Face stores
/// q and k in: dimension i pairs with i + d/2, rotated by angle pos · θ^(−2i/d). Angles are
/// computed in double precision and tabulated per position; llama3 and linear scaling change
/// the frequencies as transformers does. GGUF files of the <c>llama</c> architecture store q and k
/// permuted for llama.cpp's interleaved layout (pairs 2i, 2i+1), which <see cref="Interleaved"/> selects,
/// and may carry per-frequency divisors (<c>rope_freqs.weight</c>) instead of a scaling rule.
/// </summary>
public sealed class Rope
{
    readonly int _half;
    readonly double[] _invFreq;
    float[] _cos = [];
    float[] _sin = [];
    int _positions;

    public int HeadDim { get; }
    public bool Interleaved { get; }

    public Rope(ModelConfig c, bool interleaved = false, float[]? freqFactors = null)
    {
        HeadDim = c.HeadDim;
        Interleaved = interleaved;
        _half = c.HeadDim / 2;
        _invFreq = InverseFrequencies(c, freqFactors);
    }

    /// <summary>
    /// The rotary table of the sliding-window layers when the family gives them their own base (Gemma 3's
    /// <c>rope_local_base_freq</c>, unscaled); null when every layer uses the global one.
    /// </summary>
    public static Rope? Local(ModelConfig c, bool interleaved = false) =>
        LocalConfig(c) is { } local ? new Rope(local, interleaved) : null;

    /// <summary>The configuration whose RoPE fields are the local layers' (null: same as the global).</summary>
    public static ModelConfig? LocalConfig(ModelConfig c) =>
        c.RopeLocalTheta is double theta ? c with { RopeTheta = theta, RopeScaling = null } : null;

    /// <summary>The inverse frequencies <paramref name="layer"/> rotates by.</summary>
    public static double[] LayerFrequencies(ModelConfig c, int layer, float[]? freqFactors = null) =>
        c.WindowOf(layer) is not null && LocalConfig(c) is { } local ? InverseFrequencies(local) : InverseFrequencies(c, freqFactors);

    public static double[] InverseFrequencies(ModelConfig c, float[]? freqFactors = null)
    {
        int half = c.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++) inv[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
        if (freqFactors is not null)
        {
            if (freqFactors.Length != half)
                throw new AttuneException(null, "rope_freqs.weight", $"has {freqFactors.Length} values, expected {half}");
            for (int i = 0; i < half; i++) inv[i] /= freqFactors[i];
        }
        else if (c.RopeScaling is { Type: "linear" } lin)
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

    /// <summary>RoPE backward: the rotation is orthogonal, so the gradient rotates back by −θ (in place).</summary>
    public unsafe void ApplyBackward(float* dy, int heads, int pos)
    {
        fixed (float* cosBase = _cos, sinBase = _sin)
        {
            float* cos = cosBase + pos * _half, sin = sinBase + pos * _half;
            int stride = Interleaved ? 2 : 1, offset = Interleaved ? 1 : _half;
            for (int h = 0; h < heads; h++)
            {
                float* v = dy + h * HeadDim;
                for (int i = 0; i < _half; i++)
                {
                    int ia = i * stride, ib = ia + offset;
                    float a = v[ia], b = v[ib];
                    v[ia] = a * cos[i] + b * sin[i];
                    v[ib] = b * cos[i] - a * sin[i];
                }
            }
        }
    }

    /// <summary>Rotates <paramref name="heads"/> consecutive head vectors at position <paramref name="pos"/> in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Apply(float* x, int heads, int pos)
    {
        fixed (float* cosBase = _cos, sinBase = _sin)
        {
            float* cos = cosBase + pos * _half, sin = sinBase + pos * _half;
            // Pair i is (i, i + d/2) in Hugging Face's layout and (2i, 2i + 1) in the interleaved one.
            int stride = Interleaved ? 2 : 1, offset = Interleaved ? 1 : _half;
            for (int h = 0; h < heads; h++)
            {
                float* v = x + h * HeadDim;
                for (int i = 0; i < _half; i++)
                {
                    int ia = i * stride, ib = ia + offset;
                    float a = v[ia], b = v[ib];
                    v[ia] = a * cos[i] - b * sin[i];
                    v[ib] = b * cos[i] + a * sin[i];
                }
            }
        }
    }
}
