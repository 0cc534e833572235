namespace Attune;

/// <summary>
/// Files seen through symbolic links, as the Hugging Face cache lays them out (a snapshot's files link to
/// content-addressed blobs): sizes and times are the target's, not the link's.
/// </summary>
public static class FileLinks
{
    /// <summary>The file a path finally names (itself when it is not a link).</summary>
    public static FileInfo Resolve(string path) => Resolve(new FileInfo(path));

    public static FileInfo Resolve(FileInfo file) =>
        file.LinkTarget is not null && file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target : file;
}
