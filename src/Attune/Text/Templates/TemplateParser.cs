using System.Globalization;

namespace Attune.Text.Templates;

/// <summary>
/// Tokens to a syntax tree, with Jinja's grammar and operator precedence (lowest first):
/// <c>x if c else y</c>, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c> (chained, as
/// in Python), <c>+ -</c>, <c>~</c>, <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then filters
/// <c>|f</c> and tests <c>is t</c> on a primary with its <c>.attr [item] (call)</c> suffixes.
/// Unknown statements, filters and tests are errors here, before anything renders.
/// </summary>
sealed class TemplateParser
{
    /// <summary>Deepest nesting of blocks and parentheses; deeper templates are refused rather than overflow the stack.</summary>
    public const int MaxNesting = 200;

    readonly List<Token> _tokens;
    readonly string? _sourceName;
    int _pos;
    int _depth;
    int _loopDepth;

    TemplateParser(List<Token> tokens, string? sourceName)
    {
        _tokens = tokens;
        _sourceName = sourceName;
    }

    public static Stmt[] Parse(string source, string? sourceName = null)
    {
        var parser = new TemplateParser(TemplateLexer.Tokenize(source, sourceName), sourceName);
        var body = parser.ParseBody(out var stop);
        if (stop is not null) throw parser.Error(stop.Value, $"unexpected '{{% {stop.Value.Value} %}}' (no block is open that it could close)");
        return body;
    }

    Token Current => _tokens[_pos];
    Token Peek(int ahead = 1) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];
    Token Next() => _tokens[_pos++];

    TemplateException Error(Token at, string problem) => new(_sourceName, at.Line, at.Column, problem);

    Token Expect(TokenKind kind, string what)
    {
        var t = Current;
        if (t.Kind != kind) throw Error(t, $"expected {what}, got {t.Describe()}");
        _pos++;
        return t;
    }

    void ExpectOperator(string op)
    {
        if (!Current.IsOperator(op)) throw Error(Current, $"expected '{op}', got {Current.Describe()}");
        _pos++;
    }

    Token ExpectName(string? name = null)
    {
        var t = Current;
        if (t.Kind != TokenKind.Name || (name is not null && t.Value != name))
            throw Error(t, name is null ? $"expected a name, got {t.Describe()}" : $"expected '{name}', got {t.Describe()}");
        _pos++;
        return t;
    }

    bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op)) return false;
        _pos++;
        return true;
    }

    bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        _pos++;
        return true;
    }

    void EndOfBlock() => Expect(TokenKind.BlockEnd, "'%}'");

    void Enter(Token at)
    {
        if (++_depth > MaxNesting) throw Error(at, $"template nested more than {MaxNesting} levels deep");
    }

    // ---- statements -------------------------------------------------------------------------

    /// <summary>
    /// Statements up to the end of the template or a block tag that is not a statement of its
    /// own (<c>endif</c>, <c>else</c>, …); that tag's name token is returned in <paramref name="stop"/>,
    /// with the position on its <c>{%</c>.
    /// </summary>
    Stmt[] ParseBody(out Token? stop)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.End:
                    stop = null;
                    return [.. body];
                case TokenKind.Text:
                    _pos++;
                    body.Add(new TextStmt(t.Line, t.Column, t.Value));
                    break;
                case TokenKind.VariableBegin:
                {
                    _pos++;
                    if (Current.Kind == TokenKind.VariableEnd) throw Error(Current, "expected an expression, got '}}'");
                    var e = ParseTuple(allowConditional: true);
                    Expect(TokenKind.VariableEnd, "'}}'");
                    body.Add(new OutputStmt(t.Line, t.Column, e));
                    break;
                }
                case TokenKind.BlockBegin:
                {
                    var name = Peek();
                    if (name.Kind != TokenKind.Name) throw Error(name, $"expected a statement name after '{{%', got {name.Describe()}");
                    if (IsClosingTag(name.Value))
                    {
                        stop = name;
                        return [.. body];
                    }
                    _pos += 2;
                    body.Add(ParseStatement(t, name.Value));
                    break;
                }
                default:
                    throw Error(t, $"unexpected {t.Describe()}");
            }
        }
    }

    static bool IsClosingTag(string name) => name is "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro"
        or "endcall" or "endfilter" or "endwith" or "endgeneration" or "endraw";

    /// <summary>A block body that must end with one of <paramref name="ends"/>; returns the end tag found, after its name.</summary>
    Stmt[] ParseBlock(Token opening, string openingName, out string end, params string[] ends)
    {
        Enter(opening);
        var body = ParseBody(out var stop);
        _depth--;
        if (stop is null)
            throw Error(Current, $"unexpected end of template: '{{% {openingName} %}}' at line {opening.Line}, column {opening.Column} is not closed (expected {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))})");
        if (Array.IndexOf(ends, stop.Value.Value) < 0)
            throw Error(stop.Value, $"unexpected '{{% {stop.Value.Value} %}}' inside '{{% {openingName} %}}' at line {opening.Line}, column {opening.Column} (expected {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))})");
        _pos += 2; // {% name
        end = stop.Value.Value;
        return body;
    }

    Stmt ParseStatement(Token open, string name)
    {
        switch (name)
        {
            case "if": return ParseIf(open);
            case "for": return ParseFor(open);
            case "set": return ParseSet(open);
            case "macro": return ParseMacro(open);
            case "call": return ParseCallBlock(open);
            case "filter": return ParseFilterBlock(open);
            case "with": return ParseWith(open);
            case "generation":
            {
                EndOfBlock();
                var body = ParseBlock(open, "generation", out _, "endgeneration");
                EndOfBlock();
                return new GenerationStmt(open.Line, open.Column, body);
            }
            case "break":
            case "continue":
                if (_loopDepth == 0) throw Error(Peek(-1), $"'{{% {name} %}}' outside of a for loop");
                EndOfBlock();
                return name == "break" ? new BreakStmt(open.Line, open.Column) : new ContinueStmt(open.Line, open.Column);
            case "include" or "import" or "from" or "extends" or "block":
                throw Error(Peek(-1), $"'{{% {name} %}}' is not allowed: a chat template can read only what it is given");
            default:
                throw Error(Peek(-1), $"unknown statement '{{% {name} %}}'");
        }
    }

    Stmt ParseIf(Token open)
    {
        var branches = new List<(Expr, Stmt[])>();
        Stmt[] otherwise = [];
        while (true)
        {
            var test = ParseExpression();
            EndOfBlock();
            var body = ParseBlock(open, "if", out var end, "elif", "else", "endif");
            branches.Add((test, body));
            if (end == "elif") continue;
            if (end == "else")
            {
                EndOfBlock();
                otherwise = ParseBlock(open, "if", out _, "endif");
            }
            EndOfBlock();
            return new IfStmt(open.Line, open.Column, [.. branches], otherwise);
        }
    }

    Stmt ParseFor(Token open)
    {
        var target = ParseAssignTarget(allowNamespace: false);
        ExpectName("in");
        var iterable = ParseTuple(allowConditional: false);
        Expr? filter = null;
        if (SkipName("if")) filter = ParseExpression();
        if (Current.IsName("recursive")) throw Error(Current, "recursive loops are not supported");
        EndOfBlock();
        _loopDepth++;
        var body = ParseBlock(open, "for", out var end, "else", "endfor");
        _loopDepth--;
        Stmt[] otherwise = [];
        if (end == "else")
        {
            EndOfBlock();
            otherwise = ParseBlock(open, "for", out _, "endfor");
        }
        EndOfBlock();
        return new ForStmt(open.Line, open.Column, target, iterable, filter, body, otherwise);
    }

    Stmt ParseSet(Token open)
    {
        var target = ParseAssignTarget(allowNamespace: true);
        if (SkipOperator("="))
        {
            var value = ParseTuple(allowConditional: true);
            EndOfBlock();
            return new SetStmt(open.Line, open.Column, target, value);
        }
        if (target is not NameExpr) throw Error(Current, "a block set ('{% set x %}…{% endset %}') assigns to one name");
        var filters = ParseFilterChain(null, requirePipeFirst: true);
        EndOfBlock();
        int loopDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseBlock(open, "set", out _, "endset");
        _loopDepth = loopDepth;
        EndOfBlock();
        return new SetBlockStmt(open.Line, open.Column, target, body, filters);
    }

    Stmt ParseMacro(Token open)
    {
        var name = ExpectName();
        var (parameters, defaults) = ParseSignature();
        EndOfBlock();
        int loopDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseBlock(open, "macro", out _, "endmacro");
        _loopDepth = loopDepth;
        EndOfBlock();
        return MakeMacro(open, name.Value, parameters, defaults, body);
    }

    static MacroStmt MakeMacro(Token open, string name, string[] parameters, Expr?[] defaults, Stmt[] body)
    {
        var names = new HashSet<string>();
        NameCollector.Collect(body, names);
        return new MacroStmt(open.Line, open.Column, name, parameters, defaults, body)
        {
            UsesVarargs = names.Contains("varargs") && !parameters.Contains("varargs"),
            UsesKwargs = names.Contains("kwargs") && !parameters.Contains("kwargs"),
            UsesCaller = names.Contains("caller") && !parameters.Contains("caller"),
        };
    }

    (string[] Names, Expr?[] Defaults) ParseSignature()
    {
        ExpectOperator("(");
        var names = new List<string>();
        var defaults = new List<Expr?>();
        while (!Current.IsOperator(")"))
        {
            if (names.Count > 0) ExpectOperator(",");
            if (Current.IsOperator(")")) break;
            var p = ExpectName();
            if (names.Contains(p.Value)) throw Error(p, $"duplicate parameter '{p.Value}'");
            names.Add(p.Value);
            if (SkipOperator("=")) defaults.Add(ParseExpression());
            else if (defaults.Count > 0 && defaults[^1] is not null) throw Error(p, "a parameter without a default follows one with a default");
            else defaults.Add(null);
        }
        _pos++;
        return ([.. names], [.. defaults]);
    }

    Stmt ParseCallBlock(Token open)
    {
        string[] parameters = [];
        Expr?[] defaults = [];
        if (Current.IsOperator("(")) (parameters, defaults) = ParseSignature();
        var callTok = Current;
        var call = ParseExpression();
        if (call is not CallExpr callExpr) throw Error(callTok, "expected a macro call after '{% call %}'");
        EndOfBlock();
        int loopDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseBlock(open, "call", out _, "endcall");
        _loopDepth = loopDepth;
        EndOfBlock();
        return new CallBlockStmt(open.Line, open.Column, callExpr, MakeMacro(open, "caller", parameters, defaults, body));
    }

    Stmt ParseFilterBlock(Token open)
    {
        var filters = ParseFilterChain(null, requirePipeFirst: false);
        EndOfBlock();
        var body = ParseBlock(open, "filter", out _, "endfilter");
        EndOfBlock();
        return new FilterBlockStmt(open.Line, open.Column, filters, body);
    }

    Stmt ParseWith(Token open)
    {
        var assignments = new List<(Expr, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0) ExpectOperator(",");
            var target = ParseAssignTarget(allowNamespace: false);
            ExpectOperator("=");
            assignments.Add((target, ParseExpression()));
        }
        EndOfBlock();
        var body = ParseBlock(open, "with", out _, "endwith");
        EndOfBlock();
        return new WithStmt(open.Line, open.Column, [.. assignments], body);
    }

    /// <summary>A name, <c>a, b</c>, <c>(a, b)</c>, or (for <c>set</c>) <c>ns.attr</c>.</summary>
    Expr ParseAssignTarget(bool allowNamespace)
    {
        var start = Current;
        if (allowNamespace && Current.Kind == TokenKind.Name && Peek().IsOperator("."))
        {
            var ns = Next();
            _pos++;
            var attr = ExpectName();
            return new AttributeExpr(ns.Line, ns.Column, new NameExpr(ns.Line, ns.Column, ns.Value), attr.Value);
        }
        var items = new List<Expr>();
        bool parenthesized = SkipOperator("(");
        do
        {
            if (parenthesized && Current.IsOperator(")")) break;
            var n = ExpectName();
            if (n.Value is "true" or "false" or "none" or "True" or "False" or "None")
                throw Error(n, $"cannot assign to '{n.Value}'");
            items.Add(new NameExpr(n.Line, n.Column, n.Value));
        } while (SkipOperator(","));
        if (parenthesized) ExpectOperator(")");
        return items.Count == 1 && !parenthesized ? items[0] : new ListExpr(start.Line, start.Column, [.. items], tuple: true);
    }

    // ---- expressions ------------------------------------------------------------------------

    /// <summary>An expression, or a tuple of them without parentheses (<c>{{ a, b }}</c>, <c>set x = 1, 2</c>).</summary>
    Expr ParseTuple(bool allowConditional)
    {
        var start = Current;
        var first = allowConditional ? ParseExpression() : ParseOr();
        if (!Current.IsOperator(",")) return first;
        var items = new List<Expr> { first };
        while (SkipOperator(","))
        {
            if (Current.Kind is TokenKind.BlockEnd or TokenKind.VariableEnd || Current.IsOperator(")")) break;
            items.Add(allowConditional ? ParseExpression() : ParseOr());
        }
        return new ListExpr(start.Line, start.Column, [.. items], tuple: true);
    }

    Expr ParseExpression()
    {
        Enter(Current);
        var e = ParseOr();
        int wraps = 0;
        while (Current.IsName("if"))
        {
            var at = Next();
            wraps++;
            Enter(at);
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseExpression() : null;
            e = new ConditionalExpr(at.Line, at.Column, test, e, otherwise);
        }
        _depth -= wraps + 1;
        return e;
    }

    Expr ParseOr()
    {
        var left = ParseAnd();
        int wraps = 0;
        while (Current.IsName("or"))
        {
            var at = Next();
            wraps++;
            Enter(at);
            left = new BinaryExpr(at.Line, at.Column, BinaryOp.Or, left, ParseAnd());
        }
        _depth -= wraps;
        return left;
    }

    Expr ParseAnd()
    {
        var left = ParseNot();
        int wraps = 0;
        while (Current.IsName("and"))
        {
            var at = Next();
            wraps++;
            Enter(at);
            left = new BinaryExpr(at.Line, at.Column, BinaryOp.And, left, ParseNot());
        }
        _depth -= wraps;
        return left;
    }

    Expr ParseNot()
    {
        if (!Current.IsName("not")) return ParseCompare();
        var at = Next();
        Enter(at);
        var operand = ParseNot();
        _depth--;
        return new UnaryExpr(at.Line, at.Column, UnaryOp.Not, operand);
    }

    Expr ParseCompare()
    {
        var first = ParseMath1();
        List<(CompareOp, Expr, int, int)>? rest = null;
        while (true)
        {
            var t = Current;
            CompareOp op;
            if (t.Kind == TokenKind.Operator && t.Value is "==" or "!=" or "<" or "<=" or ">" or ">=")
            {
                op = t.Value switch
                {
                    "==" => CompareOp.Equal,
                    "!=" => CompareOp.NotEqual,
                    "<" => CompareOp.Less,
                    "<=" => CompareOp.LessOrEqual,
                    ">" => CompareOp.Greater,
                    _ => CompareOp.GreaterOrEqual,
                };
                _pos++;
            }
            else if (t.IsName("in")) { op = CompareOp.In; _pos++; }
            else if (t.IsName("not") && Peek().IsName("in")) { op = CompareOp.NotIn; _pos += 2; }
            else break;
            (rest ??= []).Add((op, ParseMath1(), t.Line, t.Column));
        }
        return rest is null ? first : new CompareExpr(first.Line, first.Column, first, [.. rest]);
    }

    Expr ParseMath1()
    {
        var left = ParseConcat();
        int wraps = 0;
        while (Current.Kind == TokenKind.Operator && Current.Value is "+" or "-")
        {
            var at = Next();
            wraps++;
            Enter(at);
            left = new BinaryExpr(at.Line, at.Column, at.Value == "+" ? BinaryOp.Add : BinaryOp.Subtract, left, ParseConcat());
        }
        _depth -= wraps;
        return left;
    }

    Expr ParseConcat()
    {
        var left = ParseMath2();
        int wraps = 0;
        while (Current.IsOperator("~"))
        {
            var at = Next();
            wraps++;
            Enter(at);
            left = new BinaryExpr(at.Line, at.Column, BinaryOp.Concat, left, ParseMath2());
        }
        _depth -= wraps;
        return left;
    }

    Expr ParseMath2()
    {
        var left = ParsePower();
        int wraps = 0;
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var at = Next();
            wraps++;
            Enter(at);
            var op = at.Value switch { "*" => BinaryOp.Multiply, "/" => BinaryOp.Divide, "//" => BinaryOp.FloorDivide, _ => BinaryOp.Modulo };
            left = new BinaryExpr(at.Line, at.Column, op, left, ParsePower());
        }
        _depth -= wraps;
        return left;
    }

    /// <summary><c>**</c> is left-associative in Jinja (<c>2 ** 3 ** 2 == 64</c>), unlike Python.</summary>
    Expr ParsePower()
    {
        var left = ParseUnary(withFilter: true);
        int wraps = 0;
        while (Current.IsOperator("**"))
        {
            var at = Next();
            wraps++;
            Enter(at);
            left = new BinaryExpr(at.Line, at.Column, BinaryOp.Power, left, ParseUnary(withFilter: true));
        }
        _depth -= wraps;
        return left;
    }

    /// <summary>Unary minus binds tighter than filters: <c>-x|abs</c> is <c>abs(-x)</c>, as in Jinja.</summary>
    Expr ParseUnary(bool withFilter)
    {
        var t = Current;
        Expr node;
        if (t.Kind == TokenKind.Operator && t.Value is "-" or "+")
        {
            _pos++;
            Enter(t);
            node = new UnaryExpr(t.Line, t.Column, t.Value == "-" ? UnaryOp.Negate : UnaryOp.Plus, ParseUnary(withFilter: false));
            _depth--;
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterAndTests(node);
        return node;
    }

    Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new Literal(t.Line, t.Column, Value.True),
                    "false" or "False" => new Literal(t.Line, t.Column, Value.False),
                    "none" or "None" => new Literal(t.Line, t.Column, Value.None),
                    _ => new NameExpr(t.Line, t.Column, t.Value),
                };
            case TokenKind.String:
            {
                var s = t.Value;
                while (Current.Kind == TokenKind.String) s += Next().Value; // 'a' 'b' is 'ab'
                return new Literal(t.Line, t.Column, Value.FromString(s));
            }
            case TokenKind.Integer:
                return new Literal(t.Line, t.Column, Value.FromInt(long.Parse(t.Value, CultureInfo.InvariantCulture)));
            case TokenKind.Float:
                return new Literal(t.Line, t.Column, Value.FromFloat(double.Parse(t.Value, CultureInfo.InvariantCulture)));
            case TokenKind.Operator when t.Value == "(":
            {
                Enter(t);
                if (SkipOperator(")")) { _depth--; return new ListExpr(t.Line, t.Column, [], tuple: true); }
                var first = ParseExpression();
                Expr result = first;
                if (Current.IsOperator(","))
                {
                    var items = new List<Expr> { first };
                    while (SkipOperator(","))
                    {
                        if (Current.IsOperator(")")) break;
                        items.Add(ParseExpression());
                    }
                    result = new ListExpr(t.Line, t.Column, [.. items], tuple: true);
                }
                ExpectOperator(")");
                _depth--;
                return result;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                Enter(t);
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0) ExpectOperator(",");
                    if (Current.IsOperator("]")) break;
                    items.Add(ParseExpression());
                }
                _pos++;
                _depth--;
                return new ListExpr(t.Line, t.Column, [.. items], tuple: false);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                Enter(t);
                var pairs = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (pairs.Count > 0) ExpectOperator(",");
                    if (Current.IsOperator("}")) break;
                    var key = ParseExpression();
                    ExpectOperator(":");
                    pairs.Add((key, ParseExpression()));
                }
                _pos++;
                _depth--;
                return new DictExpr(t.Line, t.Column, [.. pairs]);
            }
            default:
                throw Error(t, $"unexpected {t.Describe()}");
        }
    }

    Expr ParsePostfix(Expr node)
    {
        int depth = _depth;
        while (true)
        {
            var t = Current;
            if (t.IsOperator(".") || t.IsOperator("[") || t.IsOperator("(")) Enter(t);
            if (t.IsOperator("."))
            {
                _pos++;
                var n = Next();
                if (n.Kind == TokenKind.Name) node = new AttributeExpr(n.Line, n.Column, node, n.Value);
                else if (n.Kind == TokenKind.Integer)
                    node = new ItemExpr(n.Line, n.Column, node, new Literal(n.Line, n.Column, Value.FromInt(long.Parse(n.Value, CultureInfo.InvariantCulture))));
                else throw Error(n, $"expected a name after '.', got {n.Describe()}");
            }
            else if (t.IsOperator("["))
            {
                _pos++;
                Enter(t);
                node = ParseSubscript(t, node);
                _depth--;
            }
            else if (t.IsOperator("("))
                node = new CallExpr(node.Line, node.Column, node, ParseCallArguments());
            else
            {
                _depth = depth;
                return node;
            }
        }
    }

    Expr ParseSubscript(Token open, Expr target)
    {
        var parts = new List<Expr>();
        while (true)
        {
            parts.Add(ParseSubscribed(open, target));
            if (!SkipOperator(",") || Current.IsOperator("]")) break;
        }
        ExpectOperator("]");
        if (parts.Count == 1) return parts[0] is SliceExpr ? parts[0] : new ItemExpr(open.Line, open.Column, target, parts[0]);
        if (parts.Any(p => p is SliceExpr)) throw Error(open, "a slice cannot be part of a tuple key");
        return new ItemExpr(open.Line, open.Column, target, new ListExpr(open.Line, open.Column, [.. parts], tuple: true));
    }

    /// <summary>One subscript: an expression, or a slice <c>start:stop:step</c> (returned as a <see cref="SliceExpr"/> of <paramref name="target"/>).</summary>
    Expr ParseSubscribed(Token open, Expr target)
    {
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression();
            if (!Current.IsOperator(":")) return start;
        }
        _pos++; // ':'
        Expr? stop = null, step = null;
        if (!Current.IsOperator("]") && !Current.IsOperator(",") && !Current.IsOperator(":")) stop = ParseExpression();
        if (SkipOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) step = ParseExpression();
        return new SliceExpr(open.Line, open.Column, target, start, stop, step);
    }

    Arguments ParseCallArguments()
    {
        var open = Current;
        ExpectOperator("(");
        Enter(open);
        var positional = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        Expr? star = null, doubleStar = null;
        bool first = true;
        while (!Current.IsOperator(")"))
        {
            if (!first) ExpectOperator(",");
            first = false;
            if (Current.IsOperator(")")) break;
            var t = Current;
            if (SkipOperator("**"))
            {
                if (doubleStar is not null) throw Error(t, "only one '**' argument is allowed");
                doubleStar = ParseExpression();
            }
            else if (SkipOperator("*"))
            {
                if (star is not null) throw Error(t, "only one '*' argument is allowed");
                if (doubleStar is not null) throw Error(t, "'*' argument after '**' argument");
                star = ParseExpression();
            }
            else if (t.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                _pos += 2;
                if (doubleStar is not null) throw Error(t, "keyword argument after '**' argument");
                if (keywords.Any(k => k.Item1 == t.Value)) throw Error(t, $"keyword argument '{t.Value}' repeated");
                keywords.Add((t.Value, ParseExpression()));
            }
            else
            {
                if (keywords.Count > 0 || star is not null || doubleStar is not null)
                    throw Error(t, "positional argument follows keyword or unpacked arguments");
                positional.Add(ParseExpression());
            }
        }
        _pos++;
        _depth--;
        return positional.Count == 0 && keywords.Count == 0 && star is null && doubleStar is null
            ? Arguments.None
            : new Arguments([.. positional], [.. keywords], star, doubleStar);
    }

    /// <summary><c>| filter(args)</c> and <c>is [not] test args</c>, in any order, left to right.</summary>
    Expr ParseFilterAndTests(Expr node)
    {
        int depth = _depth;
        while (true)
        {
            if (Current.IsOperator("|") || Current.IsName("is") || Current.IsOperator("(")) Enter(Current);
            if (Current.IsOperator("|"))
                node = ParseFilterChain(node, requirePipeFirst: true, single: true)[0];
            else if (Current.IsName("is"))
            {
                var at = Next();
                bool negated = SkipName("not");
                var name = ParseDottedName();
                Arguments args = Arguments.None;
                var t = Current;
                if (t.IsOperator("(")) args = ParseCallArguments();
                else if ((t.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                          || t.IsOperator("[") || t.IsOperator("{") || t.IsOperator("("))
                         && !(t.Kind == TokenKind.Name && t.Value is "else" or "or" or "and" or "if" or "in" or "is" or "not"))
                {
                    // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses
                    args = new Arguments([ParsePostfix(ParsePrimary())], [], null, null);
                }
                if (!Filters.IsTest(name.Value)) throw Error(name, $"no test named '{name.Value}'");
                node = new TestExpr(at.Line, at.Column, node, name.Value, args, negated);
            }
            else if (Current.IsOperator("("))
                node = new CallExpr(node.Line, node.Column, node, ParseCallArguments());
            else
            {
                _depth = depth;
                return node;
            }
        }
    }

    Token ParseDottedName()
    {
        var name = ExpectName();
        if (!Current.IsOperator(".")) return name;
        var full = name.Value;
        while (SkipOperator(".")) full += "." + ExpectName().Value;
        return name with { Value = full };
    }

    /// <summary><c>name(args) | name | …</c> for filter blocks and set blocks; each applies to the previous.</summary>
    FilterExpr[] ParseFilterChain(Expr? operand, bool requirePipeFirst, bool single = false)
    {
        var chain = new List<FilterExpr>();
        bool needPipe = requirePipeFirst;
        while (true)
        {
            if (needPipe && !SkipOperator("|")) break;
            needPipe = true;
            var name = ParseDottedName();
            if (!Filters.IsFilter(name.Value)) throw Error(name, $"no filter named '{name.Value}'");
            var args = Current.IsOperator("(") ? ParseCallArguments() : Arguments.None;
            var f = new FilterExpr(name.Line, name.Column, operand, name.Value, args);
            chain.Add(f);
            if (single) break;
            operand = null;
        }
        return [.. chain];
    }
}

/// <summary>The names a block of statements reads (to find out whether a macro uses <c>varargs</c>, <c>kwargs</c>, <c>caller</c>).</summary>
static class NameCollector
{
    public static void Collect(IEnumerable<Stmt> body, HashSet<string> names)
    {
        foreach (var s in body) Collect(s, names);
    }

    static void Collect(Stmt s, HashSet<string> names)
    {
        switch (s)
        {
            case OutputStmt o: Collect(o.Expr, names); break;
            case IfStmt i: foreach (var (t, b) in i.Branches) { Collect(t, names); Collect(b, names); } Collect(i.Otherwise, names); break;
            case ForStmt f: Collect(f.Iterable, names); Collect(f.Filter, names); Collect(f.Body, names); Collect(f.Otherwise, names); break;
            case SetStmt st: Collect(st.Value, names); break;
            case SetBlockStmt sb: Collect(sb.Body, names); foreach (var f in sb.Filters) Collect(f, names); break;
            case MacroStmt m: foreach (var d in m.Defaults) Collect(d, names); break;
            case CallBlockStmt c: Collect(c.Call, names); break;
            case FilterBlockStmt fb: foreach (var f in fb.Filters) Collect(f, names); Collect(fb.Body, names); break;
            case WithStmt w: foreach (var (_, v) in w.Assignments) Collect(v, names); Collect(w.Body, names); break;
            case GenerationStmt g: Collect(g.Body, names); break;
        }
    }

    static void Collect(Expr? e, HashSet<string> names)
    {
        switch (e)
        {
            case null: break;
            case NameExpr n: names.Add(n.Name); break;
            case ListExpr l: foreach (var x in l.Items) Collect(x, names); break;
            case DictExpr d: foreach (var (k, v) in d.Pairs) { Collect(k, names); Collect(v, names); } break;
            case UnaryExpr u: Collect(u.Operand, names); break;
            case BinaryExpr b: Collect(b.Left, names); Collect(b.Right, names); break;
            case CompareExpr c: Collect(c.First, names); foreach (var r in c.Rest) Collect(r.Operand, names); break;
            case ConditionalExpr c: Collect(c.Test, names); Collect(c.Then, names); Collect(c.Otherwise, names); break;
            case AttributeExpr a: Collect(a.Target, names); break;
            case ItemExpr i: Collect(i.Target, names); Collect(i.Key, names); break;
            case SliceExpr s: Collect(s.Target, names); Collect(s.Start, names); Collect(s.Stop, names); Collect(s.Step, names); break;
            case CallExpr c: Collect(c.Callee, names); Collect(c.Args, names); break;
            case FilterExpr f: Collect(f.Operand, names); Collect(f.Args, names); break;
            case TestExpr t: Collect(t.Operand, names); Collect(t.Args, names); break;
        }
    }

    static void Collect(Arguments a, HashSet<string> names)
    {
        foreach (var p in a.Positional) Collect(p, names);
        foreach (var (_, v) in a.Keywords) Collect(v, names);
        Collect(a.Star, names);
        Collect(a.DoubleStar, names);
    }
}
