using Attune.Text.Templates;

namespace Attune.Tests.Text.Templates;

/// <summary>
/// Expressions with Python's semantics, as transformers' Jinja evaluates them: arithmetic,
/// comparisons, membership, slicing, tests, methods of str and dict, and how values print.
/// </summary>
public class TemplateExpressionTests
{
    [Theory]
    [InlineData("{{ 1 + 2 }}|{{ 7 - 10 }}|{{ 2 * 3 }}|{{ 1.5 * 2 }}", "3|-3|6|3.0")]
    [InlineData("{{ 7 / 2 }}|{{ 6 / 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 10 // 4.0 }}", "3.5|2.0|3|-4|2.0")]
    [InlineData("{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 5.5 % 2 }}", "1|2|-2|1.5")]
    [InlineData("{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 2 ** 3 ** 2 }}", "1024|0.5|64")]   // Jinja's ** is left-associative
    [InlineData("{{ -(2 ** 2) }}|{{ -1 | abs }}|{{ +3 }}", "-4|1|3")]
    [InlineData("{{ 'ab' + 'cd' }}|{{ 'ab' * 3 }}|{{ 3 * 'ab' }}|{{ [1, 2] + [3] }}|{{ [0] * 3 }}", "abcd|ababab|ababab|[1, 2, 3]|[0, 0, 0]")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true ~ undefined_name }}", "a1NoneTrue")]
    [InlineData("{{ true + 1 }}|{{ 1 == 1.0 }}|{{ true == 1 }}", "2|True|True")]
    public void Arithmetic_follows_Python(string template, string expected) => Assert.Equal(expected, T.Render(template));

    [Theory]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ 'a' + 1 }}", "can only concatenate str (not \"int\") to str")]
    [InlineData("{{ none + 1 }}", "unsupported operand type(s) for +: 'NoneType' and 'int'")]
    [InlineData("{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'")]
    [InlineData("{{ missing + 1 }}", "'missing' is undefined")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "integer overflow")]
    [InlineData("{{ [1, 'a'] | sort }}", "'<' not supported between instances of")]
    [InlineData("{{ {1: 1, 'a': 2} | tojson(sort_keys=true) }}", "'<' not supported between instances of")]
    [InlineData("{{ '%c' % 1114112 }}", "%c arg not in range(0x110000)")]
    [InlineData("{{ 'x' % 0 }}", "not all arguments converted during string formatting")]
    public void Type_errors_are_template_errors(string template, string problem) => Assert.Contains(problem, T.Error(template).Problem);

    [Theory]
    [InlineData("{{ 1 < 2 }}|{{ 2 <= 2 }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ 10 > 3 > 1 }}|{{ 3 > 10 > 1 }}", "True|True|True|True|True|False")]
    [InlineData("{{ (1, 2) == (1, 2) }}|{{ [1] == (1,) }}|{{ {'a': 1} == {'a': 1} }}|{{ 'a' != 'b' }}", "True|False|True|True")]
    [InlineData("{{ 1 in [1, 2] }}|{{ 'b' in 'abc' }}|{{ 'a' in {'a': 1} }}|{{ 3 not in [1] }}|{{ 'x' in nothing }}", "True|True|True|True|False")]
    [InlineData("{{ not true or true }}|{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ [] and 'z' }}", "True|x|y|[]")]
    [InlineData("{{ 'y' if true else 'n' }}|{{ 'abc' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}", "y||3")]
    public void Comparisons_membership_and_logic_follow_Python(string template, string expected) => Assert.Equal(expected, T.Render(template));

    [Theory]
    [InlineData("{{ 'hello'[1:3] }}|{{ 'hello'[::-1] }}|{{ 'hello'[-1] }}|{{ 'hello'[10] is defined }}", "el|olleh|o|False")]
    [InlineData("{{ [1,2,3,4,5][-2:] }}|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3,4,5][3:0:-1] }}|{{ [1,2,3][5:] }}", "[4, 5]|[1, 3, 5]|[4, 3, 2]|[]")]
    [InlineData("{{ messages[1:] | length }}|{{ messages[-1].role }}|{{ messages[::-1][0].role }}", "1|user|user")]
    [InlineData("{{ 'a😀b'[1] }}|{{ 'a😀b'[::-1] }}|{{ 'a😀b' | length }}", "😀|b😀a|3")]  // indices count code points, as in Python
    public void Indexing_and_slicing_follow_Python(string template, string expected) =>
        Assert.Equal(expected, T.Render(template, """{"messages": [{"role": "system"}, {"role": "user"}]}"""));

    [Fact]
    public void A_zero_slice_step_is_an_error() => Assert.Contains("slice step cannot be zero", T.Error("{{ [1, 2][::0] }}").Problem);

    [Theory]
    [InlineData("{{ x is defined }}|{{ x is undefined }}|{{ none is none }}|{{ y is none }}", "False|True|True|True")]
    [InlineData("{{ 'a' is string }}|{{ 1 is string }}|{{ {} is mapping }}|{{ [] is mapping }}", "True|False|True|False")]
    [InlineData("{{ [] is iterable }}|{{ 'a' is iterable }}|{{ 3 is iterable }}|{{ [] is sequence }}", "True|True|False|True")]
    [InlineData("{{ 1 is number }}|{{ 1.0 is float }}|{{ 1 is integer }}|{{ true is integer }}|{{ true is boolean }}", "True|True|True|False|True")]
    [InlineData("{{ true is true }}|{{ 1 is true }}|{{ false is false }}", "True|False|True")]
    [InlineData("{{ 3 is odd }}|{{ 4 is even }}|{{ 6 is divisibleby 3 }}|{{ 7 is divisibleby(3) }}", "True|True|True|False")]
    [InlineData("{{ 2 is in [1, 2] }}|{{ 'a' is eq 'a' }}|{{ 1 is lt 2 }}|{{ 3 is ge 3 }}|{{ none is sameas none }}", "True|True|True|True|True")]
    [InlineData("{{ 'AB' is upper }}|{{ 'ab' is lower }}|{{ range is callable }}|{{ 'upper' is filter }}|{{ 'odd' is test }}", "True|True|True|True|True")]
    [InlineData("{{ x is not defined }}|{{ none is not none }}", "True|False")]
    public void Tests_answer_like_Jinja(string template, string expected) => Assert.Equal(expected, T.Render(template, """{"y": null}"""));

    [Theory]
    [InlineData("{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\n a'.lstrip('\\n') }}|{{ 'a \\n'.rstrip() }}", "x|hi| a|a")]
    [InlineData("{{ 'abc'.startswith('a') }}|{{ 'abc'.endswith(('x', 'bc')) }}|{{ 'abc'.startswith('b', 1) }}", "True|True|True")]
    [InlineData("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}", "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a b', 'c']")]
    [InlineData("{{ '  a  b '.split(none, 1) }}|{{ 'a\\nb\\r\\nc'.splitlines() }}", "['a', 'b ']|['a', 'b', 'c']")]
    [InlineData("{{ 'Hello'.upper() }}|{{ 'Hello'.lower() }}|{{ 'hello world'.title() }}|{{ \"they're\".title() }}|{{ 'hELLO'.capitalize() }}", "HELLO|hello|Hello World|They'Re|Hello")]
    [InlineData("{{ 'a-b-c'.replace('-', '+') }}|{{ 'a-b-c'.replace('-', '+', 1) }}|{{ 'ab'.replace('', '.') }}", "a+b+c|a+b-c|.a.b.")]
    [InlineData("{{ 'abcabc'.find('c') }}|{{ 'abc'.find('z') }}|{{ 'abcabc'.rfind('a') }}|{{ 'abcabc'.count('b') }}", "2|-1|3|2")]
    [InlineData("{{ ', '.join(['a', 'b']) }}|{{ 'ab'.center(6, '*') }}|{{ '7'.zfill(3) }}|{{ 'ab'.ljust(4) }}.", "a, b|**ab**|007|ab  .")]
    [InlineData("{{ 'prefix-x'.removeprefix('prefix-') }}|{{ 'a=b'.partition('=') }}|{{ '42'.isdigit() }}|{{ ' '.isspace() }}", "x|('a', '=', 'b')|True|True")]
    [InlineData("{{ 'hello %s, %d%%' % ('you', 5) }}|{{ '%-4s|%5.2f|%03d|%x' % ('ab', 3.14159, 7, 255) }}|{{ '%(a)s' % {'a': 1} }}", "hello you, 5%|ab  | 3.14|007|ff|1")]
    [InlineData("{{ '{} and {}'.format(1, 'b') }}|{{ '{0}{0}'.format('x') }}|{{ '{n}!'.format(n=3) }}|{{ '{:>6}|{:.3f}|{:05d}'.format('ab', 2.5, 42) }}", "1 and b|xx|3!|    ab|2.500|00042")]
    public void String_methods_follow_Python(string template, string expected) => Assert.Equal(expected, T.Render(template));

    [Theory]
    [InlineData("{{ d.get('a') }}|{{ d.get('z') }}|{{ d.get('z', 0) }}|{{ d['a'] }}|{{ d.a }}", "1|None|0|1|1")]
    [InlineData("{{ d.items() | list }}|{{ d.keys() | list }}|{{ d.values() | list }}", "[('a', 1), ('b', [2])]|['a', 'b']|[1, [2]]")]
    [InlineData("{{ d.z is defined }}|{{ d['z'] is defined }}|{{ d.items is callable }}", "False|False|True")]
    [InlineData("{{ [1, 2, 1].count(1) }}|{{ [5, 6].index(6) }}", "2|1")]
    public void Dict_and_list_methods_follow_Python(string template, string expected) =>
        Assert.Equal(expected, T.Render(template, """{"d": {"a": 1, "b": [2]}}"""));

    [Theory]
    [InlineData("{{ none }}|{{ true }}|{{ false }}|{{ undefined_name }}", "None|True|False|")]
    [InlineData("{{ 3.0 }}|{{ 0.1 + 0.2 }}|{{ 1/3 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 0.0001 }}|{{ -0.0 }}|{{ 1e16 }}|{{ 1e15 }}", "3.0|0.30000000000000004|0.3333333333333333|1e+20|1e-05|0.0001|-0.0|1e+16|1000000000000000.0")]
    [InlineData("{{ [1, 'a', none, true, 1.5] }}|{{ (1,) }}|{{ {'k': 'v'} }}|{{ \"it's\" | list }}", "[1, 'a', None, True, 1.5]|(1,)|{'k': 'v'}|['i', 't', \"'\", 's']")]
    [InlineData("{{ ['tab\\there', '\\u00a0'] }}", "['tab\\there', '\\xa0']")]
    [InlineData("{{ [1.5, 2] | first }}|{{ 7 }}|{{ -3 }}", "1.5|7|-3")]
    public void Values_print_as_Python_str(string template, string expected) => Assert.Equal(expected, T.Render(template));

    [Fact]
    public void Json_numbers_keep_int_and_float_apart() =>
        Assert.Equal("1|1.0|1000.0|2.5|int|float", T.Render(
            "{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ 'int' if a is integer }}|{{ 'float' if b is float }}", """{"a": 1, "b": 1.0, "c": 1e3, "d": 2.5}"""));

    [Fact]
    public void Attributes_of_undefined_values_are_errors_naming_what_was_undefined()
    {
        Assert.Equal("'a' is undefined", T.Error("{{ a.b.c }}").Problem);
        Assert.Equal("list object has no element 9", T.Error("{{ messages[9].content }}", """{"messages": []}""").Problem);
        Assert.Equal("'dict object' has no attribute 'x'", T.Error("{{ d.x.y }}", """{"d": {}}""").Problem);
        Assert.Equal("", T.Render("{{ none.x }}")); // an attribute of None is undefined, as in Jinja, not an error
    }
}
