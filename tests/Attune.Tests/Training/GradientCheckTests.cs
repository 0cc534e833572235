using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Tests.Training;

/// <summary>Each hand-written backward against central finite differences of a double-precision forward.</summary>
public class GradientCheckTests
{
    static readonly Random Rng = new(12);
    static float[] R(int n, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)((Rng.NextDouble() * 2 - 1) * scale)).ToArray();

    /// <summary>∂f/∂v[i] by central differences, in double.</summary>
    static double Numeric(Func<double[], double> f, double[] v, int i, double h = 1e-6)
    {
        var plus = (double[])v.Clone(); plus[i] += h;
        var minus = (double[])v.Clone(); minus[i] -= h;
        return (f(plus) - f(minus)) / (2 * h);
    }

    static void Close(double numeric, double analytic, string what) =>
        Assert.True(Math.Abs(numeric - analytic) <= 1e-4 * Math.Max(1, Math.Abs(numeric)), $"{what}: numeric {numeric:G6} vs analytic {analytic:G6}");

    [Fact]
    public void RmsNorm_backward_matches_finite_differences()
    {
        int n = 12;
        float eps = 1e-5f;
        var x = R(n); var w = R(n); var c = R(n);
        double Loss(double[] xs, double[] ws)
        {
            double ms = xs.Sum(v => v * v) / n, r = 1 / Math.Sqrt(ms + eps), l = 0;
            for (int i = 0; i < n; i++) l += c[i] * xs[i] * r * ws[i];
            return l;
        }
        var dx = new float[n]; var dw = new float[n];
        Ops.RmsNormBackward(x, w, c, eps, dx, dw);
        var xd = x.Select(v => (double)v).ToArray(); var wd = w.Select(v => (double)v).ToArray();
        for (int i = 0; i < n; i++)
        {
            Close(Numeric(v => Loss(v, wd), xd, i), dx[i], $"dx[{i}]");
            Close(Numeric(v => Loss(xd, v), wd, i), dw[i], $"dw[{i}]");
        }
    }

    [Fact]
    public void SwiGLU_gate_backward_matches_finite_differences()
    {
        int n = 10;
        var g = R(n, 3); var u = R(n); var c = R(n);
        double Loss(double[] gs, double[] us) => Enumerable.Range(0, n).Sum(i => c[i] * gs[i] / (1 + Math.Exp(-gs[i])) * us[i]);
        var dg = new float[n]; var du = new float[n];
        Ops.SiluMulBackward(g, u, c, dg, du);
        var gd = g.Select(v => (double)v).ToArray(); var ud = u.Select(v => (double)v).ToArray();
        for (int i = 0; i < n; i++)
        {
            Close(Numeric(v => Loss(v, ud), gd, i), dg[i], $"dgate[{i}]");
            Close(Numeric(v => Loss(gd, v), ud, i), du[i], $"dup[{i}]");
        }
    }

    [Fact]
    public void GeGLU_gate_backward_matches_finite_differences()
    {
        int n = 10;
        var g = R(n, 3); var u = R(n); var c = R(n);
        static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
        double Loss(double[] gs, double[] us) => Enumerable.Range(0, n).Sum(i => c[i] * Gelu(gs[i]) * us[i]);
        var dg = new float[n]; var du = new float[n];
        Ops.GeluTanhMulBackward(g, u, c, dg, du);
        var gd = g.Select(v => (double)v).ToArray(); var ud = u.Select(v => (double)v).ToArray();
        for (int i = 0; i < n; i++)
        {
            Close(Numeric(v => Loss(v, ud), gd, i), dg[i], $"dgate[{i}]");
            Close(Numeric(v => Loss(gd, v), ud, i), du[i], $"dup[{i}]");
        }
        // The forward agrees with the same formula.
        var h = (float[])g.Clone();
        Ops.GeluTanhMul(h, u, new float[n]);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(h[i] - Gelu(g[i]) * u[i]) < 1e-5, $"gelu[{i}]");
    }

    [Fact]
    public void Linear_backward_gives_input_weight_and_bias_gradients()
    {
        int t = 3, rows = 4, cols = 5;
        var x = R(t * cols); var w = R(rows * cols); var b = R(rows); var c = R(t * rows);
        double Loss(double[] xs, double[] ws, double[] bs)
        {
            double l = 0;
            for (int i = 0; i < t; i++)
                for (int r = 0; r < rows; r++)
                {
                    double y = bs[r];
                    for (int k = 0; k < cols; k++) y += xs[i * cols + k] * ws[r * cols + k];
                    l += c[i * rows + r] * y;
                }
            return l;
        }
        var dx = new float[t * cols]; var dw = new float[rows * cols]; var db = new float[rows];
        MatMul.Backward(null, w, rows, cols, x, c, t, dx, dw, db);
        double[] D(float[] a) => a.Select(v => (double)v).ToArray();
        var (xd, wd, bd) = (D(x), D(w), D(b));
        for (int i = 0; i < x.Length; i++) Close(Numeric(v => Loss(v, wd, bd), xd, i), dx[i], $"dx[{i}]");
        for (int i = 0; i < w.Length; i++) Close(Numeric(v => Loss(xd, v, bd), wd, i), dw[i], $"dw[{i}]");
        for (int i = 0; i < b.Length; i++) Close(Numeric(v => Loss(xd, wd, v), bd, i), db[i], $"db[{i}]");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public unsafe void Rope_backward_is_the_adjoint_of_the_rotation(bool interleaved)
    {
        var config = ModelConfig.Parse(JsonNode.Parse(TinyModels.LlamaConfig)!.AsObject(), "config.json");
        var rope = new Rope(config, interleaved);
        rope.Reserve(16);
        int heads = 2, hd = config.HeadDim;
        var x = R(heads * hd); var c = R(heads * hd);
        var rx = (float[])x.Clone(); var rtc = (float[])c.Clone();
        fixed (float* p = rx) rope.Apply(p, heads, 11);
        fixed (float* p = rtc) rope.ApplyBackward(p, heads, 11);
        double left = rx.Zip(c, (a, b) => (double)a * b).Sum(), right = x.Zip(rtc, (a, b) => (double)a * b).Sum();
        Assert.True(Math.Abs(left - right) < 1e-5, $"{left} vs {right}");
        fixed (float* p = rx) rope.ApplyBackward(p, heads, 11); // and it undoes the rotation
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - rx[i]) < 1e-5);
    }

    [Fact]
    public void Cross_entropy_backward_matches_finite_differences_and_skips_ignored_rows()
    {
        int vocab = 7;
        var z = R(3 * vocab, 2);
        int[] targets = [2, CrossEntropy.Ignore, 6];
        double Loss(double[] zs)
        {
            double l = 0;
            for (int r = 0; r < 3; r++)
            {
                if (targets[r] == CrossEntropy.Ignore) continue;
                var row = zs.Skip(r * vocab).Take(vocab).ToArray();
                double max = row.Max(), lse = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
                l += (lse - row[targets[r]]) * 0.5;
            }
            return l;
        }
        var dz = new float[z.Length];
        CrossEntropy.Backward(z, vocab, targets, 0.5f, dz);
        var zd = z.Select(v => (double)v).ToArray();
        for (int i = 0; i < z.Length; i++) Close(Numeric(Loss, zd, i), dz[i], $"dz[{i}]");
        Assert.True(Math.Abs(Loss(zd) / 0.5 - CrossEntropy.Forward(z, vocab, targets)) < 1e-4);
    }
}

public class AttentionGradientTests
{
    [Theory]
    [InlineData(null, null, null)]
    [InlineData(2, null, null)]
    [InlineData(2, 0.8, 0.7)] // Gemma 2: its own query scale and soft-capped scores
    public void Causal_gqa_attention_backward_matches_finite_differences(int? window, double? scale, double? cap)
    {
        int t = 4, heads = 2, kvHeads = 1, d = 3;
        var rng = new Random(5);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var q = R(t * heads * d); var k = R(t * kvHeads * d); var v = R(t * kvHeads * d); var c = R(t * heads * d);
        var attention = new CausalAttention(heads, kvHeads, d, window, scale, cap);

        // The loss Σ c ⊙ attention(q, k, v), computed independently in double.
        double Loss(double[] qs, double[] ks, double[] vs)
        {
            double l = 0;
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < t; i++)
                {
                    int first = window is int w && i >= w ? i - w + 1 : 0;
                    var s = new double[i + 1];
                    for (int j = first; j <= i; j++)
                        for (int e = 0; e < d; e++) s[j] += qs[i * heads * d + h * d + e] * ks[j * d + e] * (scale ?? 1 / Math.Sqrt(d));
                    if (cap is double k)
                        for (int j = first; j <= i; j++) s[j] = k * Math.Tanh(s[j] / k);
                    double max = s.Skip(first).Max(), z = 0;
                    for (int j = first; j <= i; j++) z += Math.Exp(s[j] - max);
                    for (int j = first; j <= i; j++)
                        for (int e = 0; e < d; e++) l += c[i * heads * d + h * d + e] * Math.Exp(s[j] - max) / z * vs[j * d + e];
                }
            return l;
        }
        var output = new float[t * heads * d];
        var probs = new float[heads * t * t];
        attention.Forward(q, k, v, t, output, probs);
        var dq = new float[q.Length]; var dk = new float[k.Length]; var dv = new float[v.Length];
        attention.Backward(q, k, v, probs, c, t, dq, dk, dv);
        double[] D(float[] a) => a.Select(x => (double)x).ToArray();
        var (qd, kd, vd) = (D(q), D(k), D(v));
        Assert.True(Math.Abs(output.Zip(c, (o, w) => (double)o * w).Sum() - Loss(qd, kd, vd)) < 1e-5);
        double Num(Func<double[], double> f, double[] x, int i)
        {
            var a = (double[])x.Clone(); a[i] += 1e-6;
            var b = (double[])x.Clone(); b[i] -= 1e-6;
            return (f(a) - f(b)) / 2e-6;
        }
        for (int i = 0; i < q.Length; i++) Assert.True(Math.Abs(Num(x => Loss(x, kd, vd), qd, i) - dq[i]) < 1e-4, $"dq[{i}]");
        for (int i = 0; i < k.Length; i++) Assert.True(Math.Abs(Num(x => Loss(qd, x, vd), kd, i) - dk[i]) < 1e-4, $"dk[{i}]");
        for (int i = 0; i < v.Length; i++) Assert.True(Math.Abs(Num(x => Loss(qd, kd, x), vd, i) - dv[i]) < 1e-4, $"dv[{i}]");
    }
}
