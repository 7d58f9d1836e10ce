using System.Text;
using Gateway.Errors;
using Gateway.Routing;
using Gateway.Triton;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>The picker on a fake clock with fake metrics: scores, staleness, ejection, saturation, queueing and shedding.</summary>
public sealed class TritonRouterTests : IDisposable
{
    private static readonly RouteRequest Normal = new(10, 100, 0);

    private readonly FakeFleet _fleet = new();

    public void Dispose() => _fleet.Dispose();

    private TritonRouter CreateRouter(int replicas, RoutingOptions? options = null, int seed = 1)
    {
        return _fleet.Router(replicas, options ?? new RoutingOptions(), seed);
    }

    private TritonReplica Replica(int index) => _fleet.Set.Replicas[index];

    private void Scrape(TritonReplica replica, double pending, double queueUs = 0, double success = 0) =>
        replica.Record(TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(
            $"nv_inference_pending_request_count{{model=\"m\",version=\"1\"}} {pending}\n"
            + $"nv_inference_queue_duration_us{{model=\"m\",version=\"1\"}} {queueUs}\n"
            + $"nv_inference_request_success{{model=\"m\",version=\"1\"}} {success}\n")), _fleet.Time.GetTimestamp());

    /// <summary>A scrape of a TensorRT-LLM replica as tensorrtllm_backend's metrics reporter writes it.</summary>
    private void ScrapeTensorRtLlm(TritonReplica replica, double waiting, double scheduled, double kvFraction) =>
        replica.Record(TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(
            "nv_inference_pending_request_count{model=\"tensorrt_llm\",version=\"1\"} 0\n"
            + $"nv_trt_llm_request_metrics{{model=\"tensorrt_llm\",request_type=\"waiting\",version=\"1\"}} {waiting}\n"
            + $"nv_trt_llm_request_metrics{{model=\"tensorrt_llm\",request_type=\"scheduled\",version=\"1\"}} {scheduled}\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"max\",version=\"1\"} 64\n"
            + $"nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"fraction\",model=\"tensorrt_llm\",version=\"1\"}} {kvFraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n")), _fleet.Time.GetTimestamp());

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Pick_TensorRtLlm_PrefersTheReplicaWithFewerWaitingRequests(int better)
    {
        var router = CreateRouter(2);
        ScrapeTensorRtLlm(Replica(1 - better), waiting: 3, scheduled: 8, kvFraction: 0.3);
        ScrapeTensorRtLlm(Replica(better), waiting: 0, scheduled: 8, kvFraction: 0.3);

        using var lease = await router.AcquireAsync(Normal, null, default);

        Assert.Same(Replica(better), lease.Replica);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Pick_TensorRtLlm_PrefersTheReplicaWithTheLowerKvBlockFraction(int better)
    {
        var router = CreateRouter(2);
        ScrapeTensorRtLlm(Replica(1 - better), waiting: 1, scheduled: 8, kvFraction: 0.9);
        ScrapeTensorRtLlm(Replica(better), waiting: 1, scheduled: 8, kvFraction: 0.1);

        using var lease = await router.AcquireAsync(Normal, null, default);

        Assert.Same(Replica(better), lease.Replica);
    }

    [Fact]
    public async Task Pick_PrefersTheReplicaWithFewerPendingRequestsInTriton()
    {
        var router = CreateRouter(2);
        Scrape(Replica(0), pending: 6);
        Scrape(Replica(1), pending: 1);

        using var lease = await router.AcquireAsync(Normal, null, default);

        Assert.Same(Replica(1), lease.Replica);
    }

    [Fact]
    public async Task Pick_SpreadsByOwnInFlightRequestsAndTokens()
    {
        var router = CreateRouter(2);
        var leases = new List<ReplicaLease>();
        for (var i = 0; i < 6; i++)
        {
            leases.Add(await router.AcquireAsync(Normal, null, default));
        }

        Assert.Equal(3, leases.Count(l => l.Replica == Replica(0)));
        Assert.Equal(3, Replica(1).InFlight);
        Assert.Equal(3 * 110, Replica(1).InFlightTokens);

        // Tokens streamed are taken off; the end releases the rest.
        leases[0].TokensGenerated(40);
        Assert.Equal(3 * 110 - 40, leases[0].Replica.InFlightTokens);
        foreach (var lease in leases)
        {
            lease.Dispose();
        }
        Assert.Equal((0, 0L), (Replica(0).InFlight, Replica(0).InFlightTokens));
        Assert.Equal((0, 0L), (Replica(1).InFlight, Replica(1).InFlightTokens));
    }

    [Fact]
    public async Task Pick_ALongRequestWeighsMoreThanAShortOne()
    {
        var router = CreateRouter(2);
        using var big = await router.AcquireAsync(new RouteRequest(1500, 2000, 0), null, default); // 3500 tokens
        using var small1 = await router.AcquireAsync(new RouteRequest(10, 10, 0), null, default);
        using var small2 = await router.AcquireAsync(new RouteRequest(10, 10, 0), null, default);

        // 1 request + 3500/1024 tokens outweighs 2 small requests.
        Assert.NotSame(big.Replica, small1.Replica);
        Assert.NotSame(big.Replica, small2.Replica);
    }

    [Fact]
    public async Task Pick_AverageQueueTimeFromCounterDeltasCounts()
    {
        var router = CreateRouter(2);
        Scrape(Replica(0), 0, queueUs: 0, success: 0);
        Scrape(Replica(1), 0, queueUs: 0, success: 0);
        _fleet.Time.Advance(TimeSpan.FromSeconds(1));
        Scrape(Replica(0), 0, queueUs: 10 * 400_000, success: 10); // 400 ms queued per request = 4 load units
        Scrape(Replica(1), 0, queueUs: 10 * 10_000, success: 10);
        using var a = await router.AcquireAsync(Normal, null, default);
        using var b = await router.AcquireAsync(Normal, null, default);
        using var c = await router.AcquireAsync(Normal, null, default);

        Assert.All([a, b, c], lease => Assert.Same(Replica(1), lease.Replica));
    }

    [Fact]
    public async Task Pick_IgnoresMetricsOlderThanMetricsMaxAge()
    {
        var router = CreateRouter(2, new RoutingOptions { MetricsMaxAge = TimeSpan.FromSeconds(5) });
        Scrape(Replica(0), pending: 50);
        _fleet.Time.Advance(TimeSpan.FromSeconds(6));
        Scrape(Replica(1), pending: 1);

        using var lease = await router.AcquireAsync(Normal, null, default);

        Assert.Same(Replica(0), lease.Replica); // 0 (stale 50 ignored) < 1
    }

    [Fact]
    public async Task PowerOfTwoChoices_WithManyReplicas_NeverPicksTheMostLoaded()
    {
        var router = CreateRouter(5, seed: 42);
        for (var i = 0; i < 5; i++)
        {
            Scrape(Replica(i), pending: i == 3 ? 100 : i);
        }
        for (var i = 0; i < 50; i++)
        {
            using var lease = await router.AcquireAsync(Normal, null, default);
            Assert.NotSame(Replica(3), lease.Replica);
        }
    }

    [Fact]
    public async Task EjectedReplica_GetsNoTraffic_UntilAProbeSucceedsAfterMinEjection()
    {
        var router = CreateRouter(2, new RoutingOptions { MinEjection = TimeSpan.FromSeconds(2) });
        Scrape(Replica(1), pending: 20); // busy, but alive

        router.ReportFailure(Replica(0), TritonFailure.Transport, "connection refused");
        for (var i = 0; i < 5; i++)
        {
            using var lease = await router.AcquireAsync(Normal, null, default);
            Assert.Same(Replica(1), lease.Replica);
        }

        Assert.False(Replica(0).ProbeSucceeded(_fleet.Time, TimeSpan.FromSeconds(2))); // too early
        _fleet.Time.Advance(TimeSpan.FromSeconds(2));
        Scrape(Replica(1), pending: 20);
        Assert.True(Replica(0).ProbeSucceeded(_fleet.Time, TimeSpan.FromSeconds(2)));

        using var back = await router.AcquireAsync(Normal, null, default);
        Assert.Same(Replica(0), back.Replica);
    }

    [Fact]
    public async Task BackendErrorsAndTimeouts_DoNotEject()
    {
        var router = CreateRouter(1);
        router.ReportFailure(Replica(0), TritonFailure.Backend, "Exceeds maximum queue size");
        router.ReportFailure(Replica(0), TritonFailure.Timeout, "slow");
        Assert.False(Replica(0).IsEjected);
        using var lease = await router.AcquireAsync(Normal, null, default);
        Assert.Same(Replica(0), lease.Replica);
    }

    [Fact]
    public async Task Failover_PrefersAReplicaNotTriedYet_ThenAnyReady()
    {
        var router = CreateRouter(2);
        Scrape(Replica(1), pending: 30);
        using var second = await router.AcquireAsync(Normal, [Replica(0)], default);
        Assert.Same(Replica(1), second.Replica);
        using var third = await router.AcquireAsync(Normal, [Replica(0), Replica(1)], default);
        Assert.Same(Replica(0), third.Replica);
    }

    [Fact]
    public async Task EveryReplicaEjected_StillRoutes_RemovedOnesNever()
    {
        var router = CreateRouter(2);
        router.ReportFailure(Replica(0), TritonFailure.Transport, "reset");
        router.ReportFailure(Replica(1), TritonFailure.Transport, "reset");
        using (var lease = await router.AcquireAsync(Normal, null, default))
        {
            Assert.True(lease.Replica.IsEjected); // panic: better a try than a certain 503
        }

        _fleet.Set.Update([]);
        var error = await Assert.ThrowsAsync<GatewayException>(async () => await router.AcquireAsync(Normal, null, default));
        Assert.Equal(GatewayError.BackendUnavailable, error.Error);
    }

    [Fact]
    public async Task EveryReplicaEjected_ARetryGoesToAReplicaNotTriedYet_EvenABusierOne()
    {
        var router = CreateRouter(2);
        Scrape(Replica(1), pending: 30);
        router.ReportFailure(Replica(0), TritonFailure.Transport, "connection refused");
        router.ReportFailure(Replica(1), TritonFailure.Transport, "reset");
        using (var retry = await router.AcquireAsync(Normal, [Replica(0)], default))
        {
            Assert.Same(Replica(1), retry.Replica); // not the idle one this request just failed on
        }
        using var last = await router.AcquireAsync(Normal, [Replica(0), Replica(1)], default);
        Assert.Same(Replica(0), last.Replica); // every one tried: the least loaded again
    }

    [Fact]
    public async Task Saturated_LowPriorityIsShed_HighQueuesAndGoesFirst()
    {
        var router = CreateRouter(2, new RoutingOptions { SaturationThreshold = 3, RetryAfter = TimeSpan.FromSeconds(2) });
        Scrape(Replica(0), pending: 2);
        Scrape(Replica(1), pending: 2);
        var busy0 = await router.AcquireAsync(Normal, null, default);
        var busy1 = await router.AcquireAsync(Normal, null, default);
        Assert.NotSame(busy0.Replica, busy1.Replica);
        Assert.True(router.IsSaturated(Replica(0)) && router.IsSaturated(Replica(1)));

        var shed = await Assert.ThrowsAsync<GatewayException>(async () => await router.AcquireAsync(new RouteRequest(10, 10, 2), null, default));
        Assert.Equal((GatewayError.BackendUnavailable, "overloaded", TimeSpan.FromSeconds(2)), (shed.Error, shed.Code, shed.RetryAfter));

        var normal = router.AcquireAsync(Normal, null, default).AsTask();
        var high = router.AcquireAsync(new RouteRequest(10, 10, 1), null, default).AsTask();
        Assert.Equal(2, router.QueuedRequests);
        Assert.False(normal.IsCompleted || high.IsCompleted);

        busy1.Dispose(); // one slot frees: the high-priority request takes it although it came later
        using var highLease = await high.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Same(busy1.Replica, highLease.Replica);
        Assert.False(normal.IsCompleted);

        Scrape(Replica(0), pending: 0); // Triton's queue drained: capacity shows up through metrics
        router.Drain();
        using var normalLease = await normal.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Same(Replica(0), normalLease.Replica);
        Assert.Equal(0, router.QueuedRequests);
        busy0.Dispose();
    }

    [Fact]
    public async Task Saturated_QueueWaitTimesOut_With503()
    {
        var router = CreateRouter(1, new RoutingOptions { SaturationThreshold = 1, QueueTimeout = TimeSpan.FromSeconds(10) });
        using var busy = await router.AcquireAsync(Normal, null, default);
        var queued = router.AcquireAsync(Normal, null, default).AsTask();
        Assert.False(queued.IsCompleted);

        _fleet.Time.Advance(TimeSpan.FromSeconds(10));

        var error = await Assert.ThrowsAsync<GatewayException>(() => queued.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal("overloaded", error.Code);
        Assert.Equal(0, router.QueuedRequests);
    }

    [Fact]
    public async Task Saturated_FullQueueSheds_AndACancelledWaiterLeavesTheQueue()
    {
        var router = CreateRouter(1, new RoutingOptions { SaturationThreshold = 1, MaxQueuedRequests = 1 });
        using var busy = await router.AcquireAsync(Normal, null, default);
        using var cts = new CancellationTokenSource();
        var queued = router.AcquireAsync(Normal, null, cts.Token).AsTask();

        var full = await Assert.ThrowsAsync<GatewayException>(async () => await router.AcquireAsync(new RouteRequest(1, 1, 1), null, default));
        Assert.Equal("overloaded", full.Code);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, router.QueuedRequests);
    }

    [Fact]
    public void Classify_MapsTritonLevelsToClasses()
    {
        var router = CreateRouter(1, new RoutingOptions { LowPriorityLevel = 3 });
        Assert.Equal(PriorityClass.High, router.Classify(1));
        Assert.Equal(PriorityClass.Normal, router.Classify(0));
        Assert.Equal(PriorityClass.Normal, router.Classify(2));
        Assert.Equal(PriorityClass.Low, router.Classify(3));
        Assert.Equal(PriorityClass.Low, router.Classify(9));
    }

    [Fact]
    public async Task ReplicaLeavesWithALeaseHeld_TakesNoNewRequest_AndItsChannelIsReleasedWhenTheLeaseEnds()
    {
        var router = CreateRouter(2);
        var leaving = Replica(0);
        var staying = Replica(1);
        var held = await router.AcquireAsync(Normal, [staying], default);
        Assert.Same(leaving, held.Replica);

        _fleet.Set.Update([(staying.Grpc, staying.Metrics)]);

        Assert.True(leaving.IsRemoved);
        Assert.False(leaving.IsChannelReleased); // its lease still runs on it
        using (var next = await router.AcquireAsync(Normal, [staying], default))
        {
            Assert.Same(staying, next.Replica); // even when the other one was tried already
        }
        held.Dispose();
        Assert.True(leaving.IsChannelReleased);
        Assert.Equal(0, leaving.InFlight);
        Assert.Equal(0, leaving.InFlightTokens);
    }

    [Fact]
    public async Task ReplicaSetDisposed_ReleasesTheChannelOfEveryReplica_IncludingOneStillDraining()
    {
        var router = CreateRouter(2);
        var draining = Replica(0);
        var current = Replica(1);
        using var held = await router.AcquireAsync(Normal, [current], default);
        Assert.Same(draining, held.Replica);
        _fleet.Set.Update([(current.Grpc, current.Metrics)]);
        Assert.False(draining.IsChannelReleased);

        _fleet.Set.Dispose();

        Assert.True(draining.IsChannelReleased);
        Assert.True(current.IsChannelReleased);
    }

    [Fact]
    public void RemovedReplica_RefusesNewRequests_AndOnlyItsLastRequestReportsTheDrain()
    {
        var replica = FakeFleet.Detached("http://10.0.0.9:8001");
        Assert.True(replica.TryAddRequest(10, 1));
        Assert.True(replica.TryAddRequest(10, 2));

        Assert.False(replica.MarkRemoved()); // two in flight
        Assert.False(replica.TryAddRequest(10, 3));
        Assert.Equal(2, replica.InFlight);
        Assert.False(replica.RemoveRequest(10));
        Assert.True(replica.RemoveRequest(10));
        Assert.False(replica.TryRestore()); // final: its address needs a new replica
        Assert.Equal((0, 0L), (replica.InFlight, replica.InFlightTokens));

        var idle = FakeFleet.Detached("http://10.0.0.10:8001");
        Assert.True(idle.MarkRemoved());
        Assert.False(idle.MarkRemoved()); // reported once

        var busy = FakeFleet.Detached("http://10.0.0.11:8001");
        Assert.True(busy.TryAddRequest(10, 4));
        Assert.False(busy.MarkRemoved());
        Assert.True(busy.TryRestore());
        Assert.False(busy.IsRemoved);
        Assert.False(busy.RemoveRequest(10)); // back in discovery: nothing to release
    }
}
