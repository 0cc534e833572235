namespace Attune.Merging;

/// <summary>Partial adaptation: (1 − λ)·base + λ·model, two products and a sum, each rounded (see <see cref="PartialAdaptation.Interpolate(ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{float})"/>).</summary>
public sealed class LinearMethod : IMergeMethod
{
    public string Name => "linear";
    public int StatisticsPasses => 0;
    public void BeginTensor(string name, long elements) { }
    public void Observe(int pass, ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset) { }

    public void Compute(ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output) =>
        PartialAdaptation.Interpolate(baseChunk, models[0].AsSpan(0, length), (float)lambda, output);
}
