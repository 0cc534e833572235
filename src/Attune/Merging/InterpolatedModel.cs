using System.Runtime.InteropServices;
using Attune.Formats;
using Attune.Modeling;
using Attune.Models;
using Attune.Text;

namespace Attune.Merging;

/// <summary>
/// M(λ) built in memory for sweeps, without writing a folder: the same plan, arithmetic and encoding
/// as <see cref="PartialAdaptation.Merge"/>, so the engine sees the same bytes as it would from the
/// merged folder and produces bit-identical logits.
/// </summary>
public static class InterpolatedModel
{
    /// <summary>M(λ) of an interpolation reference; both sides must be checkpoint folders (or Hub snapshots).</summary>
    public static unsafe LanguageModel Load(ModelReference.Interpolation model, MergeOptions? options = null)
    {
        var basePath = model.Base.CheckpointFolder("--model");
        var instructPath = model.Instruct.CheckpointFolder("--model");
        double lambda = model.Lambda.Value;
        if (!double.IsFinite(lambda)) throw new AttuneException(null, "λ", "must be a finite number");
        options = (options ?? new MergeOptions { Lambdas = [lambda] }) with { Lambdas = [lambda] };
        var (b, models, plans) = PartialAdaptation.Open(basePath, [instructPath], options, log: null);
        using var _ = b;
        using var __ = models[0];
        var i = models[0];
        var memory = new NativeTensors();
        try
        {
            foreach (var p in plans) memory.Allocate(p.Name, p.OutDType, p.Shape);
            PartialAdaptation.Stream(b, models, plans, options, (_, p, bytes) => memory.Append(p.Name, bytes), null);
            var config = i.Config;
            var weights = ModelWeights.FromTensors(config, memory.Get, memory.Contains, memory);
            var tokenizerDir = options.TokenizerFrom == "base" ? basePath : instructPath;
            var tokenizer = Tokenizer.Load(tokenizerDir);
            // The merged folder carries the instruct side's config and generation_config: the same end tokens.
            var eos = LanguageModel.EosIds(config, i.GenerationConfigPath, tokenizer);
            return new LanguageModel(new Transformer(weights), tokenizer, eos, model.Spec);
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    /// <summary>Tensors held in native memory (aligned), freed with the model.</summary>
    sealed unsafe class NativeTensors : IDisposable
    {
        readonly Dictionary<string, (nint Data, Tensors.DType DType, long[] Shape, long Bytes, long Written)> _tensors = new(StringComparer.Ordinal);

        public void Allocate(string name, Tensors.DType dtype, long[] shape)
        {
            long bytes = shape.Aggregate(1L, (x, y) => x * y) * Tensors.DTypes.SizeOf(dtype);
            var data = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
            _tensors[name] = (data, dtype, shape, bytes, 0);
        }

        public void Append(string name, ReadOnlySpan<byte> chunk)
        {
            var t = _tensors[name];
            chunk.CopyTo(new Span<byte>((byte*)t.Data + t.Written, chunk.Length));
            _tensors[name] = t with { Written = t.Written + chunk.Length };
        }

        public bool Contains(string name) => _tensors.ContainsKey(name);

        public ModelWeights.StoredTensor Get(string name) =>
            _tensors.TryGetValue(name, out var t) ? new ModelWeights.StoredTensor(t.Data, t.DType, t.Shape, t.Bytes)
                : throw new AttuneException(null, $"tensor {name}", "not in the interpolated model");

        public void Dispose()
        {
            foreach (var t in _tensors.Values) NativeMemory.AlignedFree((void*)t.Data);
            _tensors.Clear();
        }
    }
}
