using System.Runtime.Intrinsics;

namespace Attune.Tensors;

/// <summary>The widest vector path the kernels use. Tests force each level and hold them equal.</summary>
public enum SimdLevel { Scalar, V256, V512 }

public static class Simd
{
    public static readonly SimdLevel Best =
        Vector512.IsHardwareAccelerated ? SimdLevel.V512
        : Vector256.IsHardwareAccelerated ? SimdLevel.V256
        : SimdLevel.Scalar;

    /// <summary>The level in use; lower it to test or compare the narrower paths.</summary>
    public static SimdLevel Level { get; set; } = Best;
}
