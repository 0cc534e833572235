using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Attune.Text;

/// <summary>A tokenizer.json <c>decoder</c>: turns token strings back into text.</summary>
public abstract class Decoder
{
    /// <summary>Transforms the list of token strings in place (a decoder may fuse them into one).</summary>
    public abstract void Decode(List<string> tokens);

    internal static Decoder? FromJson(JsonElement e, TokenizerJson j, string field)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        var type = j.Type(e, field);
        return type switch
        {
            "ByteLevel" => new ByteLevelDecoder(),
            "Metaspace" => new MetaspaceDecoder(j.String(e, "replacement", field, "▁"), PreTokenizer.MetaspaceScheme(e, j, field)),
            "Replace" => new ReplaceDecoder(j.Pattern(e, field), j.String(e, "content", field)),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => new StripDecoder(j.String(e, "content", field), j.Int(e, "start", field, 0), j.Int(e, "stop", field, 0)),
            "Sequence" => new SequenceDecoder(j.Array(e, "decoders", field).EnumerateArray()
                .Select((x, i) => FromJson(x, j, $"{field}.decoders[{i}]")).OfType<Decoder>().ToArray()),
            _ => throw j.Error($"{field}.type", $"decoder \"{type}\" is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)"),
        };
    }
}

/// <summary>
/// Maps GPT-2 byte characters back to bytes and decodes the whole as UTF-8, invalid sequences
/// becoming U+FFFD. A token with a character outside the byte alphabet (an added token such as
/// <c>&lt;|im_start|&gt;</c> with a space) contributes its own UTF-8 bytes.
/// </summary>
public sealed class ByteLevelDecoder : Decoder
{
    public override void Decode(List<string> tokens)
    {
        var bytes = new ArrayBufferWriter<byte>();
        Span<byte> one = stackalloc byte[1];
        foreach (var t in tokens)
        {
            bool mapped = true;
            foreach (var c in t)
                if (ByteLevel.CharToByte(c) < 0) { mapped = false; break; }
            if (mapped)
            {
                var dst = bytes.GetSpan(t.Length);
                for (int i = 0; i < t.Length; i++) dst[i] = (byte)ByteLevel.CharToByte(t[i]);
                bytes.Advance(t.Length);
            }
            else
            {
                var n = Encoding.UTF8.GetByteCount(t);
                Encoding.UTF8.GetBytes(t, bytes.GetSpan(n));
                bytes.Advance(n);
            }
        }
        tokens.Clear();
        tokens.Add(Encoding.UTF8.GetString(bytes.WrittenSpan));
    }
}

public sealed class MetaspaceDecoder(string replacement, string prependScheme) : Decoder
{
    public override void Decode(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i].Replace(replacement, " ", StringComparison.Ordinal);
            if (i == 0 && prependScheme != "never" && t.StartsWith(' ')) t = t[1..];
            tokens[i] = t;
        }
    }
}

public sealed class ReplaceDecoder(Pattern pattern, string content) : Decoder
{
    public override void Decode(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++) tokens[i] = pattern.Replace(tokens[i], content);
    }
}

/// <summary>
/// Joins runs of <c>&lt;0xXX&gt;</c> tokens into the text their bytes spell; a run that is not
/// valid UTF-8 becomes one U+FFFD per byte, as the reference does.
/// </summary>
public sealed class ByteFallbackDecoder : Decoder
{
    public override void Decode(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var run = new List<byte>();
        void Flush()
        {
            if (run.Count == 0) return;
            try { output.Add(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(run.ToArray())); }
            catch (DecoderFallbackException) { output.Add(new string('\uFFFD', run.Count)); }
            run.Clear();
        }
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
                run.Add(b);
            else
            {
                Flush();
                output.Add(t);
            }
        }
        Flush();
        tokens.Clear();
        tokens.AddRange(output);
    }
}

public sealed class FuseDecoder : Decoder
{
    public override void Decode(List<string> tokens)
    {
        var all = string.Concat(tokens);
        tokens.Clear();
        tokens.Add(all);
    }
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters from each token.</summary>
public sealed class StripDecoder(string content, int start, int stop) : Decoder
{
    public override void Decode(List<string> tokens)
    {
        if (content.Length != 1) return;
        char c = content[0];
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            int a = 0, b = t.Length;
            while (a < start && a < b && t[a] == c) a++;
            int cut = 0;
            while (cut < stop && b > a && t[b - 1] == c) { b--; cut++; }
            tokens[i] = t[a..b];
        }
    }
}

public sealed class SequenceDecoder(Decoder[] steps) : Decoder
{
    public override void Decode(List<string> tokens)
    {
        foreach (var d in steps) d.Decode(tokens);
    }
}
