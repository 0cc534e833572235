using Attune.Tensors;

namespace Attune.Merging.Mergekit;

/// <summary>A parameter a method reads: once per tensor (global) or once per model and tensor, with its default.</summary>
public sealed record ParameterDef(string Name, bool Required, object? Default);

/// <summary>
/// What a method merges for one output tensor: the inputs' values (already in the compute dtype), which of them is the
/// base (−1: none), each input's parameters and the method's global ones (evaluated for this tensor and depth), and a
/// random source seeded for this tensor. The arrays are the method's: it may overwrite the inputs it does not return
/// (task vectors replace their model's values), so that a whole tensor is not copied once more per model.
/// </summary>
public sealed record TensorInputs(
    string Name, long[] Shape, IReadOnlyList<float[]> Tensors, int BaseIndex,
    IReadOnlyList<IReadOnlyDictionary<string, object?>> TensorParameters, IReadOnlyDictionary<string, object?> Parameters,
    ComputeDType Compute, Rng Random)
{
    public double Number(string name) => AsNumber(Parameters[name], name);
    /// <summary>A flag as Python reads one: true/false, or a number (non-zero is true).</summary>
    public bool Flag(string name) => Parameters[name] switch
    {
        bool b => b,
        double d => d != 0,
        "true" or "True" => true,
        "false" or "False" or null => false,
        var other => throw new AttuneException(null, name, $"\"{other}\" is not true or false"),
    };
    public double Number(int input, string name) => AsNumber(TensorParameters[input][name], name);

    double AsNumber(object? value, string name) => value switch
    {
        double d => d,
        bool b => b ? 1 : 0,
        string text when double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => d,
        _ => throw new AttuneException(null, name, $"\"{value}\" is not a number (tensor {Name})"),
    };
}

/// <summary>
/// Arithmetic in a recipe's compute dtype, as torch does it: each operation computes in f32 and rounds its result to
/// the tensor's dtype (f32: no rounding; f16 and bf16: to nearest even).
/// </summary>
public sealed class ComputeDType(DType dtype)
{
    public DType DType { get; } = dtype;
    public float Round(float x) => DType switch
    {
        DType.F16 => (float)(Half)x,
        DType.BF16 => BFloat16Round(x),
        _ => x,
    };

    static float BFloat16Round(float x)
    {
        if (float.IsNaN(x)) return x;
        uint bits = BitConverter.SingleToUInt32Bits(x);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }

    public void Round(Span<float> values)
    {
        if (DType == DType.F32) return;
        for (int i = 0; i < values.Length; i++) values[i] = Round(values[i]);
    }
}

/// <summary>One of mergekit's merge methods, computed per whole tensor with mergekit's arithmetic.</summary>
public abstract class MergekitMethod
{
    public abstract string Name { get; }
    public virtual IReadOnlyList<ParameterDef> Parameters => [];
    public virtual IReadOnlyList<ParameterDef> TensorParameters => [];
    /// <summary>Whether the method needs a base model (task vectors are differences from it).</summary>
    public virtual bool NeedsBase => false;
    public abstract float[] Merge(TensorInputs inputs);

    /// <summary>The methods by mergekit's names.</summary>
    public static readonly IReadOnlyDictionary<string, MergekitMethod> All = new MergekitMethod[]
    {
        new LinearMerge(), new SlerpMerge(), new PassthroughMerge(), new ModelStockMerge(), new NuSlerpMerge(), new MultiSlerpMerge(),
        new KarcherMerge(), new NearSwapMerge(), new SceMerge(), new ArceeFusionMerge(), new RamMerge(plus: false), new RamMerge(plus: true),
        new TaskArithmeticFamily("task_arithmetic", consensus: false, Sparsification.None, normalize: false, rescale: false),
        new TaskArithmeticFamily("ties", consensus: true, Sparsification.Magnitude, normalize: true, rescale: false),
        new TaskArithmeticFamily("dare_ties", consensus: true, Sparsification.Random, normalize: false, rescale: true),
        new TaskArithmeticFamily("dare_linear", consensus: false, Sparsification.Random, normalize: false, rescale: true),
        new TaskArithmeticFamily("breadcrumbs", consensus: false, Sparsification.MagnitudeOutliers, normalize: false, rescale: false),
        new TaskArithmeticFamily("breadcrumbs_ties", consensus: true, Sparsification.MagnitudeOutliers, normalize: false, rescale: false),
        new TaskArithmeticFamily("della", consensus: true, Sparsification.DellaMagprune, normalize: true, rescale: true),
        new TaskArithmeticFamily("della_linear", consensus: false, Sparsification.DellaMagprune, normalize: false, rescale: true),
    }.ToDictionary(m => m.Name);
}

/// <summary>mergekit's linear: Σ wᵢ·Mᵢ over every input (the base included when listed), divided by Σ wᵢ when normalizing (the default).</summary>
public sealed class LinearMerge : MergekitMethod
{
    public override string Name => "linear";
    public override IReadOnlyList<ParameterDef> Parameters => [new("normalize", false, true)];
    public override IReadOnlyList<ParameterDef> TensorParameters => [new("weight", true, null)];

    public override float[] Merge(TensorInputs x)
    {
        var r = x.Compute;
        int n = x.Tensors.Count, len = x.Tensors[0].Length;
        var w = Enumerable.Range(0, n).Select(k => r.Round((float)x.Number(k, "weight"))).ToArray();
        float total = 0;
        foreach (var v in w) total += v;
        total = r.Round(total);
        bool normalize = x.Flag("normalize");
        var output = new float[len];
        for (int e = 0; e < len; e++)
        {
            float sum = 0;
            for (int k = 0; k < n; k++) sum += r.Round(w[k] * x.Tensors[k][e]);
            sum = r.Round(sum);
            output[e] = normalize ? r.Round(sum / total) : sum;
        }
        return output;
    }
}

/// <summary>mergekit's slerp between the base and one other model at t (global parameter), in f32 as numpy computes it.</summary>
public sealed class SlerpMerge : MergekitMethod
{
    public override string Name => "slerp";
    public override IReadOnlyList<ParameterDef> Parameters => [new("t", true, null)];
    public override bool NeedsBase => true;

    public override float[] Merge(TensorInputs x)
    {
        if (x.Tensors.Count == 1) return x.Tensors[0];
        if (x.Tensors.Count != 2) throw new AttuneException(null, x.Name, $"slerp merges the base with exactly one model ({x.Tensors.Count} inputs)");
        if (x.BaseIndex < 0) throw new AttuneException(null, x.Name, "slerp needs base_model among the models it merges");
        var b = x.Tensors[x.BaseIndex];
        var m = x.Tensors[1 - x.BaseIndex];
        var method = new SlerpMethod();
        method.BeginTensor(x.Name, b.Length);
        method.Observe(0, b, [m], b.Length, 0);
        var output = new float[b.Length];
        method.Compute(b, [m], b.Length, 0, x.Number("t"), output);
        x.Compute.Round(output);
        return output;
    }
}

/// <summary>mergekit's passthrough: the one input as it is, times its <c>scale</c> when given (layer stacking with slices).</summary>
public sealed class PassthroughMerge : MergekitMethod
{
    public override string Name => "passthrough";
    public override IReadOnlyList<ParameterDef> TensorParameters => [new("scale", false, null)];

    public override float[] Merge(TensorInputs x)
    {
        if (x.Tensors.Count != 1) throw new AttuneException(null, x.Name, $"passthrough takes exactly one input per tensor ({x.Tensors.Count} given): give each slice one source");
        if (x.TensorParameters[0]["scale"] is null) return x.Tensors[0];
        float scale = x.Compute.Round((float)x.Number(0, "scale"));
        return x.Tensors[0].Select(v => x.Compute.Round(v * scale)).ToArray();
    }
}
