using System.Globalization;
using static TritonEmulator.Tests.Models.Vllm.TinyLlamaEngine;

namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>
/// vLLM's <c>enable_prefix_caching</c> on llama.cpp (<c>tiny_cached</c>: one sequence): a finished
/// request's KV cells stay, the next request sharing whole 16-token blocks of its prompt evaluates only
/// the rest, with the same tokens as a fresh evaluation; counted as vLLM counts it.
/// </summary>
public sealed class VllmPrefixCachingTests(TinyLlamaEngine engine) : IClassFixture<TinyLlamaEngine>
{
    private const string Greedy = """{"temperature": 0, "max_tokens": 5, "ignore_eos": true}""";
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz";

    private async Task<(double Queries, double Hits)> CountersAsync()
    {
        using var http = new HttpClient { BaseAddress = engine.MetricsAddress };
        var lines = (await http.GetStringAsync("/metrics")).Split('\n');
        double Value(string name) => lines.Where(l => l.StartsWith($"{name}{{model=\"{CachedModel}\",version=\"1\"}} ", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        return (Value("vllm:prefix_cache_queries_total"), Value("vllm:prefix_cache_hits_total"));
    }

    private async Task<(string Text, uint PromptTokens)> CompleteAsync(string model, string id, string prompt)
    {
        var messages = await engine.StreamAsync(Request(model, id, prompt, Greedy, ("exclude_input_in_output", true), ("return_num_input_tokens", true)));
        var response = Assert.Single(messages).InferResponse;
        return (Text(response, "text_output")!, UInt(response, "num_input_tokens")!.Value);
    }

    [Fact]
    public async Task SharedPrefix_ReusesWholeBlocks_SameTokensAsAFreshEvaluation_AndCountsQueriesAndHits()
    {
        var prompt = Alphabet + Alphabet[..14]; // 40 letters + BOS = 41 tokens: two whole blocks of 16 can be shared
        var before = await CountersAsync();

        var cold = await CompleteAsync(CachedModel, "cold", prompt);
        var afterCold = await CountersAsync();
        var warm = await CompleteAsync(CachedModel, "warm", prompt);
        var afterWarm = await CountersAsync();
        var fresh = await CompleteAsync(Model, "fresh", prompt); // no prefix caching
        var other = await CompleteAsync(CachedModel, "other", "z" + prompt); // the first block differs
        var afterOther = await CountersAsync();

        Assert.Equal(41u, cold.PromptTokens);
        Assert.Equal(fresh.Text, cold.Text);
        Assert.Equal(fresh.Text, warm.Text); // the reused KV cells give the same greedy tokens
        Assert.Equal((41d, 0d), (afterCold.Queries - before.Queries, afterCold.Hits - before.Hits));
        Assert.Equal((41d, 32d), (afterWarm.Queries - afterCold.Queries, afterWarm.Hits - afterCold.Hits));
        Assert.Equal((42d, 0d), (afterOther.Queries - afterWarm.Queries, afterOther.Hits - afterWarm.Hits));
        Assert.Equal("opqrs", warm.Text.Replace(" ", "", StringComparison.Ordinal)[..5]);
    }
}
