namespace Attune.Merging;

/// <summary>
/// Spherical interpolation between the base and one model, per tensor: with θ the angle between the
/// two flattened tensors, out = sin((1−t)θ)/sin θ · base + sin(tθ)/sin θ · model; nearly colinear
/// tensors (|cos θ| above 0.9995) fall back to linear interpolation, as mergekit does.
/// </summary>
public sealed class SlerpMethod : IMergeMethod
{
    public const double ColinearThreshold = 0.9995;
    double _dot, _baseNorm, _modelNorm;

    public string Name => "slerp";
    public int StatisticsPasses => 1;

    public void BeginTensor(string name, long elements) => _dot = _baseNorm = _modelNorm = 0;

    public void Observe(int pass, ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset)
    {
        var m = models[0];
        for (int e = 0; e < b.Length; e++)
        {
            _dot += (double)b[e] * m[e];
            _baseNorm += (double)b[e] * b[e];
            _modelNorm += (double)m[e] * m[e];
        }
    }

    public void Compute(ReadOnlySpan<float> b, IReadOnlyList<float[]> models, int length, long offset, double t, Span<float> output)
    {
        var m = models[0];
        double cos = _baseNorm > 0 && _modelNorm > 0 ? _dot / Math.Sqrt(_baseNorm * _modelNorm) : 1;
        double wb, wm;
        if (Math.Abs(cos) > ColinearThreshold) (wb, wm) = (1 - t, t);
        else
        {
            double theta = Math.Acos(Math.Clamp(cos, -1, 1)), sin = Math.Sin(theta);
            (wb, wm) = (Math.Sin((1 - t) * theta) / sin, Math.Sin(t * theta) / sin);
        }
        for (int e = 0; e < length; e++)
            output[e] = e < b.Length ? (float)(wb * b[e] + wm * m[e]) : m[e];
    }
}
