namespace Attune.Evaluation.Tasks;

/// <summary>
/// Python's <c>random.Random</c> for what the harness's few-shot sampler uses: seeding with an integer (MT19937's
/// init_by_array over the integer's 32-bit words) and <c>sample(population, k)</c> (its two strategies: a pool
/// for small populations, rejection from a set for large ones, with <c>_randbelow</c> by rejection over
/// <c>getrandbits</c>). The same seed draws the same examples, in the same order, as the harness.
/// </summary>
public sealed class PythonRandom
{
    const int N = 624, M = 397;
    readonly uint[] _mt = new uint[N];
    int _index = N + 1;

    public PythonRandom(ulong seed)
    {
        uint[] key = seed >> 32 == 0 ? [(uint)seed] : [(uint)seed, (uint)(seed >> 32)];
        InitByArray(key);
    }

    void InitGenrand(uint s)
    {
        _mt[0] = s;
        for (int i = 1; i < N; i++) _mt[i] = 1812433253u * (_mt[i - 1] ^ (_mt[i - 1] >> 30)) + (uint)i;
        _index = N;
    }

    void InitByArray(uint[] key)
    {
        InitGenrand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Length); k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++; j++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
            if (j >= key.Length) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
        }
        _mt[0] = 0x80000000u;
    }

    uint NextUInt32()
    {
        if (_index >= N)
        {
            for (int k = 0; k < N; k++)
            {
                uint y = (_mt[k] & 0x80000000u) | (_mt[(k + 1) % N] & 0x7fffffffu);
                _mt[k] = _mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908b0dfu : 0u);
            }
            _index = 0;
        }
        uint x = _mt[_index++];
        x ^= x >> 11;
        x ^= (x << 7) & 0x9d2c5680u;
        x ^= (x << 15) & 0xefc60000u;
        x ^= x >> 18;
        return x;
    }

    /// <summary><c>getrandbits(k)</c> for 1 ≤ k ≤ 32.</summary>
    uint GetRandBits(int k) => NextUInt32() >> (32 - k);

    /// <summary><c>_randbelow(n)</c>: uniform in [0, n), by rejection over the bit length of n.</summary>
    int RandBelow(int n)
    {
        int k = 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)n);
        uint r = GetRandBits(k);
        while (r >= (uint)n) r = GetRandBits(k);
        return (int)r;
    }

    /// <summary>The indices <c>random.sample(range(n), k)</c> picks, in its order.</summary>
    public int[] Sample(int n, int k)
    {
        if (k < 0 || k > n) throw new ArgumentOutOfRangeException(nameof(k), $"sample of {k} from {n}");
        var result = new int[k];
        int setsize = 21;
        if (k > 5) setsize += (int)Math.Pow(4, Math.Ceiling(Math.Log(k * 3) / Math.Log(4)));
        if (n <= setsize)
        {
            var pool = Enumerable.Range(0, n).ToArray();
            for (int i = 0; i < k; i++)
            {
                int j = RandBelow(n - i);
                result[i] = pool[j];
                pool[j] = pool[n - i - 1];
            }
        }
        else
        {
            var selected = new HashSet<int>();
            for (int i = 0; i < k; i++)
            {
                int j = RandBelow(n);
                while (!selected.Add(j)) j = RandBelow(n);
                result[i] = j;
            }
        }
        return result;
    }
}
