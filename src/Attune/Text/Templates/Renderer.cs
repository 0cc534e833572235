using System.Diagnostics;
using System.Text;

namespace Attune.Text.Templates;

/// <summary>Variables visible at one point: a block's own, then its parent's, up to the template's context.</summary>
sealed class Scope(Scope? parent, IReadOnlyDictionary<string, Value>? context = null)
{
    readonly Dictionary<string, Value> _vars = [];
    /// <summary>The caller's variables, held by the template's root scope only; the template's own <c>set</c>s shadow them.</summary>
    readonly IReadOnlyDictionary<string, Value>? _context = context;

    public Scope? Parent { get; } = parent;

    public bool TryLookup(string name, out Value value)
    {
        for (var s = this; s is not null; s = s.Parent)
        {
            if (s._vars.TryGetValue(name, out value)) return true;
            if (s._context is not null && s._context.TryGetValue(name, out value)) return true;
        }
        value = Value.Undefined;
        return false;
    }

    public void Set(string name, Value value) => _vars[name] = value;
}

/// <summary>A macro (or the body of a call block, passed to the macro as <c>caller</c>) with the scope it was defined in.</summary>
sealed class Macro(MacroStmt definition, Scope closure) : TemplateCallable
{
    public MacroStmt Definition { get; } = definition;
    public Scope Closure { get; } = closure;
    public override string Name => Definition.Name;

    public override Value Invoke(Renderer renderer, CallArguments args) => renderer.CallMacro(this, args);
}

/// <summary>A method looked up on a value (<c>text.strip</c>) but not called at once.</summary>
sealed class BoundMethod(Value self, string name) : TemplateCallable
{
    public override string Name => $"{self.TypeName}.{name}";

    public override Value Invoke(Renderer renderer, CallArguments args) => Methods.Call(renderer, self, name, args);
}

/// <summary>The <c>loop</c> variable of a <c>for</c> block.</summary>
sealed class LoopContext(List<Value> items) : TemplateObject
{
    public int Index0;
    Value _lastChanged = Value.UndefinedBecause("changed() not called yet");
    bool _changedCalled;

    public override string TypeName => "LoopContext";

    public override bool TryGetAttribute(string name, out Value value)
    {
        int n = items.Count;
        value = name switch
        {
            "index" => Index0 + 1,
            "index0" => Index0,
            "revindex" => n - Index0,
            "revindex0" => n - Index0 - 1,
            "first" => Index0 == 0,
            "last" => Index0 == n - 1,
            "length" => n,
            "depth" => 1,
            "depth0" => 0,
            "previtem" => Index0 > 0 ? items[Index0 - 1] : Value.UndefinedBecause("there is no previous item"),
            "nextitem" => Index0 < n - 1 ? items[Index0 + 1] : Value.UndefinedBecause("there is no next item"),
            "cycle" => Value.FromCallable(new BuiltinFunction("loop.cycle", (_, args) =>
            {
                if (args.Count == 0) throw new TemplateRuntimeError("no items for cycling given");
                return args.Positional[Index0 % args.Count];
            })),
            "changed" => Value.FromCallable(new BuiltinFunction("loop.changed", (_, args) =>
            {
                var now = Value.FromTuple(args.Positional);
                bool changed = !_changedCalled || !Operators.PyEquals(now, _lastChanged);
                _changedCalled = true;
                _lastChanged = now;
                return changed;
            })),
            _ => Value.Undefined,
        };
        return !value.IsUndefined || name is "previtem" or "nextitem";
    }

    public override string Repr() => $"<LoopContext {Index0 + 1}/{items.Count}>";
}

/// <summary>
/// Renders a parsed template: walks the statements, evaluates expressions over <see cref="Value"/>s,
/// and enforces the sandbox. Names resolve only to the context the caller gave, the template's
/// own variables and a fixed set of globals; values expose only whitelisted methods; every loop
/// iteration, macro call and output character counts against <see cref="TemplateLimits"/>.
/// One renderer renders one template once.
/// </summary>
sealed class Renderer
{
    enum Flow { Normal, Break, Continue }

    readonly string? _sourceName;
    readonly StringBuilder _root = new();
    readonly long _deadline;
    readonly List<GenerationSpan> _spans = [];
    readonly TimeProvider _clock;
    StringBuilder _out;
    long _buffered;     // characters in all output buffers (the root and open captures)
    long _iterations;
    int _callDepth;

    public TemplateLimits Limits { get; }
    public int MaxLength => Limits.MaxOutputLength;

    public Renderer(string? sourceName, TemplateLimits limits, TimeProvider clock)
    {
        _sourceName = sourceName;
        Limits = limits;
        _clock = clock;
        _out = _root;
        _deadline = Stopwatch.GetTimestamp() + (long)(limits.Timeout.TotalSeconds * Stopwatch.Frequency);
    }

    public (string Text, List<GenerationSpan> Spans) Render(Stmt[] program, IReadOnlyDictionary<string, Value> context)
    {
        var scope = new Scope(null, context);
        Exec(program, scope);
        return (_root.ToString(), _spans);
    }

    // ---- errors ---------------------------------------------------------------------------------

    TemplateException At(Node node, string problem, bool raised = false, Exception? inner = null) =>
        new(_sourceName, node.Line, node.Column, problem, raised, inner);

    TemplateException At(Node node, TemplateRuntimeError e) => At(node, e.Message, e.RaisedByTemplate, e);

    // ---- sandbox accounting -------------------------------------------------------------------

    void Write(string s)
    {
        if (s.Length == 0) return;
        if (_out.Length + (long)s.Length > Limits.MaxOutputLength || _buffered + s.Length > Limits.MaxOutputLength)
            throw new TemplateRuntimeError($"output longer than {Limits.MaxOutputLength:N0} characters (TemplateLimits.MaxOutputLength)");
        _out.Append(s);
        _buffered += s.Length;
    }

    /// <summary>Renders <paramref name="body"/> into a string instead of the output (macros, set blocks, filter blocks).</summary>
    string Capture(Stmt[] body, Scope scope)
    {
        var saved = _out;
        _out = new StringBuilder();
        try
        {
            Exec(body, scope);
            return _out.ToString();
        }
        finally
        {
            _buffered -= _out.Length;
            _out = saved;
        }
    }

    /// <summary>Counts one loop iteration (or one item of a large internal walk) and checks the clock now and then.</summary>
    public void CountIterations(long n = 1)
    {
        _iterations += n;
        if (_iterations > Limits.MaxLoopIterations)
            throw new TemplateRuntimeError($"more than {Limits.MaxLoopIterations:N0} loop iterations (TemplateLimits.MaxLoopIterations)");
        if ((_iterations & 1023) == 0 || n > 1) CheckClock();
    }

    void CheckClock()
    {
        if (Stopwatch.GetTimestamp() > _deadline)
            throw new TemplateRuntimeError($"rendering took longer than {Limits.Timeout.TotalSeconds:0.###} s (TemplateLimits.Timeout)");
    }

    public DateTimeOffset Now() => _clock.GetLocalNow();

    /// <summary>The limits above bound nesting; this is the backstop that turns a would-be stack overflow into an error.</summary>
    static void EnsureStack()
    {
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateRuntimeError("template nested too deeply");
    }

    // ---- statements ---------------------------------------------------------------------------

    Flow Exec(Stmt[] body, Scope scope)
    {
        foreach (var stmt in body)
        {
            var flow = Exec(stmt, scope);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow Exec(Stmt stmt, Scope scope)
    {
        try
        {
            EnsureStack();
            switch (stmt)
            {
                case TextStmt t:
                    Write(t.Text);
                    return Flow.Normal;
                case OutputStmt o:
                {
                    var value = Eval(o.Expr, scope);
                    if (value.IsUndefined && Limits.StrictUndefined) throw At(o.Expr, value.UndefinedHint ?? "an undefined value");
                    Write(PyText.Str(value));
                    return Flow.Normal;
                }
                case IfStmt i:
                    foreach (var (test, then) in i.Branches)
                        if (Eval(test, scope).IsTruthy) return Exec(then, scope);
                    return Exec(i.Otherwise, scope);
                case ForStmt f:
                    ExecFor(f, scope);
                    return Flow.Normal;
                case SetStmt s:
                    Assign(s.Target, Eval(s.Value, scope), scope);
                    return Flow.Normal;
                case SetBlockStmt sb:
                {
                    Value v = Capture(sb.Body, new Scope(scope));
                    foreach (var f in sb.Filters) v = ApplyFilter(f, v, scope);
                    Assign(sb.Target, v, scope);
                    return Flow.Normal;
                }
                case MacroStmt m:
                    scope.Set(m.Name, Value.FromCallable(new Macro(m, scope)));
                    return Flow.Normal;
                case CallBlockStmt c:
                    Write(PyText.Str(EvalCall(c.Call, scope, new Macro(c.Caller, scope))));
                    return Flow.Normal;
                case FilterBlockStmt fb:
                {
                    Value v = Capture(fb.Body, scope);
                    foreach (var f in fb.Filters) v = ApplyFilter(f, v, scope);
                    Write(PyText.Str(v));
                    return Flow.Normal;
                }
                case WithStmt w:
                {
                    var inner = new Scope(scope);
                    foreach (var (target, value) in w.Assignments) Assign(target, Eval(value, scope), inner);
                    return Exec(w.Body, inner);
                }
                case BreakStmt:
                    return Flow.Break;
                case ContinueStmt:
                    return Flow.Continue;
                case GenerationStmt g:
                {
                    // Spans are offsets in the final text, so they are recorded only for text that goes straight there.
                    bool top = ReferenceEquals(_out, _root);
                    int start = _root.Length;
                    var flow = Exec(g.Body, scope);
                    if (top) _spans.Add(new GenerationSpan(start, _root.Length));
                    return flow;
                }
                default:
                    throw new InvalidOperationException($"unknown statement {stmt.GetType().Name}");
            }
        }
        catch (TemplateRuntimeError e)
        {
            throw At(stmt, e);
        }
    }

    void ExecFor(ForStmt f, Scope scope)
    {
        var iterable = Eval(f.Iterable, scope);
        List<Value> items;
        try { items = Operators.Iterate(iterable); }
        catch (TemplateRuntimeError e) { throw At(f.Iterable, e); }
        var loopScope = new Scope(scope);
        if (f.Filter is not null)
        {
            var kept = new List<Value>();
            foreach (var item in items)
            {
                CountIterations();
                Assign(f.Target, item, loopScope);
                if (Eval(f.Filter, loopScope).IsTruthy) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            Exec(f.Otherwise, scope);
            return;
        }
        var loop = new LoopContext(items);
        loopScope.Set("loop", Value.FromObject(loop));
        for (int i = 0; i < items.Count; i++)
        {
            CountIterations();
            loop.Index0 = i;
            Assign(f.Target, items[i], loopScope);
            if (Exec(f.Body, loopScope) == Flow.Break) break;
        }
    }

    void Assign(Expr target, Value value, Scope scope)
    {
        switch (target)
        {
            case NameExpr n:
                scope.Set(n.Name, value);
                break;
            case ListExpr { IsTuple: true } tuple:
            {
                if (value.Kind is not (ValueKind.List or ValueKind.Tuple or ValueKind.String or ValueKind.Dict))
                    throw At(target, $"cannot unpack non-iterable {value.TypeName} object");
                var items = Operators.Iterate(value);
                if (items.Count != tuple.Items.Length)
                    throw At(target, items.Count > tuple.Items.Length
                        ? $"too many values to unpack (expected {tuple.Items.Length})"
                        : $"not enough values to unpack (expected {tuple.Items.Length}, got {items.Count})");
                for (int i = 0; i < items.Count; i++) Assign(tuple.Items[i], items[i], scope);
                break;
            }
            case AttributeExpr { Target: NameExpr ns } attr:
            {
                scope.TryLookup(ns.Name, out var obj);
                if (obj.Kind != ValueKind.Object || obj.AsObject is not Namespace space)
                    throw At(target, $"cannot assign attribute on non-namespace object ('{ns.Name}' is {(obj.IsUndefined ? "undefined" : obj.TypeName)})");
                space.SetAttribute(attr.Name, value);
                break;
            }
            default:
                throw At(target, "cannot assign to this expression");
        }
    }

    // ---- macros -------------------------------------------------------------------------------

    /// <summary>Calls a macro the way Jinja does: positional, then by name, then defaults; extra arguments only if the body reads <c>varargs</c>/<c>kwargs</c>.</summary>
    public Value CallMacro(Macro macro, CallArguments args)
    {
        var m = macro.Definition;
        if (++_callDepth > Limits.MaxRecursionDepth)
        {
            _callDepth--;
            throw new TemplateRuntimeError($"macro calls nested more than {Limits.MaxRecursionDepth} deep (TemplateLimits.MaxRecursionDepth)");
        }
        try
        {
            CheckClock();
            var scope = new Scope(macro.Closure);
            var keywords = args.Keywords is null ? null : new List<KeyValuePair<string, Value>>(args.Keywords);
            Value Take(string name)
            {
                if (keywords is null) return Value.Undefined;
                int i = keywords.FindIndex(k => k.Key == name);
                if (i < 0) return Value.Undefined;
                var v = keywords[i].Value;
                keywords.RemoveAt(i);
                return v;
            }
            var pending = new List<int>();
            for (int i = 0; i < m.Parameters.Length; i++)
            {
                var name = m.Parameters[i];
                if (i < args.Count)
                {
                    scope.Set(name, args.Positional[i]);
                    if (keywords?.Any(k => k.Key == name) == true)
                        throw new TemplateRuntimeError($"macro '{m.Name}' got multiple values for argument '{name}'");
                    continue;
                }
                bool given = keywords?.Any(k => k.Key == name) == true;
                if (given) scope.Set(name, Take(name));
                else if (m.Defaults[i] is not null) { scope.Set(name, Value.Undefined); pending.Add(i); }
                else scope.Set(name, Value.UndefinedBecause($"parameter '{name}' was not provided"));
            }
            var caller = Take("caller");
            if (m.UsesCaller) scope.Set("caller", caller.IsUndefined ? Value.UndefinedBecause("No caller defined") : caller);
            if (m.UsesKwargs)
            {
                var kw = new Dict();
                foreach (var (k, v) in keywords ?? []) kw[k] = v;
                scope.Set("kwargs", Value.FromDict(kw));
            }
            else if (keywords is { Count: > 0 })
                throw new TemplateRuntimeError($"macro '{m.Name}' takes no keyword argument '{keywords[0].Key}'");
            if (m.UsesVarargs)
                scope.Set("varargs", Value.FromTuple(args.Positional.Skip(m.Parameters.Length).ToList()));
            else if (args.Count > m.Parameters.Length)
                throw new TemplateRuntimeError($"macro '{m.Name}' takes not more than {m.Parameters.Length} argument(s)");
            foreach (int i in pending) scope.Set(m.Parameters[i], Eval(m.Defaults[i]!, scope));
            return Capture(m.Body, scope);
        }
        finally
        {
            _callDepth--;
        }
    }

    // ---- expressions --------------------------------------------------------------------------

    public Value Eval(Expr expr, Scope scope)
    {
        try
        {
            EnsureStack();
            switch (expr)
            {
                case Literal l:
                    return l.Value;
                case NameExpr n:
                    if (scope.TryLookup(n.Name, out var v)) return v;
                    if (Globals.TryGet(n.Name, out v)) return v;
                    return Value.UndefinedBecause($"'{n.Name}' is undefined");
                case AttributeExpr a:
                    return Methods.GetAttribute(Eval(a.Target, scope), a.Name);
                case ItemExpr i:
                    return Methods.GetItem(Eval(i.Target, scope), Eval(i.Key, scope));
                case SliceExpr s:
                    return EvalSlice(s, scope);
                case CallExpr c:
                    return EvalCall(c, scope, null);
                case FilterExpr f:
                    return ApplyFilter(f, Eval(f.Operand!, scope), scope);
                case TestExpr t:
                    return Filters.Test(this, t.Name, Eval(t.Operand, scope), EvalArguments(t.Args, scope)) != t.Negated;
                case BinaryExpr b:
                    return EvalBinary(b, scope);
                case CompareExpr c:
                    return EvalCompare(c, scope);
                case UnaryExpr u:
                {
                    var operand = Eval(u.Operand, scope);
                    return u.Op switch
                    {
                        UnaryOp.Not => !operand.IsTruthy,
                        UnaryOp.Negate => Operators.Negate(operand),
                        _ => Operators.Plus(operand),
                    };
                }
                case ConditionalExpr c:
                    if (Eval(c.Test, scope).IsTruthy) return Eval(c.Then, scope);
                    return c.Otherwise is null ? Value.UndefinedBecause("the inline if-expression evaluated to false and no else section was defined") : Eval(c.Otherwise, scope);
                case ListExpr l:
                {
                    var items = new List<Value>(l.Items.Length);
                    foreach (var item in l.Items) items.Add(Eval(item, scope));
                    return l.IsTuple ? Value.FromTuple(items) : Value.FromList(items);
                }
                case DictExpr d:
                {
                    var dict = new Dict(d.Pairs.Length);
                    foreach (var (k, item) in d.Pairs) dict[Eval(k, scope)] = Eval(item, scope);
                    return Value.FromDict(dict);
                }
                default:
                    throw new InvalidOperationException($"unknown expression {expr.GetType().Name}");
            }
        }
        catch (TemplateRuntimeError e)
        {
            throw At(expr, e);
        }
    }

    Value EvalBinary(BinaryExpr b, Scope scope)
    {
        var left = Eval(b.Left, scope);
        switch (b.Op)
        {
            case BinaryOp.And: return left.IsTruthy ? Eval(b.Right, scope) : left;
            case BinaryOp.Or: return left.IsTruthy ? left : Eval(b.Right, scope);
        }
        var right = Eval(b.Right, scope);
        return b.Op switch
        {
            BinaryOp.Add => Operators.Add(left, right, MaxLength),
            BinaryOp.Subtract => Operators.Subtract(left, right),
            BinaryOp.Multiply => Operators.Multiply(left, right, MaxLength),
            BinaryOp.Divide => Operators.Divide(left, right),
            BinaryOp.FloorDivide => Operators.FloorDivide(left, right),
            BinaryOp.Modulo => Operators.Modulo(left, right, MaxLength),
            BinaryOp.Power => Operators.Power(left, right),
            _ => Concat(left, right),
        };
    }

    Value Concat(Value a, Value b)
    {
        var x = PyText.Str(a);
        var y = PyText.Str(b);
        Operators.CheckLength((long)x.Length + y.Length, MaxLength);
        return string.Concat(x, y);
    }

    Value EvalCompare(CompareExpr c, Scope scope)
    {
        var left = Eval(c.First, scope);
        foreach (var (op, operandExpr, line, column) in c.Rest)
        {
            var right = Eval(operandExpr, scope);
            bool ok;
            try
            {
                ok = op switch
                {
                    CompareOp.Equal => Operators.PyEquals(left, right),
                    CompareOp.NotEqual => !Operators.PyEquals(left, right),
                    CompareOp.Less => Operators.Compare(left, right, "<") < 0,
                    CompareOp.LessOrEqual => Operators.Compare(left, right, "<=") <= 0,
                    CompareOp.Greater => Operators.Compare(left, right, ">") > 0,
                    CompareOp.GreaterOrEqual => Operators.Compare(left, right, ">=") >= 0,
                    CompareOp.In => Operators.Contains(right, left),
                    _ => !Operators.Contains(right, left),
                };
            }
            catch (TemplateRuntimeError e)
            {
                throw new TemplateException(_sourceName, line, column, e.Message, e.RaisedByTemplate, e);
            }
            if (!ok) return Value.False;
            left = right;
        }
        return Value.True;
    }

    Value EvalSlice(SliceExpr s, Scope scope)
    {
        var target = Eval(s.Target, scope);
        long? Bound(Expr? e)
        {
            if (e is null) return null;
            var v = Eval(e, scope);
            if (v.IsNone) return null;
            if (!v.IsInteger) throw new TemplateRuntimeError("slice indices must be integers or None");
            return v.AsInt;
        }
        long? start = Bound(s.Start), stop = Bound(s.Stop), step = Bound(s.Step);
        switch (target.Kind)
        {
            case ValueKind.String:
                return PyText.Slice(target.AsString, start, stop, step);
            case ValueKind.List:
            case ValueKind.Tuple:
            {
                var items = target.AsList;
                var (from, count, by) = Operators.SliceIndices(items.Count, start, stop, step);
                var result = new List<Value>(count);
                for (int i = 0, j = from; i < count; i++, j += by) result.Add(items[j]);
                return target.Kind == ValueKind.List ? Value.FromList(result) : Value.FromTuple(result);
            }
            case ValueKind.Undefined:
                throw Operators.UndefinedError(target);
            default:
                return Value.UndefinedBecause($"'{target.TypeName} object' cannot be sliced");
        }
    }

    /// <summary>
    /// A call. <c>obj.method(args)</c> on a string, list or dict goes straight to the method
    /// without building a bound-method object; <paramref name="caller"/> is the body of a call block.
    /// </summary>
    Value EvalCall(CallExpr c, Scope scope, Macro? caller)
    {
        if (c.Callee is AttributeExpr { } member && caller is null)
        {
            var self = Eval(member.Target, scope);
            if (self.Kind is ValueKind.String or ValueKind.List or ValueKind.Tuple or ValueKind.Dict && Methods.Has(self, member.Name))
            {
                var margs = EvalArguments(c.Args, scope);
                try { return Methods.Call(this, self, member.Name, margs); }
                catch (TemplateRuntimeError e) { throw At(member, e); }
            }
            var fn = Methods.GetAttribute(self, member.Name);
            return Invoke(fn, EvalArguments(c.Args, scope), member);
        }
        var callee = Eval(c.Callee, scope);
        var args = EvalArguments(c.Args, scope);
        if (caller is not null)
        {
            if (callee.Kind != ValueKind.Callable || callee.AsCallable is not Macro)
                throw At(c, "'{% call %}' needs a macro");
            var keywords = args.Keywords is null ? [] : new List<KeyValuePair<string, Value>>(args.Keywords);
            keywords.Add(new("caller", Value.FromCallable(caller)));
            args = new CallArguments(args.Positional, keywords);
        }
        return Invoke(callee, args, c);
    }

    Value Invoke(Value callee, CallArguments args, Node at)
    {
        try
        {
            if (callee.Kind == ValueKind.Callable) return callee.AsCallable.Invoke(this, args);
            if (callee.IsUndefined) throw Operators.UndefinedError(callee);
            throw new TemplateRuntimeError($"'{callee.TypeName}' object is not callable");
        }
        catch (TemplateRuntimeError e)
        {
            throw At(at, e);
        }
    }

    public CallArguments EvalArguments(Arguments a, Scope scope)
    {
        if (ReferenceEquals(a, Arguments.None)) return CallArguments.Empty; // callees never modify their arguments
        var positional = new List<Value>(a.Positional.Length);
        foreach (var p in a.Positional) positional.Add(Eval(p, scope));
        if (a.Star is not null)
        {
            var star = Eval(a.Star, scope);
            try { positional.AddRange(Operators.Iterate(star)); }
            catch (TemplateRuntimeError e) { throw At(a.Star, e); }
        }
        List<KeyValuePair<string, Value>>? keywords = null;
        if (a.Keywords.Length > 0 || a.DoubleStar is not null)
        {
            keywords = new(a.Keywords.Length);
            foreach (var (name, e) in a.Keywords) keywords.Add(new(name, Eval(e, scope)));
            if (a.DoubleStar is not null)
            {
                var d = Eval(a.DoubleStar, scope);
                if (d.Kind != ValueKind.Dict) throw At(a.DoubleStar, $"argument after ** must be a mapping, not {d.TypeName}");
                foreach (var (k, v) in d.AsDict)
                {
                    if (!k.IsString) throw At(a.DoubleStar, "keywords must be strings");
                    if (keywords.Any(x => x.Key == k.AsString)) throw At(a.DoubleStar, $"got multiple values for keyword argument '{k.AsString}'");
                    keywords.Add(new(k.AsString, v));
                }
            }
        }
        return new CallArguments(positional, keywords);
    }

    Value ApplyFilter(FilterExpr f, Value operand, Scope scope)
    {
        var args = EvalArguments(f.Args, scope);
        try { return Filters.Apply(this, f.Name, operand, args); }
        catch (TemplateRuntimeError e) { throw At(f, e); }
    }
}

/// <summary>Where one <c>{% generation %}</c> block's text lies in the rendered output: [Start, End) in UTF-16 code units.</summary>
public readonly record struct GenerationSpan(int Start, int End)
{
    public int Length => End - Start;
}
