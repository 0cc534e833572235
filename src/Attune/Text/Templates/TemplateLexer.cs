using System.Globalization;
using System.Text;

namespace Attune.Text.Templates;

enum TokenKind : byte
{
    /// <summary>Literal text outside tags, after whitespace control.</summary>
    Text,
    /// <summary><c>{%</c></summary>
    BlockBegin,
    /// <summary><c>%}</c></summary>
    BlockEnd,
    /// <summary><c>{{</c></summary>
    VariableBegin,
    /// <summary><c>}}</c></summary>
    VariableEnd,
    Name,
    String,
    Integer,
    Float,
    /// <summary>An operator or punctuation: <c>+ - * / // % ** ~ == != &lt; &lt;= &gt; &gt;= = ( ) [ ] { } , . : |</c>.</summary>
    Operator,
    End,
}

/// <summary>A token and where it starts in the template source (1-based line and column).</summary>
readonly record struct Token(TokenKind Kind, string Value, int Line, int Column)
{
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Value == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;

    public string Describe() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.Text => "text",
        TokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}

/// <summary>
/// Splits a template into text and the tokens inside <c>{{ }}</c>, <c>{% %}</c> (comments
/// <c>{# #}</c> are dropped), applying whitespace control as transformers configures Jinja for
/// chat templates and as @huggingface/jinja reproduces it:
/// <list type="bullet">
/// <item>line breaks in the template are read as <c>\n</c> (as Jinja does; @huggingface/jinja keeps <c>\r\n</c>);</item>
/// <item>one trailing newline at the end of the template is dropped;</item>
/// <item><c>lstrip_blocks</c>: spaces and tabs from the start of a line up to a <c>{%</c> or <c>{#</c> are dropped;</item>
/// <item><c>trim_blocks</c>: the first newline after a <c>%}</c> or <c>#}</c> is dropped;</item>
/// <item><c>{%-</c>, <c>{{-</c>, <c>{#-</c> drop all whitespace before the tag, <c>-%}</c>, <c>-}}</c>, <c>-#}</c> all after it.</item>
/// </list>
/// </summary>
sealed class TemplateLexer
{
    readonly string _src;
    readonly string? _sourceName;
    readonly int _end;
    readonly int[] _lineStarts;
    readonly List<Token> _tokens = [];
    int _pos;

    TemplateLexer(string source, string? sourceName)
    {
        // Jinja reads every line break of the source as "\n" (so "%}\r\n" trims like "%}\n");
        // lines and columns are unchanged by this.
        if (source.Contains('\r')) source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        _src = source;
        _sourceName = sourceName;
        _end = source.EndsWith('\n') ? source.Length - 1 : source.Length;
        var starts = new List<int> { 0 };
        for (int i = 0; i < source.Length; i++)
            if (source[i] == '\n') starts.Add(i + 1);
        _lineStarts = [.. starts];
    }

    public static List<Token> Tokenize(string source, string? sourceName = null)
    {
        var lexer = new TemplateLexer(source, sourceName);
        lexer.Run();
        return lexer._tokens;
    }

    (int Line, int Column) Position(int offset)
    {
        int line = Array.BinarySearch(_lineStarts, offset);
        if (line < 0) line = ~line - 1;
        return (line + 1, offset - _lineStarts[line] + 1);
    }

    TemplateException Error(int offset, string problem)
    {
        var (line, column) = Position(offset);
        return new TemplateException(_sourceName, line, column, problem);
    }

    void Add(TokenKind kind, string value, int offset)
    {
        var (line, column) = Position(offset);
        _tokens.Add(new Token(kind, value, line, column));
    }

    /// <summary>The whitespace that <c>-</c> strips: JavaScript's <c>\s</c>, as the reference implementation has it (Python's <c>\s</c> differs only in rare control characters).</summary>
    static bool IsStripSpace(char c) => c switch
    {
        ' ' or '\t' or '\n' or '\v' or '\f' or '\r' or '\u00a0' or '\u1680' or '\u2028' or '\u2029'
            or '\u202f' or '\u205f' or '\u3000' or '\ufeff' => true,
        >= '\u2000' and <= '\u200a' => true,
        _ => false,
    };

    static bool IsLineBreak(char c) => c is '\n' or '\r' or '\u2028' or '\u2029';

    enum Tag { None, Block, Comment, Variable }

    void Run()
    {
        var previous = Tag.None;     // the kind of the tag before the current text
        bool stripAfter = false;     // it ended with '-'
        while (_pos < _end)
        {
            int textStart = _pos;
            int tagStart = FindTagStart(_pos);
            int textEnd = tagStart < 0 ? _end : tagStart;
            var tag = tagStart < 0 ? Tag.None : _src[tagStart + 1] switch { '%' => Tag.Block, '#' => Tag.Comment, _ => Tag.Variable };
            bool stripBefore = tag != Tag.None && tagStart + 2 < _end && _src[tagStart + 2] == '-';

            // Whitespace control of the text between two tags.
            int a = textStart, b = textEnd;
            if (stripAfter)
                while (a < b && IsStripSpace(_src[a])) a++;
            else if (previous is Tag.Block or Tag.Comment && a < b && _src[a] == '\n')
                a++; // trim_blocks
            if (stripBefore)
                while (b > a && IsStripSpace(_src[b - 1])) b--;
            else if (tag is Tag.Block or Tag.Comment)
            {
                // lstrip_blocks: only when nothing but spaces and tabs precede the tag on its line
                int s = textEnd;
                while (s > textStart && _src[s - 1] is ' ' or '\t') s--;
                if (s == 0 || IsLineBreak(_src[s - 1])) b = Math.Min(b, s);
            }
            if (b > a) Add(TokenKind.Text, _src[a..b], a);
            if (tag == Tag.None) { _pos = _end; break; }

            _pos = tagStart + (stripBefore ? 3 : 2);
            switch (tag)
            {
                case Tag.Comment:
                {
                    int close = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
                    if (close < 0 || close + 2 > _end)
                        throw Error(tagStart, "comment is not closed (missing '#}')");
                    stripAfter = close > _pos && _src[close - 1] == '-';
                    _pos = close + 2;
                    previous = Tag.Comment;
                    break;
                }
                case Tag.Block when TryRawBlock(tagStart, out stripAfter):
                    previous = Tag.Block;
                    break;
                default:
                    Add(tag == Tag.Block ? TokenKind.BlockBegin : TokenKind.VariableBegin, tag == Tag.Block ? "{%" : "{{", tagStart);
                    stripAfter = LexTag(tag, tagStart);
                    previous = tag;
                    break;
            }
        }
        Add(TokenKind.End, "", Math.Min(_pos, _src.Length));
    }

    int FindTagStart(int from)
    {
        for (int i = _src.IndexOf('{', from); i >= 0 && i + 1 < _end; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>
    /// Tokens inside one tag up to its closing <c>%}</c> or <c>}}</c>; returns whether it closed with
    /// <c>-</c>. A <c>}}</c> inside brackets closes a dict literal, not the tag.
    /// </summary>
    bool LexTag(Tag tag, int tagStart)
    {
        string close = tag == Tag.Block ? "%}" : "}}";
        int depth = 0;
        while (true)
        {
            while (_pos < _end && IsStripSpace(_src[_pos])) _pos++;
            if (_pos >= _end)
                throw Error(tagStart, $"'{(tag == Tag.Block ? "{%" : "{{")}' is not closed (missing '{close}')");
            char c = _src[_pos];
            if (depth == 0)
            {
                if (c == '-' && At(_pos + 1, close))
                {
                    Add(tag == Tag.Block ? TokenKind.BlockEnd : TokenKind.VariableEnd, close, _pos);
                    _pos += 3;
                    return true;
                }
                if (At(_pos, close))
                {
                    Add(tag == Tag.Block ? TokenKind.BlockEnd : TokenKind.VariableEnd, close, _pos);
                    _pos += 2;
                    return false;
                }
            }
            int start = _pos;
            if (c is '\'' or '"') { Add(TokenKind.String, ReadString(c), start); continue; }
            if (char.IsAsciiDigit(c)) { ReadNumber(); continue; }
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (_pos < _end && (char.IsAsciiLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                Add(TokenKind.Name, _src[start.._pos], start);
                continue;
            }
            var op = ReadOperator();
            if (op is null) throw Error(_pos, $"unexpected character '{c}'");
            if (op is "(" or "[" or "{") depth++;
            else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
            Add(TokenKind.Operator, op, start);
        }
    }

    bool At(int i, string s) => i + s.Length <= _end && string.CompareOrdinal(_src, i, s, 0, s.Length) == 0;

    static readonly string[] Operators2 = ["//", "**", "==", "!=", "<=", ">="];
    const string Operators1 = "+-*/%~<>=()[]{},.:|";

    string? ReadOperator()
    {
        foreach (var op in Operators2)
            if (At(_pos, op)) { _pos += 2; return op; }
        char c = _src[_pos];
        if (Operators1.Contains(c)) { _pos++; return c.ToString(); }
        return null;
    }

    /// <summary>
    /// A number: digits (with <c>_</c> separators), an optional fraction and exponent. After a
    /// <c>.</c> only the integer part is taken, so that <c>x.0.1</c> reads as two subscripts.
    /// </summary>
    void ReadNumber()
    {
        int start = _pos;
        while (_pos < _end && (char.IsAsciiDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _end && char.IsAsciiDigit(_src[_pos + 1])))) _pos++;
        bool isFloat = false;
        bool afterDot = _tokens.Count > 0 && _tokens[^1].IsOperator(".");
        if (!afterDot && _pos + 1 < _end && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < _end && (char.IsAsciiDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _end && char.IsAsciiDigit(_src[_pos + 1])))) _pos++;
        }
        if (!afterDot && _pos < _end && _src[_pos] is 'e' or 'E')
        {
            int e = _pos + 1;
            if (e < _end && _src[e] is '+' or '-') e++;
            if (e < _end && char.IsAsciiDigit(_src[e]))
            {
                isFloat = true;
                _pos = e;
                while (_pos < _end && char.IsAsciiDigit(_src[_pos])) _pos++;
            }
        }
        var text = _src[start.._pos].Replace("_", "");
        if (!isFloat && !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw Error(start, $"integer {text} is too large (Attune's template integers are 64-bit)");
        Add(isFloat ? TokenKind.Float : TokenKind.Integer, text, start);
    }

    /// <summary>A quoted string with Python's escapes; an unknown escape keeps its backslash, as in Python.</summary>
    string ReadString(char quote)
    {
        int start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _end) throw Error(start, "string is not closed");
            char c = _src[_pos++];
            if (c == quote) return sb.ToString();
            if (c != '\\') { sb.Append(c); continue; }
            if (_pos >= _end) throw Error(start, "string is not closed");
            char e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '0': sb.Append('\0'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case '\n': break; // a backslash-newline continues the line
                case 'x': sb.Append(Hex(2, start)); break;
                case 'u': sb.Append(Hex(4, start)); break;
                case 'U': sb.Append(Hex(8, start)); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
    }

    string Hex(int digits, int stringStart)
    {
        if (_pos + digits > _end || !int.TryParse(_src.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF && digits == 8))
            throw Error(_pos - 2, $"invalid \\{_src[_pos - 1]} escape in string");
        _pos += digits;
        return cp <= 0xFFFF ? ((char)cp).ToString() : char.ConvertFromUtf32(cp);
    }

    /// <summary>
    /// <c>{% raw %}…{% endraw %}</c>: everything between is text, untouched. (Jinja has it;
    /// @huggingface/jinja does not, so the conformance suite does not use it.)
    /// </summary>
    bool TryRawBlock(int tagStart, out bool stripAfter)
    {
        stripAfter = false;
        int i = tagStart + 2;
        if (i < _end && _src[i] == '-') i++;
        while (i < _end && IsStripSpace(_src[i])) i++;
        if (!At(i, "raw")) return false;
        i += 3;
        while (i < _end && IsStripSpace(_src[i])) i++;
        bool rawStripAfter = At(i, "-%}");
        if (!rawStripAfter && !At(i, "%}")) return false;
        int bodyStart = i + (rawStripAfter ? 3 : 2);
        // find {% endraw %} (with optional '-' on either side)
        for (int j = _src.IndexOf("{%", bodyStart, StringComparison.Ordinal); j >= 0 && j < _end; j = _src.IndexOf("{%", j + 2, StringComparison.Ordinal))
        {
            int k = j + 2;
            bool endStripBefore = k < _end && _src[k] == '-';
            if (endStripBefore) k++;
            while (k < _end && IsStripSpace(_src[k])) k++;
            if (!At(k, "endraw")) continue;
            k += 6;
            while (k < _end && IsStripSpace(_src[k])) k++;
            bool endStripAfter = At(k, "-%}");
            if (!endStripAfter && !At(k, "%}")) continue;
            int a = bodyStart, b = j;
            if (rawStripAfter) while (a < b && IsStripSpace(_src[a])) a++;
            else if (a < b && _src[a] == '\n') a++;
            if (endStripBefore) while (b > a && IsStripSpace(_src[b - 1])) b--;
            else
            {
                int s = b;
                while (s > a && _src[s - 1] is ' ' or '\t') s--;
                if (s > 0 && IsLineBreak(_src[s - 1])) b = s;
            }
            if (b > a) Add(TokenKind.Text, _src[a..b], a);
            _pos = k + (endStripAfter ? 3 : 2);
            stripAfter = endStripAfter;
            return true;
        }
        throw Error(tagStart, "'{% raw %}' is not closed (missing '{% endraw %}')");
    }
}
