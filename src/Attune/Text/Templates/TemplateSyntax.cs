namespace Attune.Text.Templates;

// The syntax tree of a template. Every node keeps the line and column of the token it starts at,
// so that an error while rendering points at the template source.

abstract class Node(int line, int column)
{
    public int Line { get; } = line;
    public int Column { get; } = column;
}

// ---- expressions ----------------------------------------------------------------------------

abstract class Expr(int line, int column) : Node(line, column);

sealed class Literal(int line, int column, Value value) : Expr(line, column)
{
    public Value Value { get; } = value;
}

sealed class NameExpr(int line, int column, string name) : Expr(line, column)
{
    public string Name { get; } = name;
}

sealed class ListExpr(int line, int column, Expr[] items, bool tuple) : Expr(line, column)
{
    public Expr[] Items { get; } = items;
    public bool IsTuple { get; } = tuple;
}

sealed class DictExpr(int line, int column, (Expr Key, Expr Value)[] pairs) : Expr(line, column)
{
    public (Expr Key, Expr Value)[] Pairs { get; } = pairs;
}

enum UnaryOp { Not, Negate, Plus }

sealed class UnaryExpr(int line, int column, UnaryOp op, Expr operand) : Expr(line, column)
{
    public UnaryOp Op { get; } = op;
    public Expr Operand { get; } = operand;
}

enum BinaryOp { And, Or, Add, Subtract, Multiply, Divide, FloorDivide, Modulo, Power, Concat }

sealed class BinaryExpr(int line, int column, BinaryOp op, Expr left, Expr right) : Expr(line, column)
{
    public BinaryOp Op { get; } = op;
    public Expr Left { get; } = left;
    public Expr Right { get; } = right;
}

enum CompareOp { Equal, NotEqual, Less, LessOrEqual, Greater, GreaterOrEqual, In, NotIn }

/// <summary><c>a &lt; b &lt;= c</c>: Python's chained comparison, each operand evaluated once.</summary>
sealed class CompareExpr(int line, int column, Expr first, (CompareOp Op, Expr Operand, int Line, int Column)[] rest) : Expr(line, column)
{
    public Expr First { get; } = first;
    public (CompareOp Op, Expr Operand, int Line, int Column)[] Rest { get; } = rest;
}

/// <summary><c>a if test else b</c>; without <c>else</c> the value is undefined when the test fails.</summary>
sealed class ConditionalExpr(int line, int column, Expr test, Expr then, Expr? otherwise) : Expr(line, column)
{
    public Expr Test { get; } = test;
    public Expr Then { get; } = then;
    public Expr? Otherwise { get; } = otherwise;
}

/// <summary><c>obj.name</c>: Python attribute (a method) first, then item.</summary>
sealed class AttributeExpr(int line, int column, Expr target, string name) : Expr(line, column)
{
    public Expr Target { get; } = target;
    public string Name { get; } = name;
}

/// <summary><c>obj[key]</c> (and <c>obj.0</c>): item first, then attribute.</summary>
sealed class ItemExpr(int line, int column, Expr target, Expr key) : Expr(line, column)
{
    public Expr Target { get; } = target;
    public Expr Key { get; } = key;
}

sealed class SliceExpr(int line, int column, Expr target, Expr? start, Expr? stop, Expr? step) : Expr(line, column)
{
    public Expr Target { get; } = target;
    public Expr? Start { get; } = start;
    public Expr? Stop { get; } = stop;
    public Expr? Step { get; } = step;
}

/// <summary>Arguments as written at a call site: positional, keyword, <c>*args</c>, <c>**kwargs</c>.</summary>
sealed class Arguments(Expr[] positional, (string Name, Expr Value)[] keywords, Expr? star, Expr? doubleStar)
{
    public static readonly Arguments None = new([], [], null, null);

    public Expr[] Positional { get; } = positional;
    public (string Name, Expr Value)[] Keywords { get; } = keywords;
    public Expr? Star { get; } = star;
    public Expr? DoubleStar { get; } = doubleStar;
}

sealed class CallExpr(int line, int column, Expr callee, Arguments args) : Expr(line, column)
{
    public Expr Callee { get; } = callee;
    public Arguments Args { get; } = args;
}

/// <summary><c>value | name(args)</c>. In a filter block the operand is the rendered body.</summary>
sealed class FilterExpr(int line, int column, Expr? operand, string name, Arguments args) : Expr(line, column)
{
    public Expr? Operand { get; } = operand;
    public string Name { get; } = name;
    public Arguments Args { get; } = args;
}

/// <summary><c>value is [not] name(args)</c>.</summary>
sealed class TestExpr(int line, int column, Expr operand, string name, Arguments args, bool negated) : Expr(line, column)
{
    public Expr Operand { get; } = operand;
    public string Name { get; } = name;
    public Arguments Args { get; } = args;
    public bool Negated { get; } = negated;
}

// ---- statements -----------------------------------------------------------------------------

abstract class Stmt(int line, int column) : Node(line, column);

sealed class TextStmt(int line, int column, string text) : Stmt(line, column)
{
    public string Text { get; } = text;
}

/// <summary><c>{{ expr }}</c></summary>
sealed class OutputStmt(int line, int column, Expr expr) : Stmt(line, column)
{
    public Expr Expr { get; } = expr;
}

/// <summary><c>{% if %}…{% elif %}…{% else %}…{% endif %}</c>: the first branch whose test is true, else the last block.</summary>
sealed class IfStmt(int line, int column, (Expr Test, Stmt[] Body)[] branches, Stmt[] otherwise) : Stmt(line, column)
{
    public (Expr Test, Stmt[] Body)[] Branches { get; } = branches;
    public Stmt[] Otherwise { get; } = otherwise;
}

sealed class ForStmt(int line, int column, Expr target, Expr iterable, Expr? filter, Stmt[] body, Stmt[] otherwise) : Stmt(line, column)
{
    /// <summary>A <see cref="NameExpr"/> or a tuple of them.</summary>
    public Expr Target { get; } = target;
    public Expr Iterable { get; } = iterable;
    /// <summary><c>for x in xs if cond</c>: skipped items do not count in <c>loop.*</c>.</summary>
    public Expr? Filter { get; } = filter;
    public Stmt[] Body { get; } = body;
    public Stmt[] Otherwise { get; } = otherwise;
}

/// <summary><c>{% set target = value %}</c>; the target is a name, a tuple of names, or <c>namespace.attr</c>.</summary>
sealed class SetStmt(int line, int column, Expr target, Expr value) : Stmt(line, column)
{
    public Expr Target { get; } = target;
    public Expr Value { get; } = value;
}

/// <summary><c>{% set name | filters %}body{% endset %}</c></summary>
sealed class SetBlockStmt(int line, int column, Expr target, Stmt[] body, FilterExpr[] filters) : Stmt(line, column)
{
    public Expr Target { get; } = target;
    public Stmt[] Body { get; } = body;
    public FilterExpr[] Filters { get; } = filters;
}

sealed class MacroStmt(int line, int column, string name, string[] parameters, Expr?[] defaults, Stmt[] body) : Stmt(line, column)
{
    public string Name { get; } = name;
    public string[] Parameters { get; } = parameters;
    public Expr?[] Defaults { get; } = defaults;
    public Stmt[] Body { get; } = body;
    /// <summary>Whether the body reads <c>varargs</c> / <c>kwargs</c> / <c>caller</c> (Jinja accepts extra arguments only then).</summary>
    public bool UsesVarargs { get; init; }
    public bool UsesKwargs { get; init; }
    public bool UsesCaller { get; init; }
}

/// <summary><c>{% call(params) macro(args) %}body{% endcall %}</c>: the body is passed as <c>caller</c>.</summary>
sealed class CallBlockStmt(int line, int column, CallExpr call, MacroStmt caller) : Stmt(line, column)
{
    public CallExpr Call { get; } = call;
    public MacroStmt Caller { get; } = caller;
}

/// <summary><c>{% filter name(args) | … %}body{% endfilter %}</c></summary>
sealed class FilterBlockStmt(int line, int column, FilterExpr[] filters, Stmt[] body) : Stmt(line, column)
{
    public FilterExpr[] Filters { get; } = filters;
    public Stmt[] Body { get; } = body;
}

sealed class WithStmt(int line, int column, (Expr Target, Expr Value)[] assignments, Stmt[] body) : Stmt(line, column)
{
    public (Expr Target, Expr Value)[] Assignments { get; } = assignments;
    public Stmt[] Body { get; } = body;
}

sealed class BreakStmt(int line, int column) : Stmt(line, column);

sealed class ContinueStmt(int line, int column) : Stmt(line, column);

/// <summary>
/// transformers' <c>{% generation %}…{% endgeneration %}</c>: renders its body and records where in
/// the output that text lies, so that training can compute the loss on assistant text only.
/// </summary>
sealed class GenerationStmt(int line, int column, Stmt[] body) : Stmt(line, column)
{
    public Stmt[] Body { get; } = body;
}
