using System.Text.Json.Nodes;
using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>Renders a template with a JSON context, or captures the error it gives.</summary>
static class T
{
    public static string Render(string template, string contextJson = "{}", TemplateLimits? limits = null) =>
        Template.Parse(template).Render(JsonNode.Parse(contextJson)!.AsObject(), limits).Text;

    public static TemplateException Error(string template, string contextJson = "{}", TemplateLimits? limits = null) =>
        Assert.Throws<TemplateException>(() => Render(template, contextJson, limits));
}
