namespace Attune.Text;

/// <summary>An entry of tokenizer.json's <c>added_tokens</c>.</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord, bool Normalized);

/// <summary>
/// Finds added tokens in text before the model sees it. Tokens with <c>normalized: false</c> are
/// matched in the raw text, the others in the normalized text; the leftmost match wins, and of
/// those starting at one place the longest. A match may swallow whitespace around it
/// (<c>lstrip</c>/<c>rstrip</c>) and may be required to stand alone as a word (<c>single_word</c>).
/// </summary>
public sealed class AddedVocabulary
{
    readonly Matcher _raw;
    readonly Matcher _normalized;

    public IReadOnlyList<AddedToken> Tokens { get; }

    public AddedVocabulary(IReadOnlyList<AddedToken> tokens)
    {
        Tokens = tokens;
        _raw = new Matcher(tokens.Where(t => !t.Normalized));
        _normalized = new Matcher(tokens.Where(t => t.Normalized));
    }

    public bool HasRaw => _raw.Count > 0;
    public bool HasNormalized => _normalized.Count > 0;

    /// <summary>Splits text into (text, null) runs and (matched text, token) hits.</summary>
    public void SplitRaw(string text, List<(int Start, int Length, AddedToken? Token)> output) => _raw.Split(text, output);

    public void SplitNormalized(string text, List<(int Start, int Length, AddedToken? Token)> output) => _normalized.Split(text, output);

    /// <summary>A trie over the tokens' characters: the longest match at a position costs its length.</summary>
    sealed class Matcher
    {
        /// <summary>Edges keyed by (node, character); node 0 is the root.</summary>
        readonly Dictionary<long, int> _edges = [];
        readonly List<AddedToken?> _terminal = [null];
        readonly bool[] _isFirstAscii = new bool[128];

        public int Count { get; }

        public Matcher(IEnumerable<AddedToken> tokens)
        {
            foreach (var t in tokens)
            {
                if (t.Content.Length == 0) continue;
                Count++;
                int node = 0;
                foreach (var c in t.Content)
                {
                    long key = ((long)node << 16) | c;
                    if (!_edges.TryGetValue(key, out var child))
                    {
                        child = _terminal.Count;
                        _terminal.Add(null);
                        _edges[key] = child;
                    }
                    node = child;
                }
                _terminal[node] ??= t; // the first entry of a repeated content wins
                if (t.Content[0] < 128) _isFirstAscii[t.Content[0]] = true;
            }
        }

        /// <summary>The longest token starting at <paramref name="i"/>, or null.</summary>
        AddedToken? LongestAt(string text, int i)
        {
            char c = text[i];
            if (c < 128 && !_isFirstAscii[c]) return null;
            AddedToken? best = null;
            int node = 0;
            for (int j = i; j < text.Length; j++)
            {
                if (!_edges.TryGetValue(((long)node << 16) | text[j], out node)) break;
                if (_terminal[node] is { } t) best = t;
            }
            return best;
        }

        public void Split(string text, List<(int, int, AddedToken?)> output)
        {
            if (Count == 0)
            {
                output.Add((0, text.Length, null));
                return;
            }
            int runStart = 0;
            int i = 0;
            while (i < text.Length)
            {
                var hit = LongestAt(text, i);
                if (hit is null)
                {
                    i++;
                    continue;
                }
                int start = i, stop = i + hit.Content.Length;
                if (hit.SingleWord && !StandsAlone(text, start, stop))
                {
                    i = stop;
                    continue;
                }
                if (hit.LStrip)
                    while (start > runStart && char.IsWhiteSpace(text[start - 1])) start--;
                if (hit.RStrip)
                    while (stop < text.Length && char.IsWhiteSpace(text[stop])) stop++;
                if (start > runStart) output.Add((runStart, start - runStart, null));
                output.Add((start, stop - start, hit));
                runStart = i = stop;
            }
            if (runStart < text.Length) output.Add((runStart, text.Length - runStart, null));
        }

        static bool StandsAlone(string text, int start, int stop)
        {
            static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
            return (start == 0 || !IsWordChar(text[start - 1])) && (stop == text.Length || !IsWordChar(text[stop]));
        }
    }
}
