using System.Diagnostics;
using Gateway.Routing;
using Gateway.Triton;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Benchmarks.Prefix;

/// <summary>
/// What scoring costs the gateway per request: 8 replicas whose prefix tables hold 64k block keys
/// together (8,192 each, full), requests with a ~2,000-token prompt (31 blocks) sharing a prefix
/// with one replica's; measured single-threaded: hashing the prompt's tokens, then the router's
/// pick (load scorers + prefix lookups on every replica + recording the keys) and the lease's release.
/// </summary>
internal static class ScorerMicrobenchmark
{
    public const int Replicas = 8;
    public const int BlocksPerReplica = 8192;
    public const int PromptTokens = 2000;

    public sealed record Result(int Requests, double HashMicros, double PickMicros, int RememberedBlocks, int MatchedBlocks, int PrefixBlocks)
    {
        public double TotalMicros => HashMicros + PickMicros;
    }

    public static async Task<Result> RunAsync(int requests, CancellationToken cancellationToken)
    {
        var tritonOptions = Options.Create(new TritonOptions());
        using var set = new TritonReplicaSet(tritonOptions, NullLogger<TritonReplicaSet>.Instance);
        set.Update([.. Enumerable.Range(0, Replicas).Select(i => (new Uri($"http://10.0.0.{i + 1}:8001"), (Uri?)null))]);
        var options = new RoutingOptions { Scorers = new RoutingScorerOptions { PrefixBlocksPerReplica = BlocksPerReplica } };
        var router = new TritonRouter(set, Options.Create(options), TimeProvider.System, new RoutingRandom(new Random(1)), NullLogger<TritonRouter>.Instance);
        var random = new Random(42);
        // Fill every table: 8,192 keys each, from other prompts.
        foreach (var replica in set.Replicas)
        {
            var table = replica.Prefixes(BlocksPerReplica);
            var filler = new ulong[BlocksPerReplica];
            for (var i = 0; i < filler.Length; i++)
            {
                filler[i] = (ulong)random.NextInt64();
            }
            table.Record(filler);
        }
        var shared = Enumerable.Range(0, 1500).Select(_ => random.Next(50_000)).ToArray();
        // As the tokenizer returns them (Microsoft.ML.Tokenizers' EncodeToIds: a List<int>).
        var prompts = Enumerable.Range(0, 64).Select(_ => (IReadOnlyList<int>)new List<int>([.. shared, .. Enumerable.Range(0, PromptTokens - shared.Length).Select(_ => random.Next(50_000))])).ToArray();
        // Warm-up (JIT), and one replica learns the shared prefix.
        for (var i = 0; i < 2000; i++)
        {
            var keys = PrefixKeys.Compute(prompts[i % prompts.Length], 64, "tensorrt_llm");
            using var lease = await router.AcquireAsync(new RouteRequest(PromptTokens, 64, 0, "tensorrt_llm") { PrefixKeys = keys }, null, cancellationToken);
        }
        var allKeys = new ulong[requests][];
        var hashStart = Stopwatch.GetTimestamp();
        for (var i = 0; i < requests; i++)
        {
            allKeys[i] = PrefixKeys.Compute(prompts[i % prompts.Length], 64, "tensorrt_llm");
        }
        var hashElapsed = Stopwatch.GetElapsedTime(hashStart);
        var matched = 0;
        var pickStart = Stopwatch.GetTimestamp();
        for (var i = 0; i < requests; i++)
        {
            using var lease = await router.AcquireAsync(new RouteRequest(PromptTokens, 64, 0, "tensorrt_llm") { PrefixKeys = allKeys[i] }, null, cancellationToken);
            matched = lease.Decision.MatchedBlocks;
        }
        var pickElapsed = Stopwatch.GetElapsedTime(pickStart);
        var remembered = set.Replicas.Sum(static r => r.PeekPrefixes()!.Count);
        return new Result(requests, hashElapsed.TotalMicroseconds / requests, pickElapsed.TotalMicroseconds / requests, remembered, matched, allKeys[0].Length);
    }
}
