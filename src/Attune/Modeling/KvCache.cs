using Attune.Formats;

namespace Attune.Modeling;

/// <summary>
/// The keys and values of one sequence for every layer, in f32: <c>[layer][position, kv_heads · head_dim]</c>.
/// <see cref="Length"/> positions are filled. A cache can be forked so that sequences sharing a
/// prefix (few-shot prompts, multiple-choice contexts) compute it once.
/// </summary>
public sealed class KvCache
{
    readonly float[][] _k;
    readonly float[][] _v;

    public int Layers { get; }
    public int Width { get; }
    public int Capacity { get; private set; }
    public int Length { get; internal set; }

    public KvCache(ModelConfig c, int capacity)
    {
        Layers = c.NumLayers;
        Width = c.NumKvHeads * c.HeadDim;
        Capacity = Math.Max(1, capacity);
        _k = new float[Layers][];
        _v = new float[Layers][];
        for (int l = 0; l < Layers; l++)
        {
            _k[l] = GC.AllocateUninitializedArray<float>(Capacity * Width, pinned: true);
            _v[l] = GC.AllocateUninitializedArray<float>(Capacity * Width, pinned: true);
        }
    }

    KvCache(KvCache other, int capacity)
    {
        Layers = other.Layers;
        Width = other.Width;
        Capacity = Math.Max(capacity, other.Length);
        Length = other.Length;
        _k = new float[Layers][];
        _v = new float[Layers][];
        int used = other.Length * Width;
        for (int l = 0; l < Layers; l++)
        {
            _k[l] = GC.AllocateUninitializedArray<float>(Capacity * Width, pinned: true);
            _v[l] = GC.AllocateUninitializedArray<float>(Capacity * Width, pinned: true);
            Array.Copy(other._k[l], _k[l], used);
            Array.Copy(other._v[l], _v[l], used);
        }
    }

    /// <summary>A copy of this cache's filled prefix with room for <paramref name="capacity"/> positions.</summary>
    public KvCache Fork(int capacity) => new(this, capacity);

    /// <summary>Forgets positions from <paramref name="length"/> on (to re-run a continuation after a shared prefix).</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length));
        Length = length;
    }

    /// <summary>Grows the capacity, keeping the filled positions (arrays are pinned, so pointers stay valid between calls only).</summary>
    public void Reserve(int capacity)
    {
        if (capacity <= Capacity) return;
        int cap = Math.Max(capacity, Capacity * 2);
        for (int l = 0; l < Layers; l++)
        {
            var k = GC.AllocateUninitializedArray<float>(cap * Width, pinned: true);
            var v = GC.AllocateUninitializedArray<float>(cap * Width, pinned: true);
            Array.Copy(_k[l], k, Length * Width);
            Array.Copy(_v[l], v, Length * Width);
            _k[l] = k;
            _v[l] = v;
        }
        Capacity = cap;
    }

    internal unsafe float* Keys(int layer) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _k[layer][0]);
    internal unsafe float* Values(int layer) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _v[layer][0]);

    /// <summary>Bytes held.</summary>
    public long Bytes => 2L * Layers * Capacity * Width * sizeof(float);
}
