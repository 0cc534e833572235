using System.Runtime.CompilerServices;

namespace Attune.Text.Templates;

/// <summary>The kinds of value a template sees: Python's, as Jinja exposes them.</summary>
public enum ValueKind : byte
{
    /// <summary>A name or key that does not exist (Jinja's <c>Undefined</c>): prints as nothing, is false.</summary>
    Undefined,
    None,
    Bool,
    Int,
    Float,
    String,
    List,
    /// <summary>Python's tuple: like a list, but a different type for <c>==</c> and printing.</summary>
    Tuple,
    /// <summary>An insertion-ordered mapping (Python's dict).</summary>
    Dict,
    /// <summary>A host object with attributes: <c>loop</c>, a <c>namespace()</c>.</summary>
    Object,
    /// <summary>A macro, a global function, or a bound method.</summary>
    Callable,
}

/// <summary>
/// One template value. A struct, so that numbers and booleans cost no allocation; containers
/// are shared, never copied, which is safe because templates cannot mutate them (Jinja's
/// immutable sandbox, as transformers uses), the only exception being <see cref="Namespace"/>.
/// </summary>
public readonly struct Value
{
    readonly object? _ref;
    readonly long _bits;

    public ValueKind Kind { get; }

    Value(ValueKind kind, long bits, object? reference)
    {
        Kind = kind;
        _bits = bits;
        _ref = reference;
    }

    public static readonly Value Undefined = default;
    public static readonly Value None = new(ValueKind.None, 0, null);
    public static readonly Value True = new(ValueKind.Bool, 1, null);
    public static readonly Value False = new(ValueKind.Bool, 0, null);
    public static readonly Value EmptyString = new(ValueKind.String, 0, "");

    /// <summary>An undefined value that remembers why (for the error when it is used).</summary>
    public static Value UndefinedBecause(string hint) => new(ValueKind.Undefined, 0, hint);

    public static Value FromBool(bool b) => b ? True : False;
    public static Value FromInt(long i) => new(ValueKind.Int, i, null);
    public static Value FromFloat(double d) => new(ValueKind.Float, BitConverter.DoubleToInt64Bits(d), null);
    public static Value FromString(string s) => s.Length == 0 ? EmptyString : new(ValueKind.String, 0, s);
    public static Value FromList(List<Value> items) => new(ValueKind.List, 0, items);
    public static Value FromTuple(List<Value> items) => new(ValueKind.Tuple, 0, items);
    public static Value FromDict(Dict dict) => new(ValueKind.Dict, 0, dict);
    internal static Value FromObject(TemplateObject o) => new(ValueKind.Object, 0, o);
    internal static Value FromCallable(TemplateCallable c) => new(ValueKind.Callable, 0, c);

    public static implicit operator Value(string s) => FromString(s);
    public static implicit operator Value(long i) => FromInt(i);
    public static implicit operator Value(bool b) => FromBool(b);
    public static implicit operator Value(double d) => FromFloat(d);

    public bool IsUndefined => Kind == ValueKind.Undefined;
    public bool IsNone => Kind == ValueKind.None;
    public bool IsString => Kind == ValueKind.String;
    /// <summary>Python's int, which bool is a subtype of.</summary>
    public bool IsInteger => Kind is ValueKind.Int or ValueKind.Bool;
    public bool IsNumber => Kind is ValueKind.Int or ValueKind.Bool or ValueKind.Float;
    public bool IsSequence => Kind is ValueKind.List or ValueKind.Tuple;

    public bool AsBool => _bits != 0;
    /// <summary>The integer value of an Int or Bool.</summary>
    public long AsInt => _bits;
    public double AsFloat => BitConverter.Int64BitsToDouble(_bits);
    /// <summary>Int, Bool or Float as a double.</summary>
    public double AsDouble => Kind == ValueKind.Float ? AsFloat : _bits;
    public string AsString => (string)_ref!;
    public List<Value> AsList => (List<Value>)_ref!;
    public Dict AsDict => (Dict)_ref!;
    internal TemplateObject AsObject => (TemplateObject)_ref!;
    internal TemplateCallable AsCallable => (TemplateCallable)_ref!;
    /// <summary>The object behind an Object or Callable value (for identity comparisons).</summary>
    internal object AsObjectOrCallable() => _ref!;
    /// <summary>Why an undefined value is undefined, when known.</summary>
    public string? UndefinedHint => Kind == ValueKind.Undefined ? _ref as string : null;

    /// <summary>Python truthiness.</summary>
    public bool IsTruthy => Kind switch
    {
        ValueKind.Undefined or ValueKind.None => false,
        ValueKind.Bool or ValueKind.Int => _bits != 0,
        ValueKind.Float => AsFloat != 0,
        ValueKind.String => AsString.Length > 0,
        ValueKind.List or ValueKind.Tuple => AsList.Count > 0,
        ValueKind.Dict => AsDict.Count > 0,
        _ => true,
    };

    /// <summary>Python's type name, for error messages.</summary>
    public string TypeName => Kind switch
    {
        ValueKind.Undefined => "Undefined",
        ValueKind.None => "NoneType",
        ValueKind.Bool => "bool",
        ValueKind.Int => "int",
        ValueKind.Float => "float",
        ValueKind.String => "str",
        ValueKind.List => "list",
        ValueKind.Tuple => "tuple",
        ValueKind.Dict => "dict",
        ValueKind.Object => AsObject.TypeName,
        _ => AsCallable is Macro ? "Macro" : "builtin_function_or_method",
    };

    /// <summary>Jinja's <c>str()</c> of the value: what <c>{{ value }}</c> prints.</summary>
    public override string ToString() => PyText.Str(this);
}

/// <summary>Python's dict: insertion-ordered, keyed by hashable values (strings, numbers, None, tuples).</summary>
public sealed class Dict : OrderedDictionary<Value, Value>
{
    public Dict() : base(ValueKeyComparer.Instance) { }
    public Dict(int capacity) : base(capacity, ValueKeyComparer.Instance) { }

    public bool TryGet(string key, out Value value) => TryGetValue(Value.FromString(key), out value);
}

/// <summary>Python's hashing and equality for dict keys: <c>1</c>, <c>1.0</c> and <c>True</c> are one key.</summary>
internal sealed class ValueKeyComparer : IEqualityComparer<Value>
{
    public static readonly ValueKeyComparer Instance = new();

    public bool Equals(Value a, Value b) => Operators.PyEquals(a, b);

    public int GetHashCode(Value v) => v.Kind switch
    {
        ValueKind.String => string.GetHashCode(v.AsString, StringComparison.Ordinal),
        ValueKind.Int or ValueKind.Bool => v.AsInt.GetHashCode(),
        ValueKind.Float => v.AsFloat == Math.Floor(v.AsFloat) && Math.Abs(v.AsFloat) < 9.2e18
            ? ((long)v.AsFloat).GetHashCode() : v.AsFloat.GetHashCode(),
        ValueKind.None or ValueKind.Undefined => 0,
        ValueKind.Tuple => TupleHash(v.AsList),
        ValueKind.List or ValueKind.Dict => throw new TemplateRuntimeError($"unhashable type: '{v.TypeName}'"),
        _ => RuntimeHelpers.GetHashCode(v.AsObjectOrCallable()),
    };

    int TupleHash(List<Value> items)
    {
        var h = new HashCode();
        foreach (var item in items) h.Add(GetHashCode(item));
        return h.ToHashCode();
    }
}

/// <summary>An object with named attributes that a template can read (and, for a namespace, set).</summary>
internal abstract class TemplateObject
{
    public abstract string TypeName { get; }

    public abstract bool TryGetAttribute(string name, out Value value);

    /// <summary>What <c>{{ obj }}</c> prints.</summary>
    public abstract string Repr();
}

/// <summary>
/// <c>namespace(...)</c>: the one mutable value, so that a loop body can carry state out of its
/// scope (<c>{% set ns.found = true %}</c>), which plain <c>set</c> cannot.
/// </summary>
internal sealed class Namespace : TemplateObject
{
    public Dict Attributes { get; } = new();

    public override string TypeName => "Namespace";

    public override bool TryGetAttribute(string name, out Value value) => Attributes.TryGet(name, out value);

    public void SetAttribute(string name, Value value) => Attributes[Value.FromString(name)] = value;

    public override string Repr() => $"<Namespace {PyText.Repr(Value.FromDict(Attributes))}>";
}

/// <summary>Something a template can call: a macro, a global such as <c>range</c>, a bound method.</summary>
internal abstract class TemplateCallable
{
    public abstract string Name { get; }

    public abstract Value Invoke(Renderer renderer, CallArguments args);
}

/// <summary>A global function written in C#.</summary>
internal sealed class BuiltinFunction(string name, Func<Renderer, CallArguments, Value> body) : TemplateCallable
{
    public override string Name => name;

    public override Value Invoke(Renderer renderer, CallArguments args) => body(renderer, args);
}

/// <summary>The evaluated arguments of one call: positional, then keyword.</summary>
internal sealed class CallArguments
{
    public static readonly CallArguments Empty = new([], null);

    public List<Value> Positional { get; }
    public List<KeyValuePair<string, Value>>? Keywords { get; }

    public CallArguments(List<Value> positional, List<KeyValuePair<string, Value>>? keywords)
    {
        Positional = positional;
        Keywords = keywords;
    }

    public int Count => Positional.Count;

    /// <summary>
    /// The argument at <paramref name="index"/> or named <paramref name="name"/>, as in a Python
    /// signature; <paramref name="fallback"/> when neither was given.
    /// </summary>
    public Value Get(int index, string name, Value fallback)
    {
        if (index >= 0 && index < Positional.Count) return Positional[index];
        if (Keywords is not null)
            foreach (var (k, v) in Keywords)
                if (k == name) return v;
        return fallback;
    }

    public bool Has(int index, string name)
    {
        if (index >= 0 && index < Positional.Count) return true;
        if (Keywords is not null)
            foreach (var (k, _) in Keywords)
                if (k == name) return true;
        return false;
    }

    /// <summary>Fails when more than <paramref name="max"/> positional arguments or unknown keywords were given.</summary>
    public void Check(string function, int max, params string[] keywords)
    {
        if (Positional.Count > max)
            throw new TemplateRuntimeError($"{function}() takes at most {max} argument{(max == 1 ? "" : "s")} ({Positional.Count} given)");
        if (Keywords is null) return;
        foreach (var (k, _) in Keywords)
            if (Array.IndexOf(keywords, k) < 0)
                throw new TemplateRuntimeError($"{function}() got an unexpected keyword argument '{k}'");
    }
}

/// <summary>
/// An error raised while evaluating, before its position is known; the renderer catches it at
/// the node being evaluated and rethrows it as a <see cref="TemplateException"/> with line and column.
/// </summary>
internal sealed class TemplateRuntimeError(string message, bool raisedByTemplate = false) : Exception(message)
{
    public bool RaisedByTemplate { get; } = raisedByTemplate;
}
