namespace Attune.Modeling;

/// <summary>
/// Causal grouped-query attention for training, forward and backward side by side, on one sequence:
/// q [T, heads·d], k and v [T, kvHeads·d], query head h reads KV head h / (heads / kvHeads).
/// Forward: s_ij = q_i·k_j/√d (j ≤ i, and within the sliding window when given), p = softmax_j(s),
/// o_i = Σ_j p_ij v_j; the probabilities are kept for the backward:
/// dv_j += Σ_i p_ij do_i; ds_ij = p_ij (do_i·v_j − Σ_j' p_ij' do_i·v_j'); dq_i = Σ_j ds_ij k_j/√d;
/// dk_j += Σ_i ds_ij q_i/√d.
/// </summary>
public sealed class CausalAttention(int heads, int kvHeads, int headDim, int? slidingWindow = null)
{
    readonly float _scale = 1f / MathF.Sqrt(headDim);

    int First(int i) => slidingWindow is int w && i >= w ? i - w + 1 : 0;

    /// <summary>Fills <paramref name="output"/> [T, heads·d] and <paramref name="probs"/> [heads, T, T] (upper triangle zero).</summary>
    public void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int t, Span<float> output, Span<float> probs)
    {
        int group = heads / kvHeads, qw = heads * headDim, kw = kvHeads * headDim;
        output[..(t * qw)].Clear();
        probs[..(heads * t * t)].Clear();
        for (int h = 0; h < heads; h++)
        {
            int g = h / group;
            for (int i = 0; i < t; i++)
            {
                var p = probs.Slice((h * t + i) * t, t);
                var qi = q.Slice(i * qw + h * headDim, headDim);
                int first = First(i);
                for (int j = first; j <= i; j++)
                    p[j] = System.Numerics.Tensors.TensorPrimitives.Dot(qi, k.Slice(j * kw + g * headDim, headDim)) * _scale;
                Tensors.Ops.Softmax(p[first..(i + 1)]);
                var oi = output.Slice(i * qw + h * headDim, headDim);
                for (int j = first; j <= i; j++)
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(v.Slice(j * kw + g * headDim, headDim), p[j], oi, oi);
            }
        }
    }

    /// <summary>From dO [T, heads·d]: dq (overwritten), dk and dv (accumulated, so tied uses add up).</summary>
    public void Backward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> probs, ReadOnlySpan<float> dOutput,
        int t, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        int group = heads / kvHeads, qw = heads * headDim, kw = kvHeads * headDim;
        dq[..(t * qw)].Clear();
        var dp = new float[t];
        for (int h = 0; h < heads; h++)
        {
            int g = h / group;
            for (int i = 0; i < t; i++)
            {
                var p = probs.Slice((h * t + i) * t, t);
                var doi = dOutput.Slice(i * qw + h * headDim, headDim);
                int first = First(i);
                double weighted = 0;
                for (int j = first; j <= i; j++)
                {
                    var vj = v.Slice(j * kw + g * headDim, headDim);
                    dp[j] = System.Numerics.Tensors.TensorPrimitives.Dot(doi, vj);
                    weighted += (double)p[j] * dp[j];
                    var dvj = dv.Slice(j * kw + g * headDim, headDim);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(doi, p[j], dvj, dvj);
                }
                var qi = q.Slice(i * qw + h * headDim, headDim);
                var dqi = dq.Slice(i * qw + h * headDim, headDim);
                for (int j = first; j <= i; j++)
                {
                    float ds = (float)(p[j] * (dp[j] - weighted)) * _scale;
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(k.Slice(j * kw + g * headDim, headDim), ds, dqi, dqi);
                    var dkj = dk.Slice(j * kw + g * headDim, headDim);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(qi, ds, dkj, dkj);
                }
            }
        }
    }
}
