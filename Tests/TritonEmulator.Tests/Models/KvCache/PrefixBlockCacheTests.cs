using TritonEmulator.Models.KvCache;

namespace TritonEmulator.Tests.Models.KvCache;

/// <summary>The block-hashed prefix KV cache: chained keys, exact block-prefix reuse, LRU eviction.</summary>
public sealed class PrefixBlockCacheTests
{
    private const int Block = 4;

    private static uint[] Tokens(params uint[][] blocks) => [.. blocks.SelectMany(static b => b)];

    private static uint[] B(uint start) => [start, start + 1, start + 2, start + 3];

    [Fact]
    public void SamePrompt_SecondTime_ReusesEveryFullBlockButTheLastTokensOne()
    {
        var cache = new PrefixBlockCache(64, Block);
        var prompt = Tokens(B(10), B(20), B(30)); // 12 tokens: 3 full blocks, the last token in block 2

        Assert.Equal(0, cache.MatchAndInsert(prompt));
        Assert.Equal(2, cache.MatchAndInsert(prompt)); // block 2 holds the last token: computed again
        Assert.Equal(3, cache.MatchAndInsert([.. prompt, 99])); // one more token: all three blocks reused
    }

    [Fact]
    public void Keys_AreChained_SoAnEqualBlockAfterADifferentPrefixIsNoHit()
    {
        var cache = new PrefixBlockCache(64, Block);
        cache.MatchAndInsert(Tokens(B(10), B(20), B(30), [1]));

        // Block 1 and 2 are the same tokens, but block 0 differs: nothing matches.
        Assert.Equal(0, cache.Peek(Tokens(B(11), B(20), B(30), [1])));
        // Only the exact block prefix: a difference in block 1 stops the match at 1.
        Assert.Equal(1, cache.Peek(Tokens(B(10), B(21), B(30), [1])));
        // A partial block never counts.
        Assert.Equal(2, cache.Peek(Tokens(B(10), B(20), [30, 31, 32])));

        Span<ulong> a = stackalloc ulong[3];
        Span<ulong> b = stackalloc ulong[3];
        PrefixBlockCache.BlockKeys(Tokens(B(10), B(20), B(30)), Block, a);
        PrefixBlockCache.BlockKeys(Tokens(B(11), B(20), B(30)), Block, b);
        Assert.NotEqual(a[1], b[1]);
        Assert.NotEqual(a[2], b[2]);
    }

    [Fact]
    public void Full_EvictsTheLeastRecentlyUsedBlock_AndALookupRefreshesAPrefix()
    {
        var cache = new PrefixBlockCache(4, Block);
        var first = Tokens(B(10), B(20), [1]);
        var second = Tokens(B(30), B(40), [1]);
        cache.MatchAndInsert(first);
        cache.MatchAndInsert(second);
        Assert.Equal(4, cache.Count);

        Assert.Equal(2, cache.MatchAndInsert(first)); // first is now the most recent
        cache.MatchAndInsert(Tokens(B(50), [1])); // needs one block: second's tail goes first

        Assert.Equal(1, cache.Evictions);
        Assert.Equal(2, cache.Peek(first));
        Assert.Equal(1, cache.Peek(second)); // its head block stays; its tail was the oldest
        Assert.Equal(1, cache.Peek(Tokens(B(50), [1])));
    }

    [Fact]
    public void Trim_GivesBlocksBackToRunningSequences_OldestFirst()
    {
        var cache = new PrefixBlockCache(8, Block);
        var old = Tokens(B(10), B(20), [1]);
        var recent = Tokens(B(30), B(40), [1]);
        cache.MatchAndInsert(old);
        cache.MatchAndInsert(recent);

        cache.Trim(2);

        Assert.Equal(2, cache.Count);
        Assert.Equal(0, cache.Peek(old));
        Assert.Equal(2, cache.Peek(recent));
        cache.Trim(0);
        Assert.Equal(0, cache.Peek(recent));
    }

    [Fact]
    public void PromptShorterThanABlock_NeverHits()
    {
        var cache = new PrefixBlockCache(8, Block);
        Assert.Equal(0, cache.MatchAndInsert([1, 2, 3]));
        Assert.Equal(0, cache.MatchAndInsert([1, 2, 3]));
        Assert.Equal(0, cache.Count);
    }
}
