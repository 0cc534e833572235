using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Attune.Tests.Mutation;

/// <summary>A field of a binary format: where it is and how many bytes it takes (1, 2, 4 or 8, little- or big-endian).</summary>
public readonly record struct BinaryField(long Offset, int Width, bool BigEndian = false);

/// <summary>
/// The mutations, each drawn from one seeded <see cref="Random"/>: byte-level damage for any file, extreme integers in the
/// length and offset fields of binary formats, and type, depth and size attacks on JSON values.
/// </summary>
public sealed class Mutator(Random rng)
{
    public Random Rng => rng;

    /// <summary>Values written into integer fields: the edges of every width and of every sign.</summary>
    static readonly ulong[] Extremes =
    [
        0, 1, ulong.MaxValue /* -1 */, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, int.MaxValue, 0x80000000, uint.MaxValue,
        1UL << 32, 1UL << 60, long.MaxValue, 0x8000000000000000, ulong.MaxValue - 7,
    ];

    static readonly string[] JsonExtremes =
    [
        "0", "-1", "1", "2147483647", "2147483648", "-2147483649", "4294967296", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "18446744073709551615", "1152921504606846976", "1e308", "-1e308", "1.5", "1e-320", "0.0", "-0",
    ];

    static readonly byte[][] Interesting =
    [
        [0x00], [0xFF], [0x7F], [0x80], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xEF, 0xBB, 0xBF], [(byte)'"'],
        [(byte)'{'], [(byte)'['], [(byte)'\\'], [(byte)'\n'], [(byte)'\r'], [(byte)':'], [(byte)','], [(byte)'}'],
    ];

    public T Pick<T>(IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    int Position(int length) => length == 0 ? 0 : rng.Next(length + 1);

    /// <summary>One of the byte-level mutations, chosen at random.</summary>
    public byte[] Bytes(byte[] input) => rng.Next(7) switch
    {
        0 => Truncate(input),
        1 => FlipBits(input),
        2 => Insert(input),
        3 => Delete(input),
        4 => DuplicateChunk(input),
        5 => OverwriteInteresting(input),
        _ => Splice(input),
    };

    public byte[] Truncate(byte[] input) => input[..rng.Next(Math.Max(1, input.Length))];

    public byte[] FlipBits(byte[] input)
    {
        if (input.Length == 0) return input;
        var output = (byte[])input.Clone();
        int flips = 1 + rng.Next(8);
        // Most damage goes near the start, where headers and length fields are.
        for (int i = 0; i < flips; i++)
        {
            int at = rng.Next(2) == 0 ? rng.Next(Math.Min(output.Length, 512)) : rng.Next(output.Length);
            output[at] ^= (byte)(1 << rng.Next(8));
        }
        return output;
    }

    public byte[] Insert(byte[] input)
    {
        int at = Position(input.Length);
        var extra = rng.Next(2) == 0 ? Pick(Interesting) : RandomBytes(1 + rng.Next(16));
        return [.. input.AsSpan(0, at), .. extra, .. input.AsSpan(at)];
    }

    public byte[] Delete(byte[] input)
    {
        if (input.Length == 0) return input;
        int at = rng.Next(input.Length);
        int n = 1 + rng.Next(Math.Min(64, input.Length - at));
        return [.. input.AsSpan(0, at), .. input.AsSpan(at + n)];
    }

    public byte[] DuplicateChunk(byte[] input)
    {
        if (input.Length == 0) return input;
        int from = rng.Next(input.Length);
        int n = 1 + rng.Next(Math.Min(4096, input.Length - from));
        int to = rng.Next(2) == 0 ? from + n : Position(input.Length);
        int copies = rng.Next(4) == 0 ? 1 + rng.Next(16) : 1;
        var chunk = input.AsSpan(from, n);
        var output = new List<byte>(input.Length + n * copies);
        output.AddRange(input.AsSpan(0, to));
        for (int c = 0; c < copies; c++) output.AddRange(chunk);
        output.AddRange(input.AsSpan(to));
        return [.. output];
    }

    public byte[] OverwriteInteresting(byte[] input)
    {
        if (input.Length == 0) return input;
        var output = (byte[])input.Clone();
        var bytes = Pick(Interesting);
        int at = rng.Next(output.Length);
        bytes.AsSpan(0, Math.Min(bytes.Length, output.Length - at)).CopyTo(output.AsSpan(at));
        return output;
    }

    /// <summary>The start of the input joined to a later (or earlier) part of itself.</summary>
    public byte[] Splice(byte[] input)
    {
        if (input.Length < 2) return input;
        int a = rng.Next(input.Length), b = rng.Next(input.Length);
        return [.. input.AsSpan(0, a), .. input.AsSpan(b)];
    }

    byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    /// <summary>An extreme (or off-by-one) value written into one of <paramref name="fields"/>.</summary>
    public byte[] ExtremeInteger(byte[] input, IReadOnlyList<BinaryField> fields)
    {
        var output = (byte[])input.Clone();
        var f = Pick(fields);
        if (f.Offset + f.Width > output.Length) return output;
        var span = output.AsSpan((int)f.Offset, f.Width);
        ulong old = f.Width switch
        {
            1 => span[0],
            2 => f.BigEndian ? BinaryPrimitives.ReadUInt16BigEndian(span) : BinaryPrimitives.ReadUInt16LittleEndian(span),
            4 => f.BigEndian ? BinaryPrimitives.ReadUInt32BigEndian(span) : BinaryPrimitives.ReadUInt32LittleEndian(span),
            _ => f.BigEndian ? BinaryPrimitives.ReadUInt64BigEndian(span) : BinaryPrimitives.ReadUInt64LittleEndian(span),
        };
        ulong value = rng.Next(4) switch
        {
            0 => old + 1,
            1 => old - 1,
            2 => old * 2 + (ulong)rng.Next(1 << 20),
            _ => Pick(Extremes),
        };
        switch (f.Width)
        {
            case 1: span[0] = (byte)value; break;
            case 2: if (f.BigEndian) BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)value); else BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)value); break;
            case 4: if (f.BigEndian) BinaryPrimitives.WriteUInt32BigEndian(span, (uint)value); else BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value); break;
            default: if (f.BigEndian) BinaryPrimitives.WriteUInt64BigEndian(span, value); else BinaryPrimitives.WriteUInt64LittleEndian(span, value); break;
        }
        return output;
    }

    // ---- JSON ----

    /// <summary>
    /// One JSON-aware mutation of a document's text: a value replaced by one of another type or an extreme number,
    /// a member removed or repeated, a value buried in deep nesting, or a long string. Falls back to byte damage
    /// when the text is not JSON.
    /// </summary>
    public string Json(string text)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { return Encoding.UTF8.GetString(Bytes(Encoding.UTF8.GetBytes(text))); }
        if (root is null) return text;
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        var target = Pick(nodes);
        switch (rng.Next(6))
        {
            case 0:
            case 1:
                return Replace(root, target, WrongType(target));
            case 2:
                return Replace(root, target, JsonNode.Parse(Pick(JsonExtremes)));
            case 3:
                if (target.Parent is JsonObject o && target.GetPropertyName() is var name)
                {
                    if (rng.Next(2) == 0) { o.Remove(name); return root.ToJsonString(); }
                    // A repeated member: JsonNode refuses to hold one, so it goes in as text.
                    var member = $"{JsonSerializer.Serialize(name)}:{target.ToJsonString()}";
                    var objectText = o.ToJsonString();
                    var doubled = objectText.Length > 2 ? $"{{{member},{objectText[1..]}" : $"{{{member},{member}}}";
                    return Replace(root, o, null, doubled);
                }
                return Replace(root, target, WrongType(target));
            case 4:
            {
                int depth = Pick(new[] { 65, 257, 1000, 100_000 });
                bool arrays = rng.Next(2) == 0;
                var open = arrays ? "[" : "{\"a\":";
                var close = arrays ? "]" : "}";
                var deep = new StringBuilder();
                for (int i = 0; i < depth; i++) deep.Append(open);
                deep.Append(target.ToJsonString());
                for (int i = 0; i < depth; i++) deep.Append(close);
                return Replace(root, target, null, deep.ToString());
            }
            default:
                return Replace(root, target, JsonValue.Create(new string(Pick(new[] { 'x', 'é', '\0', '{' }), Pick(new[] { 1 << 10, 1 << 16, 1 << 20 }))));
        }
    }

    JsonNode? WrongType(JsonNode node) => rng.Next(7) switch
    {
        0 => JsonValue.Create(node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? "42" : "x"),
        1 => JsonNode.Parse(Pick(JsonExtremes)),
        2 => new JsonArray(),
        3 => new JsonArray(JsonValue.Create(1), JsonValue.Create("x"), null),
        4 => new JsonObject(),
        5 => JsonValue.Create(rng.Next(2) == 0),
        _ => null,
    };

    static void Collect(JsonNode node, List<JsonNode> nodes)
    {
        nodes.Add(node);
        switch (node)
        {
            case JsonObject o:
                foreach (var (_, v) in o) if (v is not null) Collect(v, nodes);
                break;
            case JsonArray a:
                foreach (var v in a) if (v is not null) Collect(v, nodes);
                break;
        }
    }

    /// <summary>The document with <paramref name="target"/> replaced by <paramref name="value"/>, or by raw JSON text.</summary>
    static string Replace(JsonNode root, JsonNode target, JsonNode? value, string? raw = null)
    {
        const string Marker = "\u0001mutation\u0001";
        var replacement = raw is null ? value?.ToJsonString() ?? "null" : raw;
        if (target == root) return replacement;
        var placeholder = JsonValue.Create(Marker);
        switch (target.Parent)
        {
            case JsonObject o: o[target.GetPropertyName()] = placeholder; break;
            case JsonArray a: a[target.GetElementIndex()] = placeholder; break;
        }
        return root.ToJsonString().Replace(JsonSerializer.Serialize(Marker), replacement);
    }
}
