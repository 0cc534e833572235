namespace Attune.Merging;

/// <summary>Task arithmetic (Ilharco et al. 2023): base + λ · Σ_k w_k (model_k − base).</summary>
public sealed class TaskArithmeticMethod(IReadOnlyList<double> weights) : IMergeMethod
{
    public string Name => "task_arithmetic";
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
            // Rows past the base's vocabulary have no base: they take the first model's values.
            output[e] = e < b.Length ? (float)(baseValue + lambda * delta) : models[0][e];
        }
    }
}
