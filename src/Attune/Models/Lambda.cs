using System.Globalization;

namespace Attune.Models;

/// <summary>
/// The interpolation weight of partial adaptation, M(λ) = W_base + λ·(W_instruct − W_base): 0 is the base,
/// 1 the instruct model, outside [0, 1] extrapolates. One parser and one name for merge, sweep and report,
/// exact for any λ a user types: a range's values are computed in decimal, so 0:1:0.1 gives exactly the
/// doubles that "0.1", "0.2", … parse to, and names keep every digit (λ = 0.125 is <c>lambda-0.125</c>).
/// </summary>
public readonly record struct Lambda(double Value) : IComparable<Lambda>
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Most values a range may produce (a typo like 0:1:0.0001 should not start 10,001 merges).</summary>
    public const int MaxValues = 10_000;

    /// <summary>The shortest text that reads back as the same double, in plain decimal: <c>0.5</c>, <c>0.125</c>, <c>1</c>.</summary>
    public override string ToString() => Plain(Value, "0.############################");

    /// <summary>The decimal with at least two places, as tables and folder names show it: <c>0.50</c>, <c>0.125</c>, <c>1.00</c>.</summary>
    public string Text => Plain(Value, "0.00##########################");

    /// <summary>The folder and arm name: <c>lambda-0.50</c>, <c>lambda-0.125</c>; two different λ never share one.</summary>
    public string Name => "lambda-" + Text;

    public int CompareTo(Lambda other) => Value.CompareTo(other.Value);

    public static implicit operator Lambda(double value) => new(value);

    static string Plain(double value, string format) =>
        // "R" is the shortest round-trip text; decimal re-prints it without an exponent (1E-05 → 0.00001).
        decimal.TryParse(value.ToString("R", Inv), NumberStyles.Float, Inv, out var d) ? d.ToString(format, Inv) : value.ToString("R", Inv);

    /// <summary>One λ: a finite number.</summary>
    public static Lambda Parse(string text, string field = "--lambda") =>
        TryParse(text, out var l) ? l : throw new AttuneException(null, field, $"\"{text}\" is not a number (λ: 0 = base, 1 = instruct)");

    public static bool TryParse(string text, out Lambda lambda)
    {
        bool ok = double.TryParse(text.Trim(), NumberStyles.Float, Inv, out var v) && double.IsFinite(v);
        lambda = new Lambda(ok ? v : 0);
        return ok;
    }

    /// <summary>
    /// A list (<c>0,0.25,1</c>) or an inclusive range (<c>start:end:step</c>); values may not repeat.
    /// </summary>
    public static IReadOnlyList<Lambda> ParseList(string text, string field = "--lambdas")
    {
        var parts = text.Split(':');
        List<Lambda> values;
        if (parts.Length == 3)
        {
            decimal Dec(string s) => decimal.TryParse(s.Trim(), NumberStyles.Float, Inv, out var d) ? d
                : throw new AttuneException(null, field, $"\"{s}\" in \"{text}\" is not a number");
            decimal from = Dec(parts[0]), to = Dec(parts[1]), step = Dec(parts[2]);
            if (step <= 0 || to < from) throw new AttuneException(null, field, $"\"{text}\": write start:end:step with start ≤ end and step > 0");
            var count = decimal.Floor((to - from) / step) + 1;
            if (count > MaxValues) throw new AttuneException(null, field, $"\"{text}\" makes {count} values; at most {MaxValues}");
            // decimal → text → double: each value is the double its decimal digits parse to.
            values = Enumerable.Range(0, (int)count).Select(i => new Lambda(double.Parse((from + i * step).ToString(Inv), Inv))).ToList();
        }
        else if (parts.Length == 1)
            values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => Parse(s, field)).ToList();
        else throw new AttuneException(null, field, $"\"{text}\" is not a list (0,0.5,1) or a range (0:1:0.1)");
        if (values.Count == 0) throw new AttuneException(null, field, $"\"{text}\" gives no value");
        if (values.Distinct().Count() != values.Count) throw new AttuneException(null, field, $"\"{text}\": values repeat");
        return values;
    }
}
