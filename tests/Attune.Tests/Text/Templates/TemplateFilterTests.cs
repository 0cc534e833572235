namespace Attune.Tests.Text.Templates;

/// <summary>Jinja's filters with their signatures, and tojson as transformers defines it.</summary>
public class TemplateFilterTests
{
    const string Context = """
    {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"},
                  {"role": "assistant", "content": "hi"}, {"role": "user", "content": "bye"}],
     "tool": {"name": "get_weather", "parameters": {"city": "Paris", "days": 3, "tags": ["a", "é"], "ratio": 0.5, "ok": true, "none": null}}}
    """;

    static string R(string template) => T.Render(template, Context);

    [Theory]
    [InlineData("{{ '  x \\n' | trim }}|{{ 'xxhixx' | trim('x') }}", "x|hi")]
    [InlineData("{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello wORLD' | title }}|{{ 'hello-world (foo)' | title }}|{{ 'hELLO' | capitalize }}", "ABC|abc|Hello World|Hello-World (Foo)|Hello")]
    [InlineData("{{ 'hello' | replace('l', 'L') }}|{{ 'hello' | replace('l', 'L', 1) }}", "heLLo|heLlo")]
    [InlineData("{{ 42 | string }}|{{ none | string }}|{{ [1] | string }}|{{ 'x' | safe }}", "42|None|[1]|x")]
    [InlineData("{{ 'a b  c' | wordcount }}|{{ 'abcdefghijklmnop' | truncate(9) }}|{{ 'x' | center(5) }}.", "3|abcdef...|  x  .")]
    [InlineData("{{ '<a href=\"x\">' | e }}|{{ '%s-%s' | format(1, 2) }}", "&lt;a href=&#34;x&#34;&gt;|1-2")]
    public void String_filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ 'x' | indent(2) }}|{{ 'a\\nb\\n\\nc' | indent(2) }}", "x|a\n  b\n\n  c")]
    [InlineData("{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}", "  a\n  b|a\n  \n  b|a\n> b")]
    public void Indent_skips_the_first_line_and_blank_lines_unless_asked(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ messages | length }}|{{ 'abc' | length }}|{{ tool | length }}|{{ nothing | length }}|{{ messages | count }}", "4|3|2|0|4")]
    [InlineData("{{ [1, 2] | first }}{{ [1, 2] | last }}|{{ 'abc' | first }}|{{ [] | first is defined }}", "12|a|False")]
    [InlineData("{{ 'ab' | list }}|{{ tool.parameters | list | length }}|{{ [3, 1] | list }}", "['a', 'b']|6|[3, 1]")]
    [InlineData("{{ {'b': 1, 'a': 2} | items | list }}|{{ nothing | items | list }}", "[('b', 1), ('a', 2)]|[]")]
    [InlineData("{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}", "[3, 2, 1]|cba")]
    [InlineData("{{ [1, 2, 3] | join }}|{{ [1, 2, 3] | join(', ') }}|{{ messages | join('/', attribute='role') }}", "123|1, 2, 3|system/user/assistant/user")]
    public void Sequence_filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ [3, 1, 2] | sort | list }}|{{ ['b', 'A', 'c'] | sort | list }}|{{ ['b', 'A', 'c'] | sort(case_sensitive=true) | list }}", "[1, 2, 3]|['A', 'b', 'c']|['A', 'b', 'c']")]
    [InlineData("{{ [3, 1, 2] | sort(reverse=true) | list }}|{{ messages | sort(attribute='role') | map(attribute='content') | join(',') }}", "[3, 2, 1]|hi,sys,hello,bye")]
    [InlineData("{{ {'b': 1, 'a': 2} | dictsort }}|{{ {'b': 1, 'a': 2} | dictsort(by='value') }}|{{ {'b': 1, 'a': 2} | dictsort(reverse=true) }}", "[('a', 2), ('b', 1)]|[('b', 1), ('a', 2)]|[('b', 1), ('a', 2)]")]
    [InlineData("{{ [1, 2, 1, 3] | unique | list }}|{{ ['a', 'A', 'b'] | unique | list }}|{{ ['a', 'A'] | unique(case_sensitive=true) | list }}", "[1, 2, 3]|['a', 'b']|['a', 'A']")]
    [InlineData("{{ [1, 2, 3] | sum }}|{{ [1, 2] | sum(start=10) }}|{{ [4, 9, 2] | max }}|{{ [4, 9, 2] | min }}|{{ ['b', 'A'] | max }}", "6|13|9|2|b")]
    [InlineData("{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ [1, 2, 3] | batch(2, 0) | list }}", "[[1, 2], [3, 4], [5]]|[[1, 2], [3, 0]]")]
    public void Sorting_and_aggregation_filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", "hello,bye")]
    [InlineData("{{ messages | rejectattr('role', 'in', ['system', 'assistant']) | list | length }}", "2")]
    [InlineData("{{ messages | selectattr('missing') | list | length }}|{{ messages | selectattr('role', 'defined') | list | length }}", "0|4")]
    [InlineData("{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ [0, 1, '', 'a'] | select | list }}", "[1, 3]|[2, 4]|[1, 'a']")]
    [InlineData("{{ ['a', 'b'] | map('upper') | join }}|{{ [[1, 2], [3]] | map('length') | list }}|{{ messages | map(attribute='x', default='-') | join }}", "AB|[2, 1]|----")]
    [InlineData("{{ [{'a': {'b': 1}}, {'a': {'b': 2}}] | map(attribute='a.b') | list }}|{{ [[1, 2], [3, 4]] | map(attribute='1') | list }}", "[1, 2]|[2, 4]")]
    public void Selection_and_mapping_filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ x | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | default('d') }}|{{ x | d('e') }}", "d||d|None|e")]
    [InlineData("{{ '42' | int + 1 }}|{{ '3.7' | int }}|{{ 'abc' | int }}|{{ 'abc' | int(7) }}|{{ '0x1A' | int(0, 16) }}|{{ 3.9 | int }}|{{ true | int }}", "43|3|0|7|26|3|1")]
    [InlineData("{{ '3.5' | float }}|{{ 5 | float }}|{{ 'x' | float }}|{{ ' 1e3 ' | float }}", "3.5|5.0|0.0|1000.0")]
    [InlineData("{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.675 | round(2) }}|{{ 3.14159 | round(3) }}|{{ 2.341 | round(2, 'ceil') }}|{{ 2.349 | round(2, 'floor') }}|{{ 7 | round }}", "2.0|4.0|2.67|3.142|2.35|2.34|7")]
    [InlineData("{{ -3 | abs }}|{{ -2.5 | abs }}", "3|2.5")]
    [InlineData("{{ tool | attr('name') }}|{{ tool | attr('__class__') }}", "get_weather|")]
    public void Conversion_filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ tool | tojson }}",
        """{"name": "get_weather", "parameters": {"city": "Paris", "days": 3, "tags": ["a", "é"], "ratio": 0.5, "ok": true, "none": null}}""")]
    [InlineData("{{ tool.parameters.tags | tojson(ensure_ascii=true) }}", """["a", "\u00e9"]""")]
    [InlineData("{{ {'b': [1, {}], 'a': []} | tojson(indent=2) }}", "{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": []\n}")]
    [InlineData("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}", """{"a": 2, "b": 1}|{"a":[1,2]}""")]
    [InlineData("{{ 'quote \" backslash \\\\ nl \\n tab \\t ctl \\x01 <>&' | tojson }}", "\"quote \\\" backslash \\\\ nl \\n tab \\t ctl \\u0001 <>&\"")]
    [InlineData("{{ (1, 2.0, none) | tojson }}|{{ {1: 'a', true: 'b'} | tojson }}", """[1, 2.0, null]|{"1": "b"}""")]
    public void Tojson_matches_python_json_dumps(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void Tojson_refuses_what_json_cannot_hold() =>
        Assert.Contains("not JSON serializable", T.Error("{{ namespace(a=1) | tojson }}").Problem);

    [Fact]
    public void Filters_jinja_has_but_attune_does_not_fail_when_rendered_not_when_parsed()
    {
        Assert.Equal("ok", T.Render("{% if false %}{{ x | groupby('a') }}{% endif %}ok"));
        Assert.Contains("'groupby' filter is not supported", T.Error("{{ [1] | groupby('a') }}").Problem);
    }
}
