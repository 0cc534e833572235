using System.Runtime.CompilerServices;
using Attune.Formats;
using Attune.Tensors;

namespace Attune.Modeling;

/// <summary>
/// The keys and values of one sequence for every layer, in f32 or (<see cref="Bf16"/>) in bf16, half the bytes for
/// attention to read; attention widens them to f32 and accumulates in f32 either way. Keys are stored transposed per
/// KV head, <c>[head][dim][position]</c>, so attention scores for many positions accumulate in one vector without
/// horizontal sums; values are <c>[head][position][dim]</c>. <see cref="Length"/> positions are filled. A cache can be
/// forked so that sequences sharing a prefix (few-shot prompts, multiple-choice contexts) compute it once.
/// </summary>
public sealed class KvCache
{
    // One of the two pairs is used: f32 storage, or bf16 bits.
    float[][] _k = [], _v = [];
    ushort[][] _kb = [], _vb = [];

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; private set; }
    public int Length { get; internal set; }

    /// <summary>Whether keys and values are held in bf16 (rounded to nearest even when written).</summary>
    public bool Bf16 { get; }

    public KvCache(ModelConfig c, int capacity, bool bf16 = false)
    {
        Layers = c.NumLayers;
        KvHeads = c.NumKvHeads;
        HeadDim = c.HeadDim;
        Bf16 = bf16;
        Capacity = Math.Max(1, capacity);
        Allocate(Capacity);
    }

    KvCache(KvCache other, int capacity)
    {
        Layers = other.Layers;
        KvHeads = other.KvHeads;
        HeadDim = other.HeadDim;
        Bf16 = other.Bf16;
        Capacity = Math.Max(Math.Max(1, capacity), other.Length);
        Allocate(Capacity);
        Length = other.Length;
        CopyFrom(other, other.Capacity);
    }

    void Allocate(int capacity)
    {
        int n = KvHeads * HeadDim * capacity;
        if (Bf16)
        {
            _kb = new ushort[Layers][];
            _vb = new ushort[Layers][];
            for (int l = 0; l < Layers; l++)
            {
                _kb[l] = GC.AllocateUninitializedArray<ushort>(n, pinned: true);
                _vb[l] = GC.AllocateUninitializedArray<ushort>(n, pinned: true);
            }
        }
        else
        {
            _k = new float[Layers][];
            _v = new float[Layers][];
            for (int l = 0; l < Layers; l++)
            {
                _k[l] = GC.AllocateUninitializedArray<float>(n, pinned: true);
                _v[l] = GC.AllocateUninitializedArray<float>(n, pinned: true);
            }
        }
    }

    /// <summary>Copies the filled positions of <paramref name="from"/>'s storage (laid out for <paramref name="fromCapacity"/>) into this one.</summary>
    void CopyFrom(KvCache from, int fromCapacity)
    {
        if (Bf16) CopyFrom(from._kb, from._vb, _kb, _vb, fromCapacity);
        else CopyFrom(from._k, from._v, _k, _v, fromCapacity);
    }

    void CopyFrom<T>(T[][] k, T[][] v, T[][] toK, T[][] toV, int fromCapacity)
    {
        for (int l = 0; l < Layers; l++)
            for (int h = 0; h < KvHeads; h++)
            {
                for (int d = 0; d < HeadDim; d++)
                    Array.Copy(k[l], (h * HeadDim + d) * fromCapacity, toK[l], (h * HeadDim + d) * Capacity, Length);
                Array.Copy(v[l], h * fromCapacity * HeadDim, toV[l], h * Capacity * HeadDim, Length * HeadDim);
            }
    }

    /// <summary>A copy of this cache's filled prefix with room for <paramref name="capacity"/> positions.</summary>
    public KvCache Fork(int capacity) => new(this, capacity);

    /// <summary>Makes this cache hold the first <paramref name="length"/> positions of <paramref name="source"/> (a fork into storage it already has).</summary>
    public void CopyPrefix(KvCache source, int length)
    {
        if (source.Layers != Layers || source.KvHeads != KvHeads || source.HeadDim != HeadDim || source.Bf16 != Bf16) throw new ArgumentException("the caches are of different models or precisions");
        if (length < 0 || length > source.Length) throw new ArgumentOutOfRangeException(nameof(length));
        Length = 0;
        Reserve(length);
        Length = length;
        CopyFrom(source, source.Capacity);
    }

    /// <summary>Forgets positions from <paramref name="length"/> on (to re-run a continuation after a shared prefix).</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
    }

    /// <summary>Grows the capacity, keeping the filled positions. Pointers from before a growth are stale.</summary>
    public void Reserve(int capacity)
    {
        if (capacity <= Capacity) return;
        var (k, v, kb, vb, oldCapacity) = (_k, _v, _kb, _vb, Capacity);
        Capacity = Math.Max(capacity, Capacity * 2);
        Allocate(Capacity);
        if (Bf16) CopyFrom(kb, vb, _kb, _vb, oldCapacity);
        else CopyFrom(k, v, _k, _v, oldCapacity);
    }

    /// <summary>Stores position <paramref name="pos"/>'s keys and values (all KV heads, head-major) for one layer.</summary>
    internal unsafe void Write(int layer, int pos, float* k, float* v)
    {
        for (int h = 0; h < KvHeads; h++)
        {
            if (Bf16)
            {
                ushort* kBase = KeysBf16(layer, h), values = ValuesBf16(layer, h) + (long)pos * HeadDim;
                for (int d = 0; d < HeadDim; d++)
                {
                    kBase[d * Capacity + pos] = BFloat16.FromSingle(k[h * HeadDim + d]);
                    values[d] = BFloat16.FromSingle(v[h * HeadDim + d]);
                }
            }
            else
            {
                float* kBase = Keys(layer, h);
                for (int d = 0; d < HeadDim; d++) kBase[d * Capacity + pos] = k[h * HeadDim + d];
                new ReadOnlySpan<float>(v + h * HeadDim, HeadDim).CopyTo(new Span<float>(Values(layer, h) + (long)pos * HeadDim, HeadDim));
            }
        }
    }

    /// <summary>Row <c>[dim 0][position 0]</c> of a head's transposed f32 keys; dimension d starts <c>d · Capacity</c> further.</summary>
    internal unsafe float* Keys(int layer, int head) => (float*)Unsafe.AsPointer(ref _k[layer][head * HeadDim * Capacity]);

    /// <summary>Position 0 of a head's f32 values; position p starts <c>p · HeadDim</c> further.</summary>
    internal unsafe float* Values(int layer, int head) => (float*)Unsafe.AsPointer(ref _v[layer][head * Capacity * HeadDim]);

    /// <summary><see cref="Keys"/> of a bf16 cache.</summary>
    internal unsafe ushort* KeysBf16(int layer, int head) => (ushort*)Unsafe.AsPointer(ref _kb[layer][head * HeadDim * Capacity]);

    /// <summary><see cref="Values"/> of a bf16 cache.</summary>
    internal unsafe ushort* ValuesBf16(int layer, int head) => (ushort*)Unsafe.AsPointer(ref _vb[layer][head * Capacity * HeadDim]);

    /// <summary>A head's keys wherever they are held (f32 or bf16 bits, by <see cref="Bf16"/>).</summary>
    internal unsafe void* KeyStorage(int layer, int head) => Bf16 ? KeysBf16(layer, head) : Keys(layer, head);

    /// <summary>A head's values wherever they are held.</summary>
    internal unsafe void* ValueStorage(int layer, int head) => Bf16 ? ValuesBf16(layer, head) : Values(layer, head);

    /// <summary>Bytes held.</summary>
    public long Bytes => 2L * Layers * KvHeads * HeadDim * Capacity * (Bf16 ? sizeof(ushort) : sizeof(float));
}
