using System.Buffers;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Gateway.Grpc.Collections;

namespace Gateway.Routing;

/// <summary>
/// The prompt blocks this gateway recently sent to one replica, as chained block keys
/// (<see cref="PrefixKeys"/>): a bounded least-recently-used set whose memory is fixed at creation
/// (<c>capacity</c> keys, arrays and one pre-sized dictionary), whatever the traffic. A key is the
/// hash of its block and every block before it, so the longest run of leading keys found is the
/// longest prompt prefix the replica has probably cached. Recording touches a prompt's keys tail
/// first, so a shared head (a system prompt) stays newest and its tails are forgotten first.
/// </summary>
internal sealed class PrefixBlockTable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, int> _slots;
    private readonly ulong[] _keys;
    private readonly LruOrder _order;
    private int _used;

    public PrefixBlockTable(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _slots = new Dictionary<ulong, int>(capacity);
        _keys = new ulong[capacity];
        _order = new LruOrder(capacity);
    }

    public int Capacity { get; }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _slots.Count;
            }
        }
    }

    /// <summary>How many of <paramref name="keys"/>, from the first, are remembered (stops at the first one that is not).</summary>
    public int MatchLength(ReadOnlySpan<ulong> keys)
    {
        lock (_gate)
        {
            var matched = 0;
            while (matched < keys.Length && _slots.ContainsKey(keys[matched]))
            {
                matched++;
            }
            return matched;
        }
    }

    /// <summary>Remembers every key of a prompt just sent to the replica, evicting the least recently used when full.</summary>
    public void Record(ReadOnlySpan<ulong> keys)
    {
        lock (_gate)
        {
            for (var i = keys.Length - 1; i >= 0; i--)
            {
                if (_slots.TryGetValue(keys[i], out var slot))
                {
                    _order.MoveToFront(slot);
                    continue;
                }
                slot = Allocate();
                _keys[slot] = keys[i];
                _slots[keys[i]] = slot;
                _order.PushFront(slot);
            }
        }
    }

    /// <summary>Forgets everything (the replica left, restarted or broke its connection: its cache is gone).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _slots.Clear();
            _used = 0;
            _order.Clear();
        }
    }

    private int Allocate()
    {
        if (_used < Capacity)
        {
            return _used++;
        }
        var oldest = _order.Tail;
        _order.Unlink(oldest);
        _slots.Remove(_keys[oldest]);
        return oldest;
    }
}

/// <summary>
/// Chained block keys of a prompt's token ids, the way the engines key their prefix caches: full
/// blocks of <c>blockSize</c> tokens, each key the XXH3 hash of the block's tokens seeded by the previous key
/// (the first seeded by the Triton model's name, so two models never share keys). The last prompt
/// token's block is left out: the engine always computes that token again.
/// </summary>
internal static class PrefixKeys
{
    /// <summary>The keys of <paramref name="tokens"/> (empty when the prompt has no reusable full block).</summary>
    public static ulong[] Compute(IReadOnlyList<int> tokens, int blockSize, string model)
    {
        var blocks = (tokens.Count - 1) / blockSize;
        if (blocks <= 0)
        {
            return [];
        }
        int[]? rented = null;
        ReadOnlySpan<int> span;
        if (tokens is int[] array)
        {
            span = array;
        }
        else if (tokens is List<int> list)
        {
            span = CollectionsMarshal.AsSpan(list);
        }
        else
        {
            rented = ArrayPool<int>.Shared.Rent(blocks * blockSize);
            for (var i = 0; i < blocks * blockSize; i++)
            {
                rented[i] = tokens[i];
            }
            span = rented;
        }
        var keys = new ulong[blocks];
        var key = Seed(model);
        for (var b = 0; b < blocks; b++)
        {
            // XXH3 of the block's token bytes, seeded by the previous block's key: the chain.
            key = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(span.Slice(b * blockSize, blockSize)), unchecked((long)key));
            keys[b] = key;
        }
        if (rented is not null)
        {
            ArrayPool<int>.Shared.Return(rented);
        }
        return keys;
    }

    private static ulong Seed(string model)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in model)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }
        return Mix(hash);
    }

    internal static ulong Mix(ulong hash)
    {
        hash ^= hash >> 30;
        hash *= 0xBF58476D1CE4E5B9UL;
        hash ^= hash >> 27;
        hash *= 0x94D049BB133111EBUL;
        return hash ^ (hash >> 31);
    }
}
