using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>
/// The lexer and parser: whitespace control as transformers configures Jinja (trim_blocks,
/// lstrip_blocks, '-' markers), comments, raw blocks, literals, and syntax errors that name
/// their line and column.
/// </summary>
public class TemplateSyntaxTests
{
    [Theory]
    [InlineData("{% if true %}\nA\n{% endif %}\nB", "A\nB")]                        // trim_blocks: newline after %} dropped
    [InlineData("    {% if true %}\n    A\n    {% endif %}\n    B", "    A\n    B")]  // lstrip_blocks: indentation before {% dropped
    [InlineData("x  {% if true %}y{% endif %}  z", "x  y  z")]                       // not at line start: kept
    [InlineData("  {{ 'x' }}  \n", "  x  ")]                                          // {{ }} is not a block: nothing stripped
    [InlineData("\t{# comment #}\nA", "A")]                                           // comments strip like blocks
    [InlineData("a\n{%- if true -%}\n  b  \n{%- endif -%}\n  c", "abc")]              // '-' strips all whitespace, newlines too
    [InlineData("{{- 'a' -}}   \n\n  {{- 'b' }}  ", "ab  ")]
    [InlineData("{% for i in range(3) %}\n  {{ i }}\n{% endfor %}\n", "  0\n  1\n  2\n")]
    [InlineData("{{ 'a' }}\n{{ 'b' }}\n", "a\nb")]                                     // one trailing newline of the template dropped
    [InlineData("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", "a\nb\nc")]            // CRLF read as LF, as Jinja does
    [InlineData("line\n   {% if true %}   {% endif %}\nend", "line\n   end")]
    public void Whitespace_control_follows_trim_blocks_and_lstrip_blocks(string template, string expected) =>
        Assert.Equal(expected, T.Render(template));

    [Fact]
    public void Comments_render_nothing_and_may_strip_around_them() =>
        Assert.Equal("xy", T.Render("{# comment #}x{#- c -#}   y"));

    [Fact]
    public void Raw_blocks_keep_template_syntax_as_text() =>
        Assert.Equal("{{ x }} {% if %}", T.Render("{% raw %}{{ x }} {% if %}{% endraw %}"));

    [Theory]
    [InlineData("{{ 'it\\'s' }}", "it's")]
    [InlineData("{{ \"a\\tb\\n\" }}", "a\tb\n")]
    [InlineData("{{ '\\u00e9\\x41' }}", "éA")]
    [InlineData("{{ 'unknown \\d escape' }}", "unknown \\d escape")]  // Python keeps unknown escapes
    [InlineData("{{ 'a' 'b' }}", "ab")]                                // adjacent strings join
    [InlineData("{{ 1_000 + 2 }}|{{ 1.5e3 }}|{{ 42 }}", "1002|1500.0|42")]
    [InlineData("{{ {'a': {'b': 1}}['a'].b }}{{ {'a':1}}}", "1{'a': 1}")] // '}}' inside a dict literal does not close the tag
    public void Literals_read_as_in_Python(string template, string expected) =>
        Assert.Equal(expected, T.Render(template));

    [Theory]
    [InlineData("{% if x %}no end", 1, 17, "'{% if %}' at line 1, column 1 is not closed")]
    [InlineData("{% for x in y %}{% endif %}", 1, 20, "unexpected '{% endif %}' inside '{% for %}'")]
    [InlineData("{{ 1 + }}", 1, 8, "unexpected '}}'")]
    [InlineData("{{ 'abc }}", 1, 4, "string is not closed")]
    [InlineData("{% endfor %}", 1, 4, "no block is open")]
    [InlineData("{{ x | nosuchfilter }}", 1, 8, "no filter named 'nosuchfilter'")]
    [InlineData("{{ x is nosuchtest }}", 1, 9, "no test named 'nosuchtest'")]
    [InlineData("{% nosuchtag %}", 1, 4, "unknown statement")]
    [InlineData("{% break %}", 1, 4, "outside of a for loop")]
    [InlineData("a\nb\n  {% include 'x' %}", 3, 6, "not allowed")]
    [InlineData("{{ 'x' | int(base=2, 1) }}", 1, 22, "positional argument follows keyword")]
    [InlineData("\n\n{{ a @ b }}", 3, 6, "unexpected character '@'")]
    public void Syntax_errors_name_their_line_and_column(string template, int line, int column, string problem)
    {
        var e = Assert.Throws<TemplateException>(() => Template.Parse(template, "tokenizer_config.json: chat_template"));
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.Contains(problem, e.Problem);
        Assert.StartsWith($"tokenizer_config.json: chat_template: template line {line}, column {column}: ", e.Message);
    }

    [Fact]
    public void Deeply_nested_syntax_is_refused_not_a_stack_overflow()
    {
        var e = Assert.Throws<TemplateException>(() => Template.Parse("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}"));
        Assert.Contains("nested more than", e.Problem);
        var chain = Assert.Throws<TemplateException>(() => Template.Parse("{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 5000)) + " }}"));
        Assert.Contains("nested more than", chain.Problem);
        var blocks = Assert.Throws<TemplateException>(() => Template.Parse(string.Concat(Enumerable.Repeat("{% if true %}", 5000))));
        Assert.Contains("nested more than", blocks.Problem);
    }

    [Fact]
    public void Long_elif_chains_parse_flat()
    {
        var source = "{% if x == 0 %}0" + string.Concat(Enumerable.Range(1, 3000).Select(i => $"{{% elif x == {i} %}}{i}")) + "{% endif %}";
        Assert.Equal("2999", T.Render(source, "{\"x\": 2999}"));
    }
}
