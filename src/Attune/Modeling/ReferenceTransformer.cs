using Attune.Formats;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// The same forward pass in plain double precision, one token at a time, with no vectors,
/// threads or caches beyond lists of past keys and values. Slow on purpose: it exists so that
/// tests can hold <see cref="Transformer"/> to it.
/// </summary>
public sealed class ReferenceTransformer(ModelWeights weights)
{
    readonly ModelConfig _c = weights.Config;

    /// <summary>Keys and values rounded to bf16 as they are stored, as a bf16 <see cref="KvCache"/> holds them.</summary>
    public bool Bf16KvCache { get; init; }

    double[] Stored(double[] x) => Bf16KvCache ? x.Select(e => (double)BFloat16.ToSingle(BFloat16.FromSingle((float)e))).ToArray() : x;

    /// <summary>Logits at every position of <paramref name="tokens"/>.</summary>
    public double[][] Logits(IReadOnlyList<int> tokens)
    {
        var c = _c;
        int hd = c.HeadDim, group = c.NumHeads / c.NumKvHeads;
        var invFreq = Enumerable.Range(0, c.NumLayers).Select(l => Rope.LayerFrequencies(c, l, weights.RopeFactors)).ToArray();
        bool interleaved = weights.RopeInterleaved;
        var keys = Enumerable.Range(0, c.NumLayers).Select(_ => new List<double[]>()).ToArray();
        var values = Enumerable.Range(0, c.NumLayers).Select(_ => new List<double[]>()).ToArray();
        var result = new double[tokens.Count][];
        for (int p = 0; p < tokens.Count; p++)
        {
            var x = Row(weights.Embedding, tokens[p]);
            if (c.EmbeddingScale is float embedScale) x = x.Select(v => v * embedScale).ToArray();
            for (int l = 0; l < c.NumLayers; l++)
            {
                var w = weights.Layers[l];
                var h = RmsNorm(x, w.AttnNorm);
                var q = Linear(w.Q, h, w.QBias);
                var k = Linear(w.K, h, w.KBias);
                var v = Linear(w.V, h, w.VBias);
                if (c.QkNorm == QkNorm.Whole)
                {
                    q = RmsNorm(q, w.QNorm);
                    k = RmsNorm(k, w.KNorm);
                }
                for (int head = 0; head < c.NumHeads; head++)
                {
                    if (c.QkNorm == QkNorm.PerHead) NormalizeSlice(q, head * hd, hd, w.QNorm!);
                    Rotate(q, head * hd, hd, p, invFreq[l], interleaved);
                }
                for (int head = 0; head < c.NumKvHeads; head++)
                {
                    if (c.QkNorm == QkNorm.PerHead) NormalizeSlice(k, head * hd, hd, w.KNorm!);
                    Rotate(k, head * hd, hd, p, invFreq[l], interleaved);
                }
                keys[l].Add(Stored(k));
                values[l].Add(Stored(v));
                var att = new double[c.NumHeads * hd];
                int first = c.WindowOf(l) is int win && p >= win ? p - win + 1 : 0;
                for (int head = 0; head < c.NumHeads; head++)
                {
                    int kvh = head / group;
                    var scores = new double[p - first + 1];
                    for (int j = first; j <= p; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < hd; i++) s += q[head * hd + i] * keys[l][j][kvh * hd + i];
                        scores[j - first] = SoftCap(s * c.AttentionScale, c.AttnLogitSoftcap);
                    }
                    double max = scores.Max(), sum = 0;
                    for (int j = 0; j < scores.Length; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int j = first; j <= p; j++)
                        for (int i = 0; i < hd; i++)
                            att[head * hd + i] += scores[j - first] / sum * values[l][j][kvh * hd + i];
                }
                Accumulate(x, RmsNorm(Linear(w.O, att, w.OBias), w.AttnPostNorm));
                h = RmsNorm(x, w.FfnNorm);
                var gate = Linear(w.Gate, h, w.GateBias);
                var up = Linear(w.Up, h, w.UpBias);
                for (int i = 0; i < gate.Length; i++) gate[i] = Activate(gate[i]) * up[i];
                Accumulate(x, RmsNorm(Linear(w.Down, gate, w.DownBias), w.FfnPostNorm));
            }
            result[p] = Linear(weights.LmHead, RmsNorm(x, weights.FinalNorm), null).Select(z => SoftCap(z, c.FinalLogitSoftcap)).ToArray();
        }
        return result;
    }

    double Activate(double g) => _c.Activation switch
    {
        Activation.GeluTanh => 0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g))),
        _ => g / (1 + Math.Exp(-g)),
    };

    static double SoftCap(double s, double? cap) => cap is double k ? k * Math.Tanh(s / k) : s;

    static double[] Row(WeightMatrix m, int r)
    {
        var f = new float[m.Cols];
        m.RowToSingle(r, f);
        return f.Select(v => (double)v).ToArray();
    }

    static double[] Linear(WeightMatrix m, double[] x, float[]? bias)
    {
        if (m.Type == WeightType.Q8_0) x = RoundToQ8(x);
        var y = new double[m.Rows];
        var row = new float[m.Cols];
        for (int r = 0; r < m.Rows; r++)
        {
            m.RowToSingle(r, row);
            double s = bias?[r] ?? 0;
            for (int i = 0; i < m.Cols; i++) s += row[i] * x[i];
            y[r] = s;
        }
        return y;
    }

    /// <summary>Q8_0 layers take their input rounded to Q8_0 blocks (as the engine and llama.cpp do).</summary>
    static double[] RoundToQ8(double[] x)
    {
        var f = x.Select(v => (float)v).ToArray();
        var q = new sbyte[f.Length];
        var d = new float[f.Length / WeightTypes.Q8BlockSize];
        Dot.QuantizeInput(f, q, d);
        return q.Select((v, i) => (double)(v * d[i / WeightTypes.Q8BlockSize])).ToArray();
    }

    /// <summary>RMSNorm with the engine's multipliers; a missing norm (null) passes x through.</summary>
    double[] RmsNorm(double[] x, float[]? weight)
    {
        if (weight is null) return x;
        double ms = x.Sum(v => v * v) / x.Length;
        double scale = 1 / Math.Sqrt(ms + _c.RmsNormEps);
        return x.Select((v, i) => v * scale * weight[i]).ToArray();
    }

    void NormalizeSlice(double[] x, int start, int n, float[] weight)
    {
        var normed = RmsNorm(x[start..(start + n)], weight);
        Array.Copy(normed, 0, x, start, n);
    }

    static void Rotate(double[] x, int start, int hd, int pos, double[] invFreq, bool interleaved)
    {
        int half = hd / 2;
        for (int i = 0; i < half; i++)
        {
            int ia = start + (interleaved ? 2 * i : i), ib = interleaved ? ia + 1 : ia + half;
            double a = x[ia], b = x[ib];
            double angle = pos * invFreq[i];
            x[ia] = a * Math.Cos(angle) - b * Math.Sin(angle);
            x[ib] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
    }

    static void Accumulate(double[] x, double[] y)
    {
        for (int i = 0; i < x.Length; i++) x[i] += y[i];
    }
}
