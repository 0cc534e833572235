using System.Numerics.Tensors;
using Attune.Modeling;

namespace Attune.Tests.Conformance;

/// <summary>What the llama.cpp conformance tests compute on Attune's side: full-vocabulary log-probabilities
/// and a fixed number of argmax tokens.</summary>
static class ReferenceDecoding
{
    public static double[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        double lse = max + Math.Log(sum);
        var r = new double[logits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = logits[i] - lse;
        return r;
    }

    /// <summary>Exactly <paramref name="n"/> argmax tokens, not stopping at end-of-sequence (as the peer is asked to).</summary>
    public static int[] Greedy(LanguageModel lm, int[] prompt, int n)
    {
        var t = lm.Transformer;
        var cache = t.NewCache(prompt.Length + n);
        var logits = t.Forward(cache, prompt);
        var result = new int[n];
        for (int i = 0; i < n; i++)
        {
            result[i] = TensorPrimitives.IndexOfMax(logits.Row(0));
            if (i + 1 < n) logits = t.Forward(cache, [result[i]]);
        }
        return result;
    }
}
