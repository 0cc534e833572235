namespace Attune;

/// <summary>
/// A problem with the user's input: a file, tensor, field or line that is wrong.
/// The CLI prints <see cref="Message"/> as one line (<c>error: &lt;where&gt;: &lt;what&gt;</c>) and exits with code 2.
/// Anything else that escapes is a bug in Attune (exit code 3).
/// </summary>
public class AttuneException : Exception
{
    /// <summary>The file (or other source) the problem is in; null when it is not tied to one.</summary>
    public string? Source0 { get; }

    /// <summary>The tensor, field or line within <see cref="Source0"/>, when known.</summary>
    public string? Location { get; }

    /// <summary>The problem itself, without the location prefix.</summary>
    public string Problem { get; }

    public AttuneException(string? source, string problem, Exception? inner = null)
        : this(source, null, problem, inner) { }

    public AttuneException(string? source, string? location, string problem, Exception? inner = null)
        : base(Format(source, location, problem), inner)
    {
        Source0 = source;
        Location = location;
        Problem = problem;
    }

    static string Format(string? source, string? location, string problem)
    {
        var where = (source, location) switch
        {
            (null, null) => null,
            (not null, null) => source,
            (null, not null) => location,
            _ => $"{source}: {location}",
        };
        // One line, always: a line break quoted from the input (a JSON token, a template, a tensor name) is shown as \n.
        return (where is null ? problem : $"{where}: {problem}").ReplaceLineEndings("\\n");
    }
}
