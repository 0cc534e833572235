using System.Runtime.CompilerServices;
using Attune.Formats;

namespace Attune.Modeling;

/// <summary>
/// The keys and values of one sequence for every layer, in f32. Keys are stored transposed per KV
/// head, <c>[head][dim][position]</c>, so attention scores for many positions accumulate in one vector
/// without horizontal sums; values are <c>[head][position][dim]</c>. <see cref="Length"/> positions are
/// filled. A cache can be forked so that sequences sharing a prefix (few-shot prompts,
/// multiple-choice contexts) compute it once.
/// </summary>
public sealed class KvCache
{
    float[][] _k;
    float[][] _v;

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; private set; }
    public int Length { get; internal set; }

    public KvCache(ModelConfig c, int capacity)
    {
        Layers = c.NumLayers;
        KvHeads = c.NumKvHeads;
        HeadDim = c.HeadDim;
        Capacity = Math.Max(1, capacity);
        (_k, _v) = Allocate(Capacity);
    }

    KvCache(KvCache other, int capacity)
    {
        Layers = other.Layers;
        KvHeads = other.KvHeads;
        HeadDim = other.HeadDim;
        Capacity = Math.Max(Math.Max(1, capacity), other.Length);
        (_k, _v) = Allocate(Capacity);
        Length = other.Length;
        CopyFrom(other._k, other._v, other.Capacity);
    }

    (float[][], float[][]) Allocate(int capacity)
    {
        var k = new float[Layers][];
        var v = new float[Layers][];
        for (int l = 0; l < Layers; l++)
        {
            k[l] = GC.AllocateUninitializedArray<float>(KvHeads * HeadDim * capacity, pinned: true);
            v[l] = GC.AllocateUninitializedArray<float>(KvHeads * HeadDim * capacity, pinned: true);
        }
        return (k, v);
    }

    /// <summary>Copies the filled positions of another layout (with <paramref name="fromCapacity"/>) into this one.</summary>
    void CopyFrom(float[][] k, float[][] v, int fromCapacity)
    {
        for (int l = 0; l < Layers; l++)
            for (int h = 0; h < KvHeads; h++)
            {
                for (int d = 0; d < HeadDim; d++)
                    Array.Copy(k[l], (h * HeadDim + d) * fromCapacity, _k[l], (h * HeadDim + d) * Capacity, Length);
                Array.Copy(v[l], h * fromCapacity * HeadDim, _v[l], h * Capacity * HeadDim, Length * HeadDim);
            }
    }

    /// <summary>A copy of this cache's filled prefix with room for <paramref name="capacity"/> positions.</summary>
    public KvCache Fork(int capacity) => new(this, capacity);

    /// <summary>Makes this cache hold the first <paramref name="length"/> positions of <paramref name="source"/> (a fork into storage it already has).</summary>
    public void CopyPrefix(KvCache source, int length)
    {
        if (source.Layers != Layers || source.KvHeads != KvHeads || source.HeadDim != HeadDim) throw new ArgumentException("the caches are of different models");
        if (length < 0 || length > source.Length) throw new ArgumentOutOfRangeException(nameof(length));
        Length = 0;
        Reserve(length);
        Length = length;
        CopyFrom(source._k, source._v, source.Capacity);
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
        var (oldK, oldV, oldCapacity) = (_k, _v, Capacity);
        Capacity = Math.Max(capacity, Capacity * 2);
        (_k, _v) = Allocate(Capacity);
        CopyFrom(oldK, oldV, oldCapacity);
    }

    /// <summary>Stores position <paramref name="pos"/>'s keys and values (all KV heads, head-major) for one layer.</summary>
    internal unsafe void Write(int layer, int pos, float* k, float* v)
    {
        float* kBase = Keys(layer, 0);
        for (int h = 0; h < KvHeads; h++)
        {
            for (int d = 0; d < HeadDim; d++) kBase[(h * HeadDim + d) * Capacity + pos] = k[h * HeadDim + d];
            new ReadOnlySpan<float>(v + h * HeadDim, HeadDim).CopyTo(new Span<float>(Values(layer, h) + (long)pos * HeadDim, HeadDim));
        }
    }

    /// <summary>Row <c>[dim 0][position 0]</c> of a head's transposed keys; dimension d starts <c>d · Capacity</c> further.</summary>
    internal unsafe float* Keys(int layer, int head) => (float*)Unsafe.AsPointer(ref _k[layer][head * HeadDim * Capacity]);

    /// <summary>Position 0 of a head's values; position p starts <c>p · HeadDim</c> further.</summary>
    internal unsafe float* Values(int layer, int head) => (float*)Unsafe.AsPointer(ref _v[layer][head * Capacity * HeadDim]);

    /// <summary>Bytes held.</summary>
    public long Bytes => 2L * Layers * KvHeads * HeadDim * Capacity * sizeof(float);
}
