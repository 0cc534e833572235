using System.Diagnostics;
using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>
/// A hostile template in a downloaded checkpoint must fail quickly and clearly: no way out of
/// the values it is given, and limits on loops, output, recursion, nesting and time.
/// </summary>
public class TemplateSandboxTests
{
    static readonly TemplateLimits Small = new() { MaxLoopIterations = 5000, MaxOutputLength = 10_000, MaxRecursionDepth = 20 };

    [Fact]
    public void An_endless_loop_stops_at_the_iteration_limit()
    {
        var sw = Stopwatch.StartNew();
        var e = T.Error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
        Assert.Contains("more than 1,000,000 loop iterations", e.Problem);
        Assert.Contains("MaxLoopIterations", e.Problem);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), sw.Elapsed.ToString());
        Assert.Contains("loop iterations", T.Error("{% for i in range(600) %}{% for j in range(600) %}{% endfor %}{% endfor %}", limits: Small).Problem);
    }

    [Fact]
    public void A_huge_range_is_refused_before_it_is_built() =>
        Assert.Contains("range() of 1,000,000,000 items", T.Error("{{ range(10 ** 9) | length }}").Problem);

    [Fact]
    public void Output_beyond_the_limit_is_an_error()
    {
        Assert.Contains("MaxOutputLength", T.Error("{% for i in range(900) %}0123456789ABCDEF{% endfor %}", limits: Small).Problem);
        Assert.Contains("MaxOutputLength", T.Error("{{ 'x' * 100000000000 }}").Problem);
        Assert.Contains("MaxOutputLength", T.Error("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}").Problem);
        Assert.Contains("MaxOutputLength", T.Error("{{ ('x' * 5000) | replace('', 'yy') }}", limits: Small).Problem);
        Assert.Contains("MaxOutputLength", T.Error("{{ ([1] * 2000000000) | length }}").Problem);
    }

    [Fact]
    public void Captured_output_counts_too() =>
        Assert.Contains("MaxOutputLength", T.Error("{% set x %}{% for i in range(900) %}0123456789ABCDEF{% endfor %}{% endset %}", limits: Small).Problem);

    [Fact]
    public void Deep_macro_recursion_stops_at_the_depth_limit()
    {
        var e = T.Error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        Assert.Contains("nested more than 100 deep", e.Problem);
        Assert.Contains("MaxRecursionDepth", e.Problem);
        Assert.Contains("nested more than 20 deep", T.Error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", limits: Small).Problem);
        Assert.Equal("done", T.Render("{% macro f(n) %}{% if n < 19 %}{{ f(n + 1) }}{% else %}done{% endif %}{% endmacro %}{{ f(0) }}", limits: Small));
    }

    [Fact]
    public void Deeply_nested_values_do_not_overflow_the_stack()
    {
        const string build = "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}";
        Assert.Contains("nested too deeply", T.Error(build + "{{ ns.x }}").Problem);
        Assert.Contains("nested too deeply", T.Error(build + "{{ ns.x | tojson }}").Problem);
        Assert.Contains("nested too deeply", T.Error(build + "{{ ns.x == ns.x[0] }}").Problem);
    }

    [Fact]
    public void A_slow_template_stops_at_the_timeout()
    {
        var limits = new TemplateLimits { Timeout = TimeSpan.FromMilliseconds(200), MaxLoopIterations = long.MaxValue };
        var sw = Stopwatch.StartNew();
        var e = T.Error("{% set s = 'x' * 1000000 %}{% for i in range(1000000) %}{% set t = s.replace('x', 'y') %}{% endfor %}", limits: limits);
        Assert.Contains("TemplateLimits.Timeout", e.Problem);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), sw.Elapsed.ToString());
    }

    [Theory]
    [InlineData("{{ ''.__class__ }}{{ messages.__len__ }}")]
    [InlineData("{{ range.__globals__ }}{{ namespace.__init__ }}")]
    [InlineData("{{ messages | attr('__class__') }}")]
    [InlineData("{{ self }}{{ config }}{{ request }}{{ cycler }}{{ lipsum }}{{ os }}")]
    public void Nothing_beyond_the_given_values_is_reachable(string template) =>
        Assert.Equal("", T.Render(template, """{"messages": []}"""));

    [Theory]
    [InlineData("{{ [].append(1) }}", "access to attribute 'append' of 'list' object is unsafe.")]
    [InlineData("{{ messages.clear() }}", "access to attribute 'clear' of 'list' object is unsafe.")]
    [InlineData("{{ {'a': 1}.update({'a': 2}) }}", "access to attribute 'update' of 'dict' object is unsafe.")]
    [InlineData("{{ ''.__class__() }}", "access to attribute '__class__' of 'str' object is unsafe.")]
    [InlineData("{{ messages.__class__.__mro__ }}", "access to attribute '__class__' of 'list' object is unsafe.")]
    public void Values_cannot_be_modified_or_inspected(string template, string problem) =>
        Assert.Equal(problem, T.Error(template, """{"messages": [1]}""").Problem);

    [Theory]
    [InlineData("{% include 'secrets.txt' %}")]
    [InlineData("{% import 'os' as os %}")]
    [InlineData("{% extends 'base.html' %}")]
    [InlineData("{% from 'x' import y %}")]
    public void Templates_cannot_load_other_files(string template) =>
        Assert.Contains("not allowed", Assert.Throws<TemplateException>(() => Template.Parse(template)).Problem);

    [Fact]
    public void A_template_cannot_change_what_the_caller_passed()
    {
        var t = Template.Parse("{% set messages = [] %}{{ messages | length }}");
        var context = new Dictionary<string, Value> { ["messages"] = Value.FromList([Value.FromString("a")]) };
        Assert.Equal("0", t.Render(context).Text);
        Assert.Single(context["messages"].AsList);
    }
}
