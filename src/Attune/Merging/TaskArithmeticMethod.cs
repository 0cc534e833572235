namespace Attune.Merging;

/// <summary>
/// Task arithmetic (Ilharco et al. 2023): base + λ · Σ_k w_k (model_k − base), the sum divided by Σ_k w_k when normalizing
/// (mergekit's <c>normalize</c>; a total under 1e-8 in magnitude divides by 1).
/// </summary>
public sealed class TaskArithmeticMethod(IReadOnlyList<double> weights, bool normalize = false) : IMergeMethod
{
    public string Name => "task_arithmetic";
    readonly double _total = weights.Sum();
    public int StatisticsPasses => 0;
    public void BeginTensor(string name, long elements) { }
    public void Observe(int pass, ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset) { }

    public void Compute(ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output)
    {
        for (int e = 0; e < length; e++)
        {
            double baseValue = e < b.Length ? b[e] : 0;
            double delta = 0;
            for (int k = 0; k < models.Count; k++) delta += weights[k] * (models[k][e] - baseValue);
            if (normalize && Math.Abs(_total) >= 1e-8) delta /= _total;
            // Rows past the base's vocabulary have no base: they take the first model's values.
            output[e] = e < b.Length ? (float)(baseValue + lambda * delta) : models[0][e];
        }
    }
}
