namespace Attune.Text.Templates;

/// <summary>
/// Python's operators on template values: what <c>+</c>, <c>//</c>, <c>%</c>, <c>==</c>, <c>&lt;</c>,
/// <c>in</c> and slicing mean for ints, floats, strings, lists and dicts. Errors carry Python's wording.
/// </summary>
static class Operators
{
    static readonly List<Value> NoItems = [];

    public static Value Add(Value a, Value b, int maxLength)
    {
        if (a.IsNumber && b.IsNumber)
        {
            if (a.Kind == ValueKind.Float || b.Kind == ValueKind.Float) return a.AsDouble + b.AsDouble;
            try { return checked(a.AsInt + b.AsInt); } catch (OverflowException) { throw IntegerOverflow(); }
        }
        if (a.IsString && b.IsString)
        {
            CheckLength((long)a.AsString.Length + b.AsString.Length, maxLength);
            return string.Concat(a.AsString, b.AsString);
        }
        if (a.Kind == b.Kind && a.IsSequence)
        {
            CheckLength((long)a.AsList.Count + b.AsList.Count, maxLength);
            var list = new List<Value>(a.AsList.Count + b.AsList.Count);
            list.AddRange(a.AsList);
            list.AddRange(b.AsList);
            return a.Kind == ValueKind.List ? Value.FromList(list) : Value.FromTuple(list);
        }
        FailIfUndefined(a, b);
        if (a.IsString) throw new TemplateRuntimeError($"can only concatenate str (not \"{b.TypeName}\") to str");
        if (a.Kind == ValueKind.List) throw new TemplateRuntimeError($"can only concatenate list (not \"{b.TypeName}\") to list");
        throw Unsupported("+", a, b);
    }

    public static Value Subtract(Value a, Value b)
    {
        if (!a.IsNumber || !b.IsNumber) { FailIfUndefined(a, b); throw Unsupported("-", a, b); }
        if (a.Kind == ValueKind.Float || b.Kind == ValueKind.Float) return a.AsDouble - b.AsDouble;
        try { return checked(a.AsInt - b.AsInt); } catch (OverflowException) { throw IntegerOverflow(); }
    }

    public static Value Multiply(Value a, Value b, int maxLength)
    {
        if (a.IsNumber && b.IsNumber)
        {
            if (a.Kind == ValueKind.Float || b.Kind == ValueKind.Float) return a.AsDouble * b.AsDouble;
            try { return checked(a.AsInt * b.AsInt); } catch (OverflowException) { throw IntegerOverflow(); }
        }
        if (b.IsString || b.IsSequence) (a, b) = (b, a);
        if (a.IsString && b.IsInteger)
        {
            long n = Math.Max(0, b.AsInt);
            CheckLength((Int128)a.AsString.Length * n, maxLength);
            return n == 0 ? Value.EmptyString : string.Concat(Enumerable.Repeat(a.AsString, (int)n));
        }
        if (a.IsSequence && b.IsInteger)
        {
            long n = Math.Max(0, b.AsInt);
            CheckLength((Int128)a.AsList.Count * n, maxLength);
            var list = new List<Value>((int)(a.AsList.Count * n));
            for (long i = 0; i < n; i++) list.AddRange(a.AsList);
            return a.Kind == ValueKind.List ? Value.FromList(list) : Value.FromTuple(list);
        }
        FailIfUndefined(a, b);
        if (a.IsString || a.IsSequence) throw new TemplateRuntimeError($"can't multiply sequence by non-int of type '{b.TypeName}'");
        throw Unsupported("*", a, b);
    }

    public static Value Divide(Value a, Value b)
    {
        if (!a.IsNumber || !b.IsNumber) { FailIfUndefined(a, b); throw Unsupported("/", a, b); }
        if (b.AsDouble == 0)
            throw new TemplateRuntimeError(a.Kind == ValueKind.Float || b.Kind == ValueKind.Float ? "float division by zero" : "division by zero");
        return a.AsDouble / b.AsDouble;
    }

    public static Value FloorDivide(Value a, Value b)
    {
        if (!a.IsNumber || !b.IsNumber) { FailIfUndefined(a, b); throw Unsupported("//", a, b); }
        if (a.Kind == ValueKind.Float || b.Kind == ValueKind.Float)
        {
            if (b.AsDouble == 0) throw new TemplateRuntimeError("float floor division by zero");
            return Math.Floor(a.AsDouble / b.AsDouble);
        }
        long x = a.AsInt, y = b.AsInt;
        if (y == 0) throw new TemplateRuntimeError("integer division or modulo by zero");
        if (x == long.MinValue && y == -1) throw new TemplateRuntimeError("integer overflow");
        long q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }

    public static Value Modulo(Value a, Value b, int maxLength)
    {
        if (a.IsString) return PyFormat.Percent(a.AsString, b, maxLength);
        if (!a.IsNumber || !b.IsNumber) { FailIfUndefined(a, b); throw Unsupported("%", a, b); }
        if (a.Kind == ValueKind.Float || b.Kind == ValueKind.Float)
        {
            double x = a.AsDouble, y = b.AsDouble;
            if (y == 0) throw new TemplateRuntimeError("float modulo");
            double m = x % y;
            if (m != 0 && (m < 0) != (y < 0)) m += y;
            return m;
        }
        long p = a.AsInt, q = b.AsInt;
        if (q == 0) throw new TemplateRuntimeError("integer division or modulo by zero");
        if (q == -1) return 0L;
        long r = p % q;
        if (r != 0 && (r < 0) != (q < 0)) r += q;
        return r;
    }

    public static Value Power(Value a, Value b)
    {
        if (!a.IsNumber || !b.IsNumber) { FailIfUndefined(a, b); throw Unsupported("** or pow()", a, b); }
        if (a.IsInteger && b.IsInteger && b.AsInt >= 0)
        {
            long result = 1, x = a.AsInt, n = b.AsInt;
            try
            {
                while (n > 0)
                {
                    if ((n & 1) != 0) result = checked(result * x);
                    n >>= 1;
                    if (n > 0) x = checked(x * x);
                }
                return result;
            }
            catch (OverflowException) { throw IntegerOverflow(); }
        }
        double bx = a.AsDouble, ex = b.AsDouble;
        if (bx == 0 && ex < 0) throw new TemplateRuntimeError("0.0 cannot be raised to a negative power");
        double r = Math.Pow(bx, ex);
        if (double.IsNaN(r)) throw new TemplateRuntimeError("exponentiation gives a complex number");
        if (double.IsInfinity(r)) throw new TemplateRuntimeError("(34, 'Numerical result out of range')");
        return r;
    }

    public static Value Negate(Value a)
    {
        if (a.Kind == ValueKind.Float) return -a.AsFloat;
        if (a.IsInteger) { if (a.AsInt == long.MinValue) throw IntegerOverflow(); return -a.AsInt; }
        FailIfUndefined(a, a);
        throw new TemplateRuntimeError($"bad operand type for unary -: '{a.TypeName}'");
    }

    public static Value Plus(Value a)
    {
        if (a.Kind == ValueKind.Float) return a;
        if (a.IsInteger) return Value.FromInt(a.AsInt);
        FailIfUndefined(a, a);
        throw new TemplateRuntimeError($"bad operand type for unary +: '{a.TypeName}'");
    }

    /// <summary>Python's <c>==</c>: numbers by value (<c>1 == 1.0 == True</c>), containers item by item.</summary>
    public static bool PyEquals(Value a, Value b) => PyEquals(a, b, 0);

    static bool PyEquals(Value a, Value b, int depth)
    {
        if (depth > PyText.MaxNesting) throw new TemplateRuntimeError("value nested too deeply to compare");
        if (a.IsNumber && b.IsNumber)
            return a.Kind == ValueKind.Float || b.Kind == ValueKind.Float ? a.AsDouble == b.AsDouble : a.AsInt == b.AsInt;
        if (a.Kind != b.Kind) return false;
        switch (a.Kind)
        {
            case ValueKind.Undefined:
            case ValueKind.None:
                return true;
            case ValueKind.String:
                return string.Equals(a.AsString, b.AsString, StringComparison.Ordinal);
            case ValueKind.List:
            case ValueKind.Tuple:
            {
                var x = a.AsList;
                var y = b.AsList;
                if (ReferenceEquals(x, y)) return true;
                if (x.Count != y.Count) return false;
                for (int i = 0; i < x.Count; i++)
                    if (!PyEquals(x[i], y[i], depth + 1)) return false;
                return true;
            }
            case ValueKind.Dict:
            {
                var x = a.AsDict;
                var y = b.AsDict;
                if (ReferenceEquals(x, y)) return true;
                if (x.Count != y.Count) return false;
                foreach (var (k, v) in x)
                    if (!y.TryGetValue(k, out var w) || !PyEquals(v, w, depth + 1)) return false;
                return true;
            }
            default:
                return ReferenceEquals(a.AsObjectOrCallable(), b.AsObjectOrCallable());
        }
    }

    /// <summary>Python's ordering (<c>&lt;</c> and friends): numbers, strings by code point, sequences item by item.</summary>
    public static int Compare(Value a, Value b, string op, int depth = 0)
    {
        if (depth > PyText.MaxNesting) throw new TemplateRuntimeError("value nested too deeply to compare");
        if (a.IsNumber && b.IsNumber)
        {
            if (a.Kind != ValueKind.Float && b.Kind != ValueKind.Float) return a.AsInt.CompareTo(b.AsInt);
            double x = a.AsDouble, y = b.AsDouble;
            return x < y ? -1 : x > y ? 1 : 0;
        }
        if (a.IsString && b.IsString) return CompareCodePoints(a.AsString, b.AsString);
        if (a.IsSequence && a.Kind == b.Kind)
        {
            var x = a.AsList;
            var y = b.AsList;
            for (int i = 0; i < x.Count && i < y.Count; i++)
                if (!PyEquals(x[i], y[i], depth + 1)) return Compare(x[i], y[i], op, depth + 1);
            return x.Count.CompareTo(y.Count);
        }
        FailIfUndefined(a, b);
        throw new TemplateRuntimeError($"'{op}' not supported between instances of '{a.TypeName}' and '{b.TypeName}'");
    }

    /// <summary>Ordinal comparison in code-point order (UTF-16 order differs for surrogates against U+E000–U+FFFF).</summary>
    public static int CompareCodePoints(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            char x = a[i], y = b[i];
            if (x == y) continue;
            return Fix(x).CompareTo(Fix(y));
        }
        return a.Length.CompareTo(b.Length);

        static int Fix(char c) => c >= 0xE000 ? c - 0x800 : c >= 0xD800 ? c + 0x2000 : c;
    }

    /// <summary>
    /// Sorts by Python's ordering, stably (equal keys keep their order, also in reverse). A
    /// comparison that fails (<c>1 &lt; 'a'</c>) is the template's error, not the sort's.
    /// </summary>
    public static int[] StableOrder(List<Value> keys, bool reverse)
    {
        var order = Enumerable.Range(0, keys.Count).ToArray();
        try
        {
            Array.Sort(order, (x, y) =>
            {
                int c = Compare(keys[x], keys[y], "<");
                if (reverse) c = -c;
                return c != 0 ? c : x.CompareTo(y);
            });
        }
        catch (InvalidOperationException e) when (e.InnerException is TemplateRuntimeError inner)
        {
            throw inner;
        }
        return order;
    }

    /// <summary>Python's <c>needle in haystack</c>.</summary>
    public static bool Contains(Value haystack, Value needle)
    {
        switch (haystack.Kind)
        {
            case ValueKind.String:
                if (!needle.IsString)
                    throw new TemplateRuntimeError($"'in <string>' requires string as left operand, not {needle.TypeName}");
                return haystack.AsString.Contains(needle.AsString, StringComparison.Ordinal);
            case ValueKind.List:
            case ValueKind.Tuple:
                foreach (var item in haystack.AsList)
                    if (PyEquals(item, needle)) return true;
                return false;
            case ValueKind.Dict:
                return needle.Kind is not (ValueKind.List or ValueKind.Dict) && haystack.AsDict.ContainsKey(needle);
            case ValueKind.Undefined:
                return false; // Jinja's Undefined iterates as empty
            default:
                throw new TemplateRuntimeError($"argument of type '{haystack.TypeName}' is not iterable");
        }
    }

    /// <summary>The items a <c>for</c> loop (or a filter) walks: a dict's keys, a string's characters.</summary>
    public static List<Value> Iterate(Value v)
    {
        switch (v.Kind)
        {
            case ValueKind.List:
            case ValueKind.Tuple:
                return v.AsList;
            case ValueKind.Dict:
                return [.. v.AsDict.Keys];
            case ValueKind.String:
                return PyText.CodePoints(v.AsString).ConvertAll(Value.FromString);
            case ValueKind.Undefined:
                return NoItems;
            default:
                throw new TemplateRuntimeError($"'{v.TypeName}' object is not iterable");
        }
    }

    /// <summary>Python's <c>slice.indices(length)</c>: the first index, the number of items, the step.</summary>
    public static (int Start, int Count, int Step) SliceIndices(int length, long? start, long? stop, long? step)
    {
        long st = step ?? 1;
        if (st == 0) throw new TemplateRuntimeError("slice step cannot be zero");
        long lower = st > 0 ? 0 : -1, upper = st > 0 ? length : length - 1;
        long Clamp(long? v, long fallback)
        {
            if (v is null) return fallback;
            long x = v.Value;
            if (x < 0) { x += length; if (x < lower) x = lower; }
            else if (x > upper) x = upper;
            return x;
        }
        long s = Clamp(start, st > 0 ? lower : upper);
        long e = Clamp(stop, st > 0 ? upper : lower);
        long count = st > 0 ? (e > s ? (e - s - 1) / st + 1 : 0) : (s > e ? (s - e - 1) / -st + 1 : 0);
        return ((int)s, (int)count, (int)Math.Clamp(st, int.MinValue, int.MaxValue));
    }

    /// <summary>Throws when a result would be longer than the limit; <paramref name="length"/> is wide enough for any count × length.</summary>
    public static void CheckLength(Int128 length, int maxLength)
    {
        if (length > maxLength)
            throw new TemplateRuntimeError($"result would be {length:N0} long, over the limit of {maxLength:N0} (TemplateLimits.MaxOutputLength)");
    }

    /// <summary>Jinja fails on arithmetic with an undefined value, naming what was undefined.</summary>
    public static void FailIfUndefined(Value a, Value b)
    {
        if (a.IsUndefined) throw UndefinedError(a);
        if (b.IsUndefined) throw UndefinedError(b);
    }

    public static TemplateRuntimeError UndefinedError(Value undefined) =>
        new(undefined.UndefinedHint ?? "value is undefined");

    static TemplateRuntimeError Unsupported(string op, Value a, Value b) =>
        new($"unsupported operand type(s) for {op}: '{a.TypeName}' and '{b.TypeName}'");

    static TemplateRuntimeError IntegerOverflow() => new("integer overflow (Attune's template integers are 64-bit)");
}
