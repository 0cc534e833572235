namespace Attune.Text.Templates;

/// <summary>
/// A template that cannot be parsed or rendered: a syntax error, a type error at run time, a
/// sandbox limit, or a <c>raise_exception(...)</c> call in the template itself. The message reads
/// <c>&lt;source&gt;: template line L, column C: &lt;problem&gt;</c>, pointing at the tag or
/// expression in the template source (not in the rendered text).
/// </summary>
public sealed class TemplateException : AttuneException
{
    /// <summary>1-based line in the template source.</summary>
    public int Line { get; }

    /// <summary>1-based column (UTF-16 code units) in the template source.</summary>
    public int Column { get; }

    /// <summary>
    /// True when the template itself asked to fail (<c>raise_exception</c>): the input (usually the
    /// conversation) broke a rule the template enforces, such as alternating roles.
    /// </summary>
    public bool RaisedByTemplate { get; }

    public TemplateException(string? source, int line, int column, string problem, bool raisedByTemplate = false, Exception? inner = null)
        : base(source, $"template line {line}, column {column}", problem, inner)
    {
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }
}

/// <summary>
/// What a template may spend. Chat templates come inside downloaded checkpoints, so a hostile or
/// buggy one must fail with a clear error instead of hanging the process or exhausting memory.
/// </summary>
public sealed record TemplateLimits
{
    /// <summary>Longest rendered text, and longest string any expression may build (UTF-16 code units).</summary>
    public int MaxOutputLength { get; init; } = 10_000_000;

    /// <summary>
    /// Loop iterations over the whole render, all loops together. Work that walks a list on the
    /// template's behalf counts too: <c>range(n)</c> counts n, and so do filters such as
    /// <c>sort</c>, <c>map</c>, <c>select</c> and <c>join</c> for the items they walk.
    /// </summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Nesting of macro (and <c>caller()</c>) calls.</summary>
    public int MaxRecursionDepth { get; init; } = 100;

    /// <summary>Wall-clock time for one render: the backstop for work the counts above do not bound.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// jinja2's StrictUndefined: writing an undefined value into the output is an error naming it, instead of
    /// nothing. lm-evaluation-harness renders task templates so; chat templates (transformers) do not.
    /// </summary>
    public bool StrictUndefined { get; init; }

    public static readonly TemplateLimits Default = new();
}
