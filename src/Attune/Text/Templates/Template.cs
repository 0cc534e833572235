using System.Text.Json.Nodes;

namespace Attune.Text.Templates;

/// <summary>
/// A parsed Jinja template, rendered in a sandbox: it can read only the variables it is given and
/// a few pure globals, and every render is bounded by <see cref="TemplateLimits"/>. Parsing once
/// and rendering many times is the intended use; a template is immutable and thread-safe.
/// </summary>
public sealed class Template
{
    readonly Stmt[] _program;

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>Where the template came from, for error messages (a file and field), or null.</summary>
    public string? SourceName { get; }

    Template(string source, string? sourceName, Stmt[] program)
    {
        Source = source;
        SourceName = sourceName;
        _program = program;
    }

    /// <summary>Parses <paramref name="source"/>; a syntax error is a <see cref="TemplateException"/> naming its line and column.</summary>
    public static Template Parse(string source, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new Template(source, sourceName, TemplateParser.Parse(source, sourceName));
    }

    /// <summary>Renders with <paramref name="context"/> as the template's variables.</summary>
    public TemplateResult Render(IReadOnlyDictionary<string, Value> context, TemplateLimits? limits = null, TimeProvider? clock = null)
    {
        var renderer = new Renderer(SourceName, limits ?? TemplateLimits.Default, clock ?? TimeProvider.System);
        var (text, spans) = renderer.Render(_program, context);
        return new TemplateResult(text, spans);
    }

    /// <summary>Renders with the members of a JSON object as the template's variables.</summary>
    public TemplateResult Render(JsonObject context, TemplateLimits? limits = null, TimeProvider? clock = null)
    {
        var vars = new Dictionary<string, Value>(context.Count);
        foreach (var (k, v) in context) vars[k] = TemplateJson.FromJson(v);
        return Render(vars, limits, clock);
    }
}

/// <summary>A rendered template: the text, and where its <c>{% generation %}</c> blocks put text.</summary>
public sealed record TemplateResult(string Text, IReadOnlyList<GenerationSpan> GenerationSpans);
