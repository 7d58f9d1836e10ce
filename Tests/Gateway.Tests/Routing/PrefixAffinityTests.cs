using System.Text;
using Gateway.Routing;
using Gateway.Triton;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>The gateway's prefix-affinity scorer: chained block keys, the bounded per-replica LRU, scoring with the load gate.</summary>
public sealed class PrefixAffinityTests : IDisposable
{
    private readonly FakeFleet _fleet = new();

    public void Dispose() => _fleet.Dispose();

    private TritonRouter CreateRouter(int replicas, RoutingScorerOptions? scorers = null, int saturation = 128)
    {
        var options = new RoutingOptions { Scorers = scorers ?? new RoutingScorerOptions { PrefixBlockSize = 4 }, SaturationThreshold = saturation };
        return _fleet.Router(replicas, options, seed: 7);
    }

    private static int[] Tokens(int first, int count) => [.. Enumerable.Range(first, count)];

    private static RouteRequest Request(int[] prompt, int blockSize = 4) =>
        new(prompt.Length, 16, 0, "tensorrt_llm") { PrefixKeys = PrefixKeys.Compute(prompt, blockSize, "tensorrt_llm") };

    private void Scrape(TritonReplica replica, double pending) =>
        replica.Record(TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(
            $"nv_inference_pending_request_count{{model=\"m\",version=\"1\"}} {pending}\n")), _fleet.Time.GetTimestamp());

    [Fact]
    public void Keys_AreChainedPerModel_AndLeaveOutTheLastTokensBlock()
    {
        var a = PrefixKeys.Compute([.. Tokens(0, 8), .. Tokens(100, 4), 1], 4, "m");
        var b = PrefixKeys.Compute([.. Tokens(1, 8), .. Tokens(100, 4), 1], 4, "m"); // block 0 differs
        var c = PrefixKeys.Compute([.. Tokens(0, 8), .. Tokens(100, 4), 1], 4, "other");

        Assert.Equal(3, a.Length);
        Assert.Equal(2, PrefixKeys.Compute(Tokens(0, 12), 4, "m").Length); // 12 tokens: the third block holds the last one
        Assert.Empty(PrefixKeys.Compute(Tokens(0, 4), 4, "m"));
        Assert.NotEqual(a[2], b[2]); // the same tokens after another prefix: another key
        Assert.NotEqual(a[0], c[0]);
        Assert.Equal(a[..2], PrefixKeys.Compute(Tokens(0, 9), 4, "m"));
    }

    [Fact]
    public void Table_MatchesOnlyTheLeadingRun_EvictsTheLeastRecentlyUsed_AndNeverGrows()
    {
        var table = new PrefixBlockTable(4);
        ulong[] first = [1, 2, 3];
        table.Record(first);
        Assert.Equal(3, table.MatchLength([1, 2, 3, 4]));
        Assert.Equal(0, table.MatchLength([9, 1, 2])); // the run starts at the first key
        Assert.Equal(1, table.MatchLength([1, 9, 3]));

        table.Record([7, 8]); // 5 keys for 4 slots: the oldest (tail 3) goes
        Assert.Equal(2, table.MatchLength(first));
        Assert.Equal(2, table.MatchLength([7, 8]));

        for (ulong k = 100; k < 10_000; k++)
        {
            table.Record([k]);
        }
        Assert.Equal(4, table.Count);
        Assert.Equal(0, table.MatchLength(first));
        table.Clear();
        Assert.Equal(0, table.Count);
        Assert.Equal(0, table.MatchLength([9_999]));
    }

    [Fact]
    public async Task SamePrefix_FollowsTheReplicaThatWasSentIt_AlthoughItIsBusier()
    {
        var router = CreateRouter(2);
        var shared = Tokens(0, 40);
        using var first = await router.AcquireAsync(Request([.. shared, .. Tokens(500, 5)]), null, default);
        Assert.Equal(0, first.Decision.MatchedBlocks);

        using var second = await router.AcquireAsync(Request([.. shared, .. Tokens(600, 5)]), null, default);

        Assert.Same(first.Replica, second.Replica); // one request busier, but it holds the 10 shared blocks
        Assert.Equal(10, second.Decision.MatchedBlocks);
        Assert.Equal(11, second.Decision.PrefixBlocks);
    }

    [Fact]
    public async Task DifferentPrefixes_Spread()
    {
        var router = CreateRouter(2);
        using var a = await router.AcquireAsync(Request(Tokens(0, 40)), null, default);
        using var b = await router.AcquireAsync(Request(Tokens(1000, 40)), null, default);

        Assert.NotSame(a.Replica, b.Replica);
        Assert.Equal(0, b.Decision.MatchedBlocks);
    }

    [Fact]
    public async Task PrefixWeightZero_IsTheLoadOnlyRouter()
    {
        var router = CreateRouter(2, new RoutingScorerOptions { PrefixBlockSize = 4, PrefixWeight = 0 });
        var prompt = Tokens(0, 40);
        using var first = await router.AcquireAsync(Request(prompt), null, default);
        using var second = await router.AcquireAsync(Request(prompt), null, default);

        Assert.NotSame(first.Replica, second.Replica);
        Assert.Equal(0, second.Decision.MatchedBlocks);
    }

    [Fact]
    public async Task RoundRobin_IgnoresScoresAndPrefixes()
    {
        var endpoints = new List<(Uri, Uri?)> { (new Uri("http://10.0.0.1:8001"), null), (new Uri("http://10.0.0.2:8001"), null) };
        _fleet.Set.Update(endpoints);
        var router = _fleet.Router(new RoutingOptions { RoundRobin = true, Scorers = new RoutingScorerOptions { PrefixBlockSize = 4 } }, seed: 7);
        var prompt = Tokens(0, 40);
        var picked = new List<TritonReplica>();
        for (var i = 0; i < 4; i++)
        {
            using var lease = await router.AcquireAsync(Request(prompt), null, default);
            picked.Add(lease.Replica);
        }

        Assert.Equal([picked[0], picked[1], picked[0], picked[1]], picked);
        Assert.NotSame(picked[0], picked[1]);
    }

    [Fact]
    public async Task LoadGate_KeepsAffinityOffABusyReplica()
    {
        var router = CreateRouter(2, new RoutingScorerOptions { PrefixBlockSize = 4, LoadGate = 0.5 });
        var prompt = Tokens(0, 40);
        using var first = await router.AcquireAsync(Request(prompt), null, default);
        var other = ReferenceEquals(first.Replica, _fleet.Set.Replicas[0]) ? _fleet.Set.Replicas[1] : _fleet.Set.Replicas[0];
        Scrape(first.Replica, pending: 6); // load ≈ 7 > (1 + 0.5) × 0 + 1
        Scrape(other, pending: 0);

        using var second = await router.AcquireAsync(Request(prompt), null, default);

        Assert.Same(other, second.Replica);
        Assert.Equal(0, second.Decision.MatchedBlocks);
    }

    [Fact]
    public async Task EightReplicas_TheOneHoldingThePrefixWins_EvenWhenNotDrawn()
    {
        var router = CreateRouter(8);
        var prompt = Tokens(0, 64);
        TritonReplica holder;
        using (var first = await router.AcquireAsync(Request(prompt), null, default))
        {
            holder = first.Replica;
        }
        for (var i = 0; i < 10; i++)
        {
            using var again = await router.AcquireAsync(Request([.. prompt, .. Tokens(10_000 + i * 10, 6)]), null, default);
            Assert.Same(holder, again.Replica);
            Assert.Equal(8, again.Decision.Candidates);
        }
    }

    [Fact]
    public async Task EjectedOrRemovedReplica_ForgetsWhatItWasSent()
    {
        var router = CreateRouter(2);
        var prompt = Tokens(0, 40);
        TritonReplica holder;
        using (var first = await router.AcquireAsync(Request(prompt), null, default))
        {
            holder = first.Replica;
        }
        Assert.True(holder.PeekPrefixes()!.Count > 0);

        router.ReportFailure(holder, TritonFailure.Transport, "reset");
        Assert.Equal(0, holder.PeekPrefixes()!.Count);

        holder.Prefixes(16).Record(PrefixKeys.Compute(prompt, 4, "tensorrt_llm"));
        _fleet.Set.Update([(_fleet.Set.Replicas[0] == holder ? _fleet.Set.Replicas[1] : _fleet.Set.Replicas[0]).Grpc is var keep ? (keep, null) : default]);
        Assert.Equal(0, holder.PeekPrefixes()!.Count);
    }

    [Fact]
    public void RestartedReplica_CountersGoingBack_ForgetsItsPrefixes()
    {
        CreateRouter(1);
        var replica = _fleet.Set.Replicas[0];
        void Counters(double success) => replica.Record(TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(
            $"nv_inference_queue_duration_us{{model=\"m\",version=\"1\"}} {success * 10}\nnv_inference_request_success{{model=\"m\",version=\"1\"}} {success}\n")), _fleet.Time.GetTimestamp());
        Counters(100);
        replica.Prefixes(16).Record([1, 2, 3]);
        Counters(120);
        Assert.Equal(3, replica.PeekPrefixes()!.Count);

        Counters(3); // a new process

        Assert.Equal(0, replica.PeekPrefixes()!.Count);
    }

    [Fact]
    public void Validator_NamesTheBadScorerKey()
    {
        var validator = new RoutingOptionsValidator();
        var bad = new RoutingOptions
        {
            Scorers = new RoutingScorerOptions { PrefixWeight = -1, QueueWeight = double.NaN, PrefixBlockSize = 0, PrefixBlocksPerReplica = 0, LoadGate = -0.1 },
            TenantHeader = "x tenant",
        };

        var result = validator.Validate(null, bad);

        Assert.True(result.Failed);
        foreach (var key in new[] { "Scorers:PrefixWeight", "Scorers:QueueWeight", "Scorers:PrefixBlockSize", "Scorers:PrefixBlocksPerReplica", "Scorers:LoadGate", "TenantHeader" })
        {
            Assert.Contains("Gateway:Routing:" + key, result.FailureMessage);
        }
        Assert.True(validator.Validate(null, new RoutingOptions()).Succeeded);
    }
}
