namespace Attune;

/// <summary>The user's cache folder as the XDG convention names it: <c>$XDG_CACHE_HOME</c>, else <c>~/.cache</c> (where Attune's and Hugging Face's caches live).</summary>
public static class CacheHome
{
    public static string Path => Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
        : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
}
