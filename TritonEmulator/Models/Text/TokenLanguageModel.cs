using System.Reflection;
using Microsoft.ML.Tokenizers;

namespace TritonEmulator.Models.Text;

/// <summary>
/// A token trigram model over the GPT-2 token ids of a small English text shipped with the engine
/// (<c>corpus.txt</c>, written for this project). Paragraph ends are followed by
/// <c>&lt;|endoftext|&gt;</c> (50256), so the model can end a text at a sentence end, rarely.
/// </summary>
internal sealed class TokenLanguageModel
{
    public const int EndOfText = 50256;

    private readonly Dictionary<long, Candidates> _trigrams;
    private readonly Dictionary<int, Candidates> _bigrams;
    private readonly Candidates _sentenceStarts;
    private readonly Candidates _unigrams;

    private TokenLanguageModel(Tokenizer tokenizer, Dictionary<long, Candidates> trigrams, Dictionary<int, Candidates> bigrams,
        Candidates sentenceStarts, Candidates unigrams)
    {
        Tokenizer = tokenizer;
        _trigrams = trigrams;
        _bigrams = bigrams;
        _sentenceStarts = sentenceStarts;
        _unigrams = unigrams;
    }

    /// <summary>GPT-2 byte-level BPE (the ids FasterTransformer's GPT/GPT-J models use).</summary>
    public Tokenizer Tokenizer { get; }

    public static TokenLanguageModel CreateDefault()
    {
        using var stream = typeof(TokenLanguageModel).Assembly.GetManifestResourceStream("TritonEmulator.Models.Text.corpus.txt")
            ?? throw new InvalidOperationException("the embedded corpus is missing");
        using var reader = new StreamReader(stream);
        return Build(TiktokenTokenizer.CreateForModel("gpt2"), reader.ReadToEnd());
    }

    public static TokenLanguageModel Build(Tokenizer tokenizer, string corpus)
    {
        var tokens = new List<int>();
        foreach (var paragraph in corpus.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            tokens.AddRange(tokenizer.EncodeToIds(paragraph.Replace('\n', ' ')));
            tokens.Add(EndOfText);
        }
        var trigramCounts = new Dictionary<long, Dictionary<int, int>>();
        var bigramCounts = new Dictionary<int, Dictionary<int, int>>();
        var unigramCounts = new Dictionary<int, int>();
        for (var i = 0; i < tokens.Count; i++)
        {
            Count(unigramCounts, tokens[i]);
            if (i >= 1)
            {
                Count(Get(bigramCounts, tokens[i - 1]), tokens[i]);
            }
            if (i >= 2)
            {
                Count(Get(trigramCounts, Key(tokens[i - 2], tokens[i - 1])), tokens[i]);
            }
        }
        var period = tokenizer.EncodeToIds(".")[0];
        // A context the corpus never saw backs off to "the start of a sentence": the words that follow
        // a period, but never the end of text (a paragraph's period is often followed by it, and an
        // unseen prompt must not end before its first word).
        var starts = new Dictionary<int, int>(bigramCounts.TryGetValue(period, out var afterPeriod) ? afterPeriod : unigramCounts);
        starts.Remove(EndOfText);
        var sentenceStarts = Candidates.From(starts);
        return new TokenLanguageModel(
            tokenizer,
            trigramCounts.ToDictionary(p => p.Key, p => Candidates.From(p.Value)),
            bigramCounts.ToDictionary(p => p.Key, p => Candidates.From(p.Value)),
            sentenceStarts,
            Candidates.From(unigramCounts));
    }

    /// <summary>The next-token candidates after <paramref name="sequence"/>, backing off trigram → bigram → sentence start.</summary>
    public Candidates Next(ReadOnlySpan<uint> sequence)
    {
        if (sequence.Length >= 2 && _trigrams.TryGetValue(Key((int)sequence[^2], (int)sequence[^1]), out var trigram))
        {
            return trigram;
        }
        if (sequence.Length >= 1 && _bigrams.TryGetValue((int)sequence[^1], out var bigram))
        {
            return bigram;
        }
        return _sentenceStarts;
    }

    /// <summary>Every token of the corpus (used when all context candidates are banned).</summary>
    public Candidates Unigrams => _unigrams;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    private static Dictionary<int, int> Get<TKey>(Dictionary<TKey, Dictionary<int, int>> map, TKey key) where TKey : notnull
    {
        if (!map.TryGetValue(key, out var inner))
        {
            inner = [];
            map[key] = inner;
        }
        return inner;
    }

    private static void Count(Dictionary<int, int> counts, int token) =>
        counts[token] = counts.TryGetValue(token, out var c) ? c + 1 : 1;

    /// <summary>Next tokens and their counts, most frequent first (ties by token id, for determinism).</summary>
    public sealed class Candidates(int[] tokens, float[] counts)
    {
        public int[] Tokens { get; } = tokens;
        public float[] Counts { get; } = counts;

        public static Candidates From(Dictionary<int, int> counts)
        {
            var pairs = counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key).ToArray();
            return new Candidates([.. pairs.Select(p => p.Key)], [.. pairs.Select(p => (float)p.Value)]);
        }
    }
}

/// <summary>SplitMix64: a small seeded generator whose sequence never changes between runtimes.</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A double in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>FNV-1a over token ids: the seed when a request gives none.</summary>
    public static ulong SeedFrom(ReadOnlySpan<uint> tokens)
    {
        var hash = 14695981039346656037UL;
        foreach (var token in tokens)
        {
            hash = (hash ^ token) * 1099511628211UL;
        }
        return hash;
    }
}
