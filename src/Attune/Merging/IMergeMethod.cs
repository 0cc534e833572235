namespace Attune.Merging;

/// <summary>
/// One way of combining a base tensor with the matching tensors of other models, chunk by chunk so
/// that memory stays bounded. A method that needs whole-tensor statistics (SLERP's angle, TIES's
/// magnitude threshold) asks for passes over the chunks before the output pass. The strength λ is the
/// method's own parameter: the interpolation weight (linear), t (slerp), or the scale of the summed
/// task vectors (task_arithmetic, ties, dare).
/// </summary>
public interface IMergeMethod
{
    string Name { get; }

    /// <summary>Passes over a tensor's chunks before <see cref="Compute"/> (0 for element-wise methods).</summary>
    int StatisticsPasses { get; }

    /// <summary>Starts a tensor of <paramref name="elements"/> values.</summary>
    void BeginTensor(string name, long elements);

    /// <summary>Sees one chunk (starting at element <paramref name="offset"/>) during statistics pass <paramref name="pass"/>.</summary>
    void Observe(int pass, ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset);

    /// <summary>Writes one output chunk for strength <paramref name="lambda"/>.</summary>
    void Compute(ReadOnlySpan<float> baseChunk, IReadOnlyList<float[]> models, int length, long offset, double lambda, Span<float> output);
}
