using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;

namespace Attune.Text;

/// <summary>
/// Byte-pair encoding as Hugging Face's <c>BPE</c> model defines it. A word starts as one symbol
/// per character (per byte, for byte-level vocabularies); the adjacent pair with the lowest merge
/// rank is merged, leftmost first, until no pair has a merge. Characters missing from the vocabulary
/// become their UTF-8 bytes as <c>&lt;0xXX&gt;</c> tokens (<c>byte_fallback</c>) or the unknown token.
/// </summary>
public sealed class Bpe
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    /// <summary>(left id, right id) packed in a long → (rank, merged id).</summary>
    readonly Dictionary<long, (int Rank, int Id)> _merges;
    readonly int[] _byteFallbackIds = new int[256];
    readonly int[] _byteLevelIds = new int[256];
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    const int MaxCachedWordLength = 100;
    const char Metaspace = '\u2581';

    /// <summary>
    /// For SentencePiece-style vocabularies (words start with <c>▁</c>, and a whole line is one
    /// "word"): the characters that some token joins to a following <c>▁</c>. A boundary between
    /// any other character and <c>▁</c> can never be crossed by a merge, so long words are cut there
    /// and their pieces encoded (and cached) separately, with exactly the same result. Null when
    /// the vocabulary is not of that kind or the model's options make cutting unsafe.
    /// </summary>
    readonly HashSet<char>? _glueBeforeMetaspace;
    /// <summary>Whether a character outside the vocabulary (a byte-fallback or unknown token) may glue to <c>▁</c>.</summary>
    readonly bool _unknownGluesToMetaspace;
    const int MaxCacheEntries = 200_000;

    public int? UnkId { get; }
    public bool ByteFallback { get; }
    public bool FuseUnk { get; }
    /// <summary>A word that is itself in the vocabulary is emitted whole (Llama 3).</summary>
    public bool IgnoreMerges { get; }
    public string ContinuingSubwordPrefix { get; }
    public string EndOfWordSuffix { get; }
    public IReadOnlyDictionary<string, int> Vocab => _vocab;
    public int MergeCount => _merges.Count;

    public Bpe(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string? unkToken,
        bool byteFallback, bool fuseUnk, bool ignoreMerges, string? continuingSubwordPrefix, string? endOfWordSuffix,
        string source = "tokenizer.json")
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        ByteFallback = byteFallback;
        FuseUnk = fuseUnk;
        IgnoreMerges = ignoreMerges;
        ContinuingSubwordPrefix = continuingSubwordPrefix ?? "";
        EndOfWordSuffix = endOfWordSuffix ?? "";
        if (unkToken is not null)
        {
            if (!vocab.TryGetValue(unkToken, out var unk))
                throw new AttuneException(source, "model.unk_token", $"\"{unkToken}\" is not in the vocabulary");
            UnkId = unk;
        }

        _merges = new Dictionary<long, (int, int)>(merges.Count);
        int prefixLength = ContinuingSubwordPrefix.Length;
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            if (!vocab.TryGetValue(a, out var ida))
                throw new AttuneException(source, $"model.merges[{rank}]", $"token \"{a}\" is not in the vocabulary");
            if (!vocab.TryGetValue(b, out var idb))
                throw new AttuneException(source, $"model.merges[{rank}]", $"token \"{b}\" is not in the vocabulary");
            var merged = a + (prefixLength > 0 && b.StartsWith(ContinuingSubwordPrefix, StringComparison.Ordinal) ? b[prefixLength..] : b);
            if (!vocab.TryGetValue(merged, out var idm))
                throw new AttuneException(source, $"model.merges[{rank}]", $"merged token \"{merged}\" is not in the vocabulary");
            _merges.TryAdd(Pack(ida, idb), (rank, idm));
        }

        if (vocab.ContainsKey(Metaspace.ToString()) && !IgnoreMerges && ContinuingSubwordPrefix.Length == 0 && EndOfWordSuffix.Length == 0)
        {
            _glueBeforeMetaspace = [];
            foreach (var token in vocab.Keys)
                for (int k = token.IndexOf(Metaspace, 1); k > 0; k = k + 1 < token.Length ? token.IndexOf(Metaspace, k + 1) : -1)
                    if (token[k - 1] != Metaspace) _glueBeforeMetaspace.Add(token[k - 1]);
            // Byte-fallback tokens end with '>'; the unknown token with its own last character.
            _unknownGluesToMetaspace = _glueBeforeMetaspace.Contains('>')
                || (unkToken is { Length: > 0 } && _glueBeforeMetaspace.Contains(unkToken[^1]));
        }

        for (int b = 0; b < 256; b++)
        {
            _byteFallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
            _byteLevelIds[b] = vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out id) ? id : -1;
        }
    }

    static long Pack(int a, int b) => ((long)a << 32) | (uint)b;

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocabBySpan.TryGetValue(token, out id);

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    /// <param name="byteLevel">Map the word's UTF-8 bytes through <see cref="ByteLevel"/> first.</param>
    public void Tokenize(ReadOnlySpan<char> word, bool byteLevel, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (!byteLevel && _glueBeforeMetaspace is not null)
        {
            TokenizeInPieces(word, ids);
            return;
        }
        TokenizeWord(word, byteLevel, ids);
    }

    /// <summary>Cuts a long SentencePiece-style word before each <c>▁</c> that no merge can reach across.</summary>
    void TokenizeInPieces(ReadOnlySpan<char> word, List<int> ids)
    {
        int start = 0;
        for (int i = 1; i < word.Length; i++)
        {
            if (word[i] != Metaspace || word[i - 1] == Metaspace || _glueBeforeMetaspace!.Contains(word[i - 1])) continue;
            int len = char.IsLowSurrogate(word[i - 1]) && i >= 2 && char.IsHighSurrogate(word[i - 2]) ? 2 : 1;
            if (_unknownGluesToMetaspace && !_vocabBySpan.ContainsKey(word.Slice(i - len, len))) continue;
            TokenizeWord(word[start..i], byteLevel: false, ids);
            start = i;
        }
        TokenizeWord(word[start..], byteLevel: false, ids);
    }

    void TokenizeWord(ReadOnlySpan<char> word, bool byteLevel, List<int> ids)
    {
        bool cacheable = word.Length <= MaxCachedWordLength;
        if (cacheable && _cacheBySpan.TryGetValue(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var scratch = Scratch.Instance ??= new Scratch();
        int start = ids.Count;
        if (byteLevel) TokenizeByteLevel(word, scratch, ids);
        else TokenizeChars(word, scratch, ids);
        if (cacheable && _cache.Count < MaxCacheEntries)
            _cacheBySpan.TryAdd(word, CollectionsMarshal.AsSpan(ids)[start..].ToArray());
    }

    void TokenizeByteLevel(ReadOnlySpan<char> word, Scratch s, List<int> ids)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
        byte[]? rented = null;
        Span<byte> bytes = maxBytes <= 1024 ? stackalloc byte[maxBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            int n = Encoding.UTF8.GetBytes(word, bytes);
            bytes = bytes[..n];
            if (IgnoreMerges && TryWhole(bytes, ids)) return;
            s.Reset(n);
            foreach (var b in bytes)
            {
                int id = _byteLevelIds[b];
                if (id >= 0) s.Push(id);
                else PushUnknown(s);
            }
            Merge(s, ids);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    bool TryWhole(ReadOnlySpan<byte> bytes, List<int> ids)
    {
        char[]? rented = null;
        Span<char> mapped = bytes.Length <= 512 ? stackalloc char[bytes.Length] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        try
        {
            for (int i = 0; i < bytes.Length; i++) mapped[i] = ByteLevel.ByteToChar[bytes[i]];
            if (_vocabBySpan.TryGetValue(mapped[..bytes.Length], out var id))
            {
                ids.Add(id);
                return true;
            }
            return false;
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }

    void TokenizeChars(ReadOnlySpan<char> word, Scratch s, List<int> ids)
    {
        if (IgnoreMerges && ContinuingSubwordPrefix.Length == 0 && EndOfWordSuffix.Length == 0
            && _vocabBySpan.TryGetValue(word, out var whole))
        {
            ids.Add(whole);
            return;
        }
        s.Reset(word.Length * 4);
        Span<byte> utf8 = stackalloc byte[4];
        Span<char> piece = stackalloc char[2 + ContinuingSubwordPrefix.Length + EndOfWordSuffix.Length];
        for (int i = 0; i < word.Length;)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var ch = word.Slice(i, len);
            bool first = i == 0;
            i += len;
            bool last = i == word.Length;
            int id;
            bool found;
            if (ContinuingSubwordPrefix.Length == 0 && EndOfWordSuffix.Length == 0)
                found = _vocabBySpan.TryGetValue(ch, out id);
            else
            {
                int k = 0;
                if (!first) { ContinuingSubwordPrefix.AsSpan().CopyTo(piece); k += ContinuingSubwordPrefix.Length; }
                ch.CopyTo(piece[k..]); k += len;
                if (last) { EndOfWordSuffix.AsSpan().CopyTo(piece[k..]); k += EndOfWordSuffix.Length; }
                found = _vocabBySpan.TryGetValue(piece[..k], out id);
            }
            if (found)
            {
                s.Push(id);
                continue;
            }
            if (ByteFallback)
            {
                // Lone surrogates cannot be encoded; they fall back as U+FFFD's bytes.
                int n = System.Text.Rune.DecodeFromUtf16(ch, out var rune, out _) == OperationStatus.Done
                    ? rune.EncodeToUtf8(utf8) : System.Text.Rune.ReplacementChar.EncodeToUtf8(utf8);
                bool all = true;
                for (int b = 0; b < n; b++) all &= _byteFallbackIds[utf8[b]] >= 0;
                if (all)
                {
                    for (int b = 0; b < n; b++) s.Push(_byteFallbackIds[utf8[b]]);
                    continue;
                }
            }
            PushUnknown(s);
        }
        Merge(s, ids);
    }

    void PushUnknown(Scratch s)
    {
        if (UnkId is not int unk) return; // no unknown token: the character is dropped, as the reference does
        if (FuseUnk && s.Count > 0 && s.LastIsUnk) return;
        s.Push(unk);
        s.LastIsUnk = true;
    }

    /// <summary>Applies merges lowest rank first (leftmost on ties) with a heap over adjacent pairs.</summary>
    void Merge(Scratch s, List<int> ids)
    {
        int n = s.Count;
        var sym = s.Ids;
        var next = s.Next;
        var prev = s.Prev;
        var heap = s.Heap;
        heap.Clear();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(Pack(sym[i], sym[i + 1]), out var m))
                heap.Enqueue(i, ((long)m.Rank << 32) | (uint)i);

        while (heap.TryDequeue(out int pos, out long priority))
        {
            int right = next[pos];
            if (sym[pos] < 0 || right < 0) continue;
            if (!_merges.TryGetValue(Pack(sym[pos], sym[right]), out var m) || m.Rank != (int)(priority >> 32))
                continue; // stale entry: one side was merged since it was queued
            sym[pos] = m.Id;
            sym[right] = -1;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) prev[after] = pos;
            int before = prev[pos];
            if (before >= 0 && _merges.TryGetValue(Pack(sym[before], sym[pos]), out var mb))
                heap.Enqueue(before, ((long)mb.Rank << 32) | (uint)before);
            if (after >= 0 && _merges.TryGetValue(Pack(sym[pos], sym[after]), out var ma))
                heap.Enqueue(pos, ((long)ma.Rank << 32) | (uint)pos);
        }
        for (int i = 0; i >= 0 && i < n; i = next[i])
            ids.Add(sym[i]);
    }

    /// <summary>Per-thread symbol buffers, so encoding allocates nothing once warmed up.</summary>
    sealed class Scratch
    {
        [ThreadStatic] internal static Scratch? Instance;

        public int[] Ids = new int[256];
        public int[] Next = new int[256];
        public int[] Prev = new int[256];
        public readonly PriorityQueue<int, long> Heap = new();
        public int Count;
        public bool LastIsUnk;

        public void Reset(int capacity)
        {
            if (Ids.Length < capacity)
            {
                int size = Math.Max(capacity, Ids.Length * 2);
                Ids = new int[size];
                Next = new int[size];
                Prev = new int[size];
            }
            Count = 0;
            LastIsUnk = false;
        }

        public void Push(int id)
        {
            int i = Count++;
            Ids[i] = id;
            Prev[i] = i - 1;
            Next[i] = -1;
            if (i > 0) Next[i - 1] = i;
            LastIsUnk = false;
        }
    }
}
