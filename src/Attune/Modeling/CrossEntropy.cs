namespace Attune.Modeling;

/// <summary>
/// Next-token cross-entropy over logits, forward and backward side by side:
/// loss = −log softmax(z)[target], dz = softmax(z) − onehot(target), scaled by <c>scale</c>
/// (e.g. 1/number-of-target-tokens for a mean). Rows whose target is <see cref="Ignore"/> contribute nothing.
/// </summary>
public static class CrossEntropy
{
    public const int Ignore = -100;

    /// <summary>Σ of the rows' losses (in double).</summary>
    public static double Forward(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> targets)
    {
        double total = 0;
        for (int r = 0; r < targets.Length; r++)
            if (targets[r] != Ignore) total -= LanguageModel.LogProb(logits.Slice(r * vocab, vocab), targets[r]);
        return total;
    }

    /// <summary>dlogits = scale · (softmax − onehot) for rows with a target, 0 elsewhere.</summary>
    public static void Backward(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> targets, float scale, Span<float> dLogits)
    {
        for (int r = 0; r < targets.Length; r++)
        {
            var d = dLogits.Slice(r * vocab, vocab);
            if (targets[r] == Ignore) { d.Clear(); continue; }
            logits.Slice(r * vocab, vocab).CopyTo(d);
            Tensors.Ops.Softmax(d);
            System.Numerics.Tensors.TensorPrimitives.Multiply(d, scale, d);
            d[targets[r]] -= scale;
        }
    }
}
