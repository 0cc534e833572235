using System.Text.RegularExpressions;

namespace Attune.Models;

/// <summary>
/// The local Hugging Face Hub cache as huggingface_hub lays it out, read without any network:
/// <c>models--ORG--NAME/refs/&lt;revision&gt;</c> holds a commit hash and <c>models--ORG--NAME/snapshots/&lt;commit&gt;/</c>
/// the files of that commit. The cache is <c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else
/// <c>~/.cache/huggingface/hub</c>.
/// </summary>
public sealed partial class HubCache(string root)
{
    public string Root { get; } = root;

    /// <summary>The cache the Hugging Face tools would use in this environment.</summary>
    public static HubCache Default()
    {
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) return new HubCache(hub);
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return new HubCache(Path.Combine(home, "hub"));
        return new HubCache(Path.Combine(CacheHome.Path, "huggingface", "hub"));
    }

    // The Hub's repository names: letters, digits, '-', '_', '.'; no leading '.' or '-'; one '/' between owner and name.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*(@[A-Za-z0-9_.\-/]+)?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    /// <summary>True when <paramref name="text"/> has the shape of <c>ORG/NAME</c> or <c>ORG/NAME@revision</c>.</summary>
    public static bool IsRepoId(string text) => RepoIdPattern().IsMatch(text) && !text.Contains("..", StringComparison.Ordinal);

    /// <summary>The snapshot folder of data set <paramref name="repoId"/> at <c>refs/main</c> (<c>datasets--ORG--NAME</c>), or null when the cache has none.</summary>
    public string? DatasetSnapshot(string repoId)
    {
        var repo = RepoFolder("datasets", repoId);
        return Commit(repo, "main") is { } commit && Directory.Exists(Path.Combine(repo, "snapshots", commit)) ? Path.Combine(repo, "snapshots", commit) : null;
    }

    /// <summary>A repository's folder in the cache: <c>models--ORG--NAME</c> or <c>datasets--ORG--NAME</c>.</summary>
    string RepoFolder(string kind, string repoId) => Path.Combine(Root, $"{kind}--" + repoId.Replace("/", "--", StringComparison.Ordinal));

    /// <summary>The commit a revision names: the hash in <c>refs/&lt;revision&gt;</c>, or the revision itself when it is a commit hash; null otherwise.</summary>
    static string? Commit(string repo, string revision)
    {
        var refFile = Path.Combine(repo, "refs", revision);
        var commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : revision;
        return CommitPattern().IsMatch(commit) ? commit : null;
    }

    /// <summary>The snapshot folder of <c>ORG/NAME[@revision]</c> (revision: a branch or tag under refs/, or a commit hash; default main).</summary>
    public ModelReference.Hub Resolve(string text, string field = "--model")
    {
        int at = text.IndexOf('@');
        var repoId = at < 0 ? text : text[..at];
        var revision = at < 0 ? null : text[(at + 1)..];
        var repo = RepoFolder("models", repoId);
        var download = $"huggingface-cli download {repoId}{(revision is null ? "" : $" --revision {revision}")}";
        if (!Directory.Exists(repo))
            throw new AttuneException(text, field, $"not a folder here, and not in the local Hugging Face cache ({Root}); fetch it with: {download}");
        var wanted = revision ?? "main";
        if (Commit(repo, wanted) is not { } commit)
            throw new AttuneException(text, field, $"the local Hugging Face cache has no revision \"{wanted}\" of {repoId} ({Path.Combine(repo, "refs")}); fetch it with: {download}");
        var snapshot = Path.Combine(repo, "snapshots", commit);
        if (!Directory.Exists(snapshot))
            throw new AttuneException(text, field, $"revision {wanted} is commit {commit}, whose snapshot is not in the cache ({snapshot}); fetch it with: {download}");
        return new ModelReference.Hub(repoId, revision, Path.GetFullPath(snapshot));
    }
}
