using Gateway.Grpc.Collections;

namespace TritonEmulator.Models.KvCache;

/// <summary>
/// The reusable prompt blocks of a paged KV cache, as TensorRT-LLM's block manager (with
/// <c>enable_kv_cache_reuse</c>) and vLLM's automatic prefix caching keep them: a prompt is cut into
/// full blocks of <c>tokens_per_block</c> tokens; each block is keyed by a hash chained over the
/// previous block's key and its own tokens, so a key names the whole prefix up to the block's end and
/// a request reuses only an exact block prefix (the first block that differs ends the match). The last
/// prompt token is always computed again (the engine needs its logits), so a prompt never reuses its
/// last token's block. Blocks are kept in least-recently-used order: a lookup touches the matched
/// blocks tail first, so a prefix's first block is the newest and its tails are evicted before it;
/// when the cache needs room (a new block, or <see cref="Trim"/> when running sequences need the
/// blocks) the least recently used one goes. Thread-safe; memory bounded by the capacity.
/// </summary>
internal sealed class PrefixBlockCache
{
    private const ulong Seed = 0x9E3779B97F4A7C15UL;

    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, int> _slots;
    private readonly ulong[] _keys;
    private readonly LruOrder _order;
    private readonly Stack<int> _free;
    private long _evictions;

    public PrefixBlockCache(int capacityBlocks, int tokensPerBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokensPerBlock, 1);
        Capacity = capacityBlocks;
        TokensPerBlock = tokensPerBlock;
        _slots = new Dictionary<ulong, int>(capacityBlocks);
        _keys = new ulong[capacityBlocks];
        _order = new LruOrder(capacityBlocks);
        _free = new Stack<int>(capacityBlocks);
        for (var i = capacityBlocks - 1; i >= 0; i--)
        {
            _free.Push(i);
        }
    }

    public int Capacity { get; }

    public int TokensPerBlock { get; }

    /// <summary>Blocks held now.</summary>
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

    /// <summary>Blocks evicted since the start.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>The key of each full block of <paramref name="tokens"/>, chained (block i's key covers blocks 0..i).</summary>
    public static int BlockKeys(ReadOnlySpan<uint> tokens, int tokensPerBlock, Span<ulong> keys)
    {
        var blocks = Math.Min(tokens.Length / tokensPerBlock, keys.Length);
        var key = Seed;
        for (var b = 0; b < blocks; b++)
        {
            key = Chain(key, tokens.Slice(b * tokensPerBlock, tokensPerBlock));
            keys[b] = key;
        }
        return blocks;
    }

    /// <summary>One link of the chain: the previous block's key and this block's tokens (64-bit FNV-1a, then a SplitMix finaliser).</summary>
    public static ulong Chain(ulong previous, ReadOnlySpan<uint> block)
    {
        var hash = 14695981039346656037UL ^ previous;
        foreach (var token in block)
        {
            hash = (hash ^ token) * 1099511628211UL;
        }
        hash ^= hash >> 30;
        hash *= 0xBF58476D1CE4E5B9UL;
        hash ^= hash >> 27;
        hash *= 0x94D049BB133111EBUL;
        return hash ^ (hash >> 31);
    }

    /// <summary>
    /// What a new request with <paramref name="prompt"/> finds: the number of its leading full blocks
    /// already cached (never the block of its last token), touched as most recently used; then every
    /// full block of the prompt is cached, so the next request with the same prefix reuses them.
    /// </summary>
    public int MatchAndInsert(ReadOnlySpan<uint> prompt)
    {
        var blocks = prompt.Length / TokensPerBlock;
        if (blocks == 0)
        {
            return 0;
        }
        var reusable = (prompt.Length - 1) / TokensPerBlock;
        Span<ulong> keys = blocks <= 512 ? stackalloc ulong[blocks] : new ulong[blocks];
        BlockKeys(prompt, TokensPerBlock, keys);
        lock (_gate)
        {
            var matched = 0;
            while (matched < reusable && _slots.ContainsKey(keys[matched]))
            {
                matched++;
            }
            // Newest first for the head of the prefix: insert / touch from the tail back to block 0.
            for (var b = blocks - 1; b >= 0; b--)
            {
                if (_slots.TryGetValue(keys[b], out var slot))
                {
                    _order.MoveToFront(slot);
                }
                else
                {
                    Add(keys[b]);
                }
            }
            return matched;
        }
    }

    /// <summary>The leading full blocks of <paramref name="prompt"/> cached now (no change to the cache).</summary>
    public int Peek(ReadOnlySpan<uint> prompt)
    {
        var reusable = (prompt.Length - 1) / TokensPerBlock;
        if (reusable <= 0)
        {
            return 0;
        }
        Span<ulong> keys = reusable <= 512 ? stackalloc ulong[reusable] : new ulong[reusable];
        BlockKeys(prompt, TokensPerBlock, keys);
        lock (_gate)
        {
            var matched = 0;
            while (matched < reusable && _slots.ContainsKey(keys[matched]))
            {
                matched++;
            }
            return matched;
        }
    }

    /// <summary>Evicts least recently used blocks until at most <paramref name="maxBlocks"/> remain (running sequences need the rest).</summary>
    public void Trim(int maxBlocks)
    {
        lock (_gate)
        {
            while (_slots.Count > Math.Max(0, maxBlocks))
            {
                EvictTail();
            }
        }
    }

    private void Add(ulong key)
    {
        if (_free.Count == 0)
        {
            EvictTail();
        }
        var slot = _free.Pop();
        _keys[slot] = key;
        _slots[key] = slot;
        _order.PushFront(slot);
    }

    private void EvictTail()
    {
        var slot = _order.Tail;
        _order.Unlink(slot);
        _slots.Remove(_keys[slot]);
        _free.Push(slot);
        _evictions++;
    }
}
