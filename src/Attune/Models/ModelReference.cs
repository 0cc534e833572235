using System.Security.Cryptography;
using System.Text;

namespace Attune.Models;

/// <summary>
/// What a <c>--model</c> argument names, parsed once at the edge: a checkpoint folder, a GGUF file, a
/// Hugging Face Hub id found in the local cache, an interpolation of two local models at λ, or a model
/// behind an OpenAI-compatible server. Everything downstream (backends, sweep arms, the server, caches,
/// stores) carries this record and never parses a string again.
/// </summary>
public abstract record ModelReference
{
    /// <summary>The reference written out in full (absolute paths): what stores record and what parses back to it.</summary>
    public abstract string Spec { get; }

    /// <summary>How a person would name it: the folder's or file's name, the Hub id, the served name.</summary>
    public abstract string DisplayName { get; }

    /// <summary>True when the weights are in this process's reach (not behind a server).</summary>
    public bool IsLocal => this is not Remote;

    public sealed override string ToString() => Spec;

    /// <summary>A checkpoint folder (config.json, safetensors, tokenizer files).</summary>
    public sealed record Folder(string Path) : ModelReference
    {
        public override string Spec => Path;
        public override string DisplayName => System.IO.Path.GetFileName(Path.TrimEnd('/', System.IO.Path.DirectorySeparatorChar)) is { Length: > 0 } n ? n : Path;
    }

    /// <summary>A GGUF file.</summary>
    public sealed record Gguf(string Path) : ModelReference
    {
        public override string Spec => Path;
        public override string DisplayName => System.IO.Path.GetFileNameWithoutExtension(Path);
    }

    /// <summary>A GGUF file run by llama.cpp in this process (<c>llamacpp:FILE.gguf</c>), for evaluation of architectures the engine does not run.</summary>
    public sealed record LlamaCpp(string Path) : ModelReference
    {
        public const string Scheme = "llamacpp:";
        public override string Spec => Scheme + Path;
        public override string DisplayName => System.IO.Path.GetFileNameWithoutExtension(Path);
    }

    /// <summary>A Hub id (<c>ORG/NAME</c>, optionally <c>@revision</c>) resolved to its snapshot folder in the local Hugging Face cache.</summary>
    public sealed record Hub(string RepoId, string? Revision, string Snapshot) : ModelReference
    {
        public override string Spec => Snapshot;
        public override string DisplayName => Revision is null ? RepoId : $"{RepoId}@{Revision}";
    }

    /// <summary>Partial adaptation built in memory: M(λ) = W_base + λ·(W_instruct − W_base).</summary>
    public sealed record Interpolation(ModelReference Base, ModelReference Instruct, Lambda Lambda) : ModelReference
    {
        public override string Spec => $"{Base.Spec}+{Instruct.Spec}@{Lambda}";
        public override string DisplayName => $"{Base.DisplayName}+{Instruct.DisplayName}@{Lambda}";
    }

    /// <summary>A model served over an OpenAI-compatible API: the base address (…/v1) and the model's name there.</summary>
    public sealed record Remote(Uri Endpoint, string Name) : ModelReference
    {
        public override string Spec => $"{Endpoint}#{Name}";
        public override string DisplayName => Name;
    }

    /// <summary>The checkpoint folder or file a local reference loads from (an interpolation has none of its own).</summary>
    public string? LocalPath => this switch
    {
        Folder f => f.Path,
        Gguf g => g.Path,
        LlamaCpp l => l.Path,
        Hub h => h.Snapshot,
        _ => null,
    };

    /// <summary>The checkpoint folder of a folder or Hub reference; anything else is refused, naming <paramref name="field"/>.</summary>
    public string CheckpointFolder(string field) => this switch
    {
        Folder f => f.Path,
        Hub h => h.Snapshot,
        Gguf g => throw new AttuneException(g.Path, field, "is a GGUF file; this reads a checkpoint folder (attune convert turns one into the other)"),
        LlamaCpp l => throw new AttuneException(l.Path, field, "runs through llama.cpp, for evaluation only; this reads a checkpoint folder"),
        _ => throw new AttuneException(null, field, $"\"{Spec}\" is not a checkpoint folder"),
    };

    /// <summary>Every folder or file whose contents this reference's weights come from, in a fixed order.</summary>
    public IEnumerable<string> Sources() => this switch
    {
        Interpolation i => i.Base.Sources().Concat(i.Instruct.Sources()),
        Remote => [],
        _ => [LocalPath!],
    };

    /// <summary>
    /// A fingerprint of a local model's files (each source's files by name, size and modification time), so a
    /// retrained or re-merged model in the same folder is a different model for caches and stores.
    /// </summary>
    public string Fingerprint()
    {
        var sb = new StringBuilder("local:").Append(Spec);
        foreach (var source in Sources())
        {
            if (Directory.Exists(source))
                foreach (var f in new DirectoryInfo(source).GetFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
                    Append(f);
            else if (File.Exists(source)) Append(new FileInfo(source));
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..16];

        // A Hub snapshot's files are links to blobs: the blob's size and time say when the model changed.
        void Append(FileInfo link)
        {
            var f = FileLinks.Resolve(link);
            sb.Append('|').Append(link.FullName).Append(':').Append(f.Length).Append(':').Append(f.LastWriteTimeUtc.Ticks);
        }
    }

    /// <summary>What identifies a local model's answers in caches and stores: <c>local:FINGERPRINT:SPEC</c>.</summary>
    public string LocalIdentity() => IsLocal ? $"local:{Fingerprint()}:{Spec}"
        : throw new InvalidOperationException("a served model's identity comes from its backend");

    /// <summary>
    /// Parses a model argument: <c>http(s)://host:port/v1#NAME</c>; <c>llamacpp:FILE.gguf</c>; an existing folder or <c>.gguf</c> file;
    /// <c>BASE+INSTRUCT@λ</c>; a Hub id <c>ORG/NAME[@revision]</c> in the local cache. <paramref name="field"/>
    /// names the option in errors.
    /// </summary>
    public static ModelReference Parse(string text, string field = "--model", HubCache? cache = null)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new AttuneException(null, field, "is empty");
        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            return ParseRemote(text, field);
        if (text.StartsWith(LlamaCpp.Scheme, StringComparison.Ordinal))
        {
            var path = text[LlamaCpp.Scheme.Length..];
            if (!File.Exists(path)) throw new AttuneException(path, field, "file not found (llamacpp: takes a .gguf file)");
            if (!path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) throw new AttuneException(path, field, "is not a .gguf file (llamacpp: takes one)");
            return new LlamaCpp(System.IO.Path.GetFullPath(path));
        }
        if (Directory.Exists(text)) return new Folder(System.IO.Path.GetFullPath(text));
        if (File.Exists(text))
            return text.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? new Gguf(System.IO.Path.GetFullPath(text))
                : throw new AttuneException(text, "is a file but not a .gguf; a checkpoint is a folder with config.json");
        int at = text.LastIndexOf('@');
        int plus = at > 0 ? text.LastIndexOf('+', at) : -1;
        if (plus > 0)
        {
            var b = Parse(text[..plus], field, cache);
            var i = Parse(text[(plus + 1)..at], field, cache);
            var lambda = Lambda.TryParse(text[(at + 1)..], out var l) ? l : throw new AttuneException(null, field, $"\"{text[(at + 1)..]}\" after @ is not a number (expected BASE+INSTRUCT@λ)");
            if (!b.IsLocal || !i.IsLocal) throw new AttuneException(null, field, "BASE+INSTRUCT@λ interpolates local models; a served model cannot be one side");
            if (b is LlamaCpp || i is LlamaCpp) throw new AttuneException(null, field, "BASE+INSTRUCT@λ interpolates models Attune's engine runs; a llamacpp: model cannot be one side");
            if (b is Interpolation || i is Interpolation) throw new AttuneException(null, field, $"\"{text}\": each side of BASE+INSTRUCT@λ is one model");
            return new Interpolation(b, i, lambda);
        }
        if (HubCache.IsRepoId(text)) return (cache ?? HubCache.Default()).Resolve(text, field);
        throw new AttuneException(text, field, (text.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? "file not found" : "folder not found")
            + " (a model is a checkpoint folder, a .gguf file, llamacpp:FILE.gguf, BASE+INSTRUCT@λ, a Hub id ORG/NAME in the local Hugging Face cache, or http://host:port/v1#NAME)");
    }

    static Remote ParseRemote(string text, string field)
    {
        int hash = text.LastIndexOf('#');
        if (hash < 0 || hash == text.Length - 1)
            throw new AttuneException(null, field, $"\"{text}\" names no model: write the server's address and the model's name as http://host:port/v1#NAME");
        if (!Uri.TryCreate(text[..hash], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new AttuneException(null, field, $"\"{text[..hash]}\" is not an http(s) address");
        return new Remote(uri, text[(hash + 1)..]);
    }
}
