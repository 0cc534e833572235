using System.Text.Json.Nodes;
using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>Every statement a chat template may use, with Jinja's scoping rules.</summary>
public class TemplateStatementTests
{
    [Theory]
    [InlineData(1, "a")]
    [InlineData(2, "b")]
    [InlineData(3, "c")]
    public void If_elif_else_takes_the_first_true_branch(int x, string expected) =>
        Assert.Equal(expected, T.Render("{% if x == 1 %}a{% elif x == 2 %}b{% else %}c{% endif %}", $"{{\"x\": {x}}}"));

    [Fact]
    public void For_exposes_the_loop_variable()
    {
        Assert.Equal("10TrueFalse33,21FalseFalse32,32FalseTrue31,",
            T.Render("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }},{% endfor %}"));
        Assert.Equal("-2|13|2-|", T.Render("{% for i in [1,2,3] %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }}|{% endfor %}"));
        Assert.Equal("abab", T.Render("{% for i in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}"));
        Assert.Equal("TrueFalseTrue", T.Render("{% for i in [1, 1, 2] %}{{ loop.changed(i) }}{% endfor %}"));
        Assert.Equal("1020", T.Render("{% for i in [1, 2] %}{% for j in [0] %}{{ i }}{{ j }}{% endfor %}{% endfor %}"));
    }

    [Fact]
    public void For_else_runs_only_when_nothing_was_iterated()
    {
        Assert.Equal("empty", T.Render("{% for x in [] %}a{% else %}empty{% endfor %}"));
        Assert.Equal("aa", T.Render("{% for x in [1, 2] %}a{% else %}empty{% endfor %}"));
        Assert.Equal("none", T.Render("{% for x in [1, 2] if x > 5 %}a{% else %}none{% endfor %}"));
    }

    [Fact]
    public void For_with_a_filter_counts_only_the_kept_items() =>
        Assert.Equal("1b2d", T.Render("{% for m in ['a','b','c','d'] if m in 'bd' %}{{ loop.index }}{{ m }}{% endfor %}"));

    [Fact]
    public void For_unpacks_pairs_and_walks_dicts_and_strings()
    {
        Assert.Equal("a=1;b=2;", T.Render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"));
        Assert.Equal("xy", T.Render("{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}"));
        Assert.Equal("h.é.😀.", T.Render("{% for c in 'hé😀' %}{{ c }}.{% endfor %}"));
        Assert.Equal("", T.Render("{% for x in nothing %}a{% endfor %}")); // undefined iterates as empty
        Assert.Contains("not iterable", T.Error("{% for x in 5 %}{% endfor %}").Problem);
    }

    [Fact]
    public void Break_and_continue_control_the_innermost_loop() =>
        Assert.Equal("13|13|", T.Render(
            "{% for j in [0, 1] %}{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% endfor %}"));

    [Fact]
    public void Set_in_a_loop_stays_in_the_loop_but_a_namespace_carries_out()
    {
        Assert.Equal("1", T.Render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"));
        Assert.Equal("2", T.Render("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"));
        Assert.Equal("4", T.Render("{% set ns = namespace(a=1) %}{% for x in [1,2] %}{% set ns.a = ns.a + x %}{% endfor %}{{ ns.a }}"));
        Assert.Equal("[0, 1, 2]", T.Render("{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}"));
        Assert.Contains("non-namespace", T.Error("{% set x = 1 %}{% set x.y = 2 %}").Problem);
    }

    [Fact]
    public void Set_unpacks_tuples_and_block_set_captures_output()
    {
        Assert.Equal("12", T.Render("{% set a, b = [1, 2] %}{{ a }}{{ b }}"));
        Assert.Equal("(1, 2)", T.Render("{% set t = 1, 2 %}{{ t }}"));
        Assert.Equal("[block 1]", T.Render("{% set x %}block {{ 1 }}{% endset %}[{{ x }}]"));
        Assert.Equal("ABC", T.Render("{% set s | upper %}abc{% endset %}{{ s }}"));
        Assert.Contains("not enough values to unpack", T.Error("{% set a, b, c = [1, 2] %}").Problem);
    }

    [Fact]
    public void Macros_take_positional_keyword_and_default_arguments()
    {
        Assert.Equal("[1B][12][3B]", T.Render("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(a=3) }}"));
        Assert.Equal("1(2, 3){'k': 4}", T.Render("{% macro m(x) %}{{ x }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}"));
        Assert.Equal("[1]", T.Render("{% macro m(a, b=a) %}[{{ b }}]{% endmacro %}{{ m(1) }}")); // defaults see earlier parameters
        Assert.Contains("takes not more than 1 argument", T.Error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").Problem);
        Assert.Contains("no keyword argument 'z'", T.Error("{% macro m(a) %}{% endmacro %}{{ m(z=1) }}").Problem);
    }

    [Fact]
    public void Macros_recurse_and_see_the_template_variables_where_defined() =>
        Assert.Equal("3 2 1 go", T.Render(
            "{% set word = 'go' %}{% macro count(n) %}{% if n > 0 %}{{ n }} {{ count(n - 1) }}{% else %}{{ word }}{% endif %}{% endmacro %}{{ count(3) }}"));

    [Fact]
    public void Call_blocks_pass_their_body_as_caller()
    {
        Assert.Equal("<inner>", T.Render("{% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}inner{% endcall %}"));
        Assert.Equal("[n=5]", T.Render("{% macro outer() %}[{{ caller(5) }}]{% endmacro %}{% call(n) outer() %}n={{ n }}{% endcall %}"));
    }

    [Fact]
    public void Filter_blocks_filter_their_rendered_body()
    {
        Assert.Equal("ABC", T.Render("{% filter upper %}abc{% endfilter %}"));
        Assert.Equal("a\n  b", T.Render("{% filter indent(2) %}a\nb{% endfilter %}"));
        Assert.Equal("X", T.Render("{% filter trim | upper %}  x  {% endfilter %}"));
    }

    [Fact]
    public void With_scopes_its_assignments() =>
        Assert.Equal("3|", T.Render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}|{{ a }}"));

    [Fact]
    public void Generation_blocks_record_where_the_assistant_text_lies()
    {
        var template = Template.Parse(
            "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}{{ '\n' }}{% endfor %}");
        var context = JsonNode.Parse("""{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]}""")!.AsObject();
        var result = template.Render(context);
        Assert.Equal("<user>Hi\n<assistant>Hello!</s>\n<user>Bye\n<assistant>Ciao</s>\n", result.Text);
        Assert.Equal(["Hello!</s>", "Ciao</s>"], result.GenerationSpans.Select(s => result.Text[s.Start..s.End]).ToArray());
    }

    [Fact]
    public void Generation_tags_follow_whitespace_control_like_any_block() =>
        Assert.Equal("a\nb\n", T.Render("a\n{% generation %}\nb\n{% endgeneration %}\n"));

    [Fact]
    public void Raise_exception_fails_with_the_template_message_and_position()
    {
        var e = T.Error("{% if messages | length == 0 %}\n  {{ raise_exception('Conversation is empty') }}\n{% endif %}", """{"messages": []}""");
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("Conversation is empty", e.Problem);
        Assert.Equal((2, 6), (e.Line, e.Column));
    }
}
