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
    public static LanguageModel Load(ModelReference model) => model switch
    {
        ModelReference.Interpolation i => InterpolatedModel.Load(i),
        ModelReference.Remote r => throw new AttuneException(null, "--model", $"{r.Spec} is a served model; this command runs a model in this process (give a folder, a .gguf file or BASE+INSTRUCT@λ)"),
        ModelReference.LlamaCpp l => throw new AttuneException(null, "--model", $"{l.Spec} runs through llama.cpp, which Attune uses for generate, score, eval and sweep arms; this command needs Attune's engine (give a folder, a .gguf file of an architecture it runs, or BASE+INSTRUCT@λ)"),
        _ => LanguageModel.Load(model.LocalPath!),
    };
}
