using Attune.Formats;
using Attune.Models;
using Attune.Modeling;

namespace Attune.Merging;

/// <summary>
/// Loads a local <see cref="ModelReference"/> into this process: folders, Hub snapshots and GGUF files through
/// <see cref="LanguageModel.Load"/>, interpolations through the merge plan (<see cref="InterpolatedModel"/>).
/// It lives here, the lowest box that knows every kind of local model.
/// </summary>
public static class ModelLoader
{
    public static LanguageModel Load(ModelReference model) => Equivalent(model) switch
    {
        ModelReference.Interpolation i => InterpolatedModel.Load(i),
        ModelReference.Remote r => throw new AttuneException(null, "--model", $"{r.Spec} is a served model; this command runs a model in this process (give a folder, a .gguf file or BASE+INSTRUCT@λ)"),
        ModelReference.LlamaCpp l => throw new AttuneException(null, "--model", $"{l.Spec} runs through llama.cpp, which Attune uses for generate, score, eval and sweep arms; this command needs Attune's engine (give a folder, a .gguf file of an architecture it runs, or BASE+INSTRUCT@λ)"),
        var m => LanguageModel.Load(m.LocalPath!),
    };

    /// <summary>
    /// The model that answers every request exactly as <paramref name="model"/> does, with no merge to build: M(1) is the
    /// instruct model ((1 − λ)·base + λ·instruct is the instruct's bytes at λ = 1, and M(λ) takes the instruct's config,
    /// generation config and tokenizer) when both sides hold the same tensors; anything else is itself.
    /// </summary>
    public static ModelReference Equivalent(ModelReference model) =>
        model is ModelReference.Interpolation { Lambda.Value: 1 } i && SameTensors(i) ? i.Instruct : model;

    /// <summary>
    /// A model whose log-likelihoods equal <paramref name="model"/>'s, or null: M(0) scores as the base does when both
    /// sides hold the same tensors in the same dtypes (its weights are the base's bytes) and the same tokenizer.json
    /// (so texts split into the same tokens). Its generations may still differ (M(λ) takes the instruct's chat template
    /// and end tokens), so only scoring is shared.
    /// </summary>
    public static ModelReference? ScoringEquivalent(ModelReference model)
    {
        if (model is not ModelReference.Interpolation { Lambda.Value: 0 } i || !SameTensors(i)) return null;
        var a = Path.Combine(i.Base.CheckpointFolder("--base"), Checkpoint.TokenizerFileName);
        var b = Path.Combine(i.Instruct.CheckpointFolder("--instruct"), Checkpoint.TokenizerFileName);
        return File.Exists(a) && File.Exists(b) && File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b)) ? i.Base : null;
    }

    /// <summary>Both sides are checkpoint folders with the same tensor names, shapes and dtypes.</summary>
    static bool SameTensors(ModelReference.Interpolation i)
    {
        if (i.Base is not (ModelReference.Folder or ModelReference.Hub) || i.Instruct is not (ModelReference.Folder or ModelReference.Hub)) return false;
        using var b = Checkpoint.Open(i.Base.CheckpointFolder("--base"));
        using var m = Checkpoint.Open(i.Instruct.CheckpointFolder("--instruct"));
        return b.Weights.Names.Order(StringComparer.Ordinal).SequenceEqual(m.Weights.Names.Order(StringComparer.Ordinal))
            && b.Weights.Names.All(n => b.Weights.Entry(n).DType == m.Weights.Entry(n).DType && b.Weights.Entry(n).Shape.SequenceEqual(m.Weights.Entry(n).Shape));
    }
}
