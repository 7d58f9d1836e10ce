using System.Buffers;
using System.IO.Hashing;
using System.Runtime.InteropServices;

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
    private readonly int[] _previous;
    private readonly int[] _next;
    private int _used;
    private int _freeList = -1;
    private int _head = -1;
    private int _tail = -1;

    public PrefixBlockTable(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _slots = new Dictionary<ulong, int>(capacity);
        _keys = new ulong[capacity];
        _previous = new int[capacity];
        _next = new int[capacity];
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
                    Unlink(slot);
                }
                else
                {
                    slot = Allocate();
                    _keys[slot] = keys[i];
                    _slots[keys[i]] = slot;
                }
                PushFront(slot);
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
            _freeList = -1;
            _head = _tail = -1;
        }
    }

    private int Allocate()
    {
        if (_freeList >= 0)
        {
            var free = _freeList;
            _freeList = _next[free];
            return free;
        }
        if (_used < Capacity)
        {
            return _used++;
        }
        var oldest = _tail;
        Unlink(oldest);
        _slots.Remove(_keys[oldest]);
        return oldest;
    }

    private void PushFront(int slot)
    {
        _previous[slot] = -1;
        _next[slot] = _head;
        if (_head >= 0)
        {
            _previous[_head] = slot;
        }
        _head = slot;
        if (_tail < 0)
        {
            _tail = slot;
        }
    }

    private void Unlink(int slot)
    {
        var previous = _previous[slot];
        var next = _next[slot];
        if (previous >= 0)
        {
            _next[previous] = next;
        }
        else
        {
            _head = next;
        }
        if (next >= 0)
        {
            _previous[next] = previous;
        }
        else
        {
            _tail = previous;
        }
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
