using Gateway.Routing;
using Gateway.Triton;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>Round robin between tenants inside one priority band of the admission queue.</summary>
public sealed class TenantFairnessTests : IDisposable
{
    private readonly FakeFleet _fleet = new();

    public void Dispose() => _fleet.Dispose();

    [Fact]
    public void Queue_RoundRobinsTenantsWithinAClass_ClassesStayStrict()
    {
        var queue = new FairQueue<string>(fair: true);
        foreach (var item in new[] { "a1", "a2", "a3", "a4" })
        {
            queue.Enqueue(item, 1, "a");
        }
        queue.Enqueue("b1", 1, "b");
        queue.Enqueue("c1", 1, "c");
        queue.Enqueue("b2", 1, "b");
        queue.Enqueue("h1", 0, "a"); // high priority: first, whoever sent it
        queue.Enqueue("l1", 2, "z");

        var order = new List<string>();
        while (queue.Count > 0)
        {
            Assert.True(queue.TryPeek(out var peeked));
            var taken = queue.Dequeue();
            Assert.Equal(peeked, taken);
            order.Add(taken);
        }

        Assert.Equal(["h1", "a1", "b1", "c1", "a2", "b2", "a3", "a4", "l1"], order);
    }

    [Fact]
    public void Queue_FairnessOff_IsArrivalOrderPerClass()
    {
        var queue = new FairQueue<string>(fair: false);
        queue.Enqueue("a1", 1, "a");
        queue.Enqueue("a2", 1, "a");
        queue.Enqueue("b1", 1, "b");
        queue.Enqueue("h1", 0, "b");

        Assert.Equal(["h1", "a1", "a2", "b1"], [queue.Dequeue(), queue.Dequeue(), queue.Dequeue(), queue.Dequeue()]);
    }

    [Fact]
    public async Task Router_OneTenantsBurst_DoesNotStarveAnother()
    {
        _fleet.Set.Update([(new Uri("http://10.0.0.1:8001"), null)]);
        var router = _fleet.Router(new RoutingOptions { SaturationThreshold = 1 }, seed: 1);
        var busy = await router.AcquireAsync(new RouteRequest(10, 10, 0) { Tenant = "burst" }, null, default);
        var burst = Enumerable.Range(0, 5).Select(_ => router.AcquireAsync(new RouteRequest(10, 10, 0) { Tenant = "burst" }, null, default).AsTask()).ToList();
        var quiet = router.AcquireAsync(new RouteRequest(10, 10, 0) { Tenant = "quiet" }, null, default).AsTask();
        Assert.Equal(6, router.QueuedRequests);

        busy.Dispose(); // one slot: the burst's oldest request
        var firstLease = await burst[0].WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(quiet.IsCompleted);
        firstLease.Dispose(); // the next slot goes to the quiet tenant, not to the burst's second request

        using var quietLease = await quiet.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(burst[1].IsCompleted);
        Assert.Equal(4, router.QueuedRequests);
        quietLease.Dispose();
        var rest = await Task.WhenAll(burst.Skip(1).Select(async task =>
        {
            var lease = await task.WaitAsync(TimeSpan.FromSeconds(5));
            lease.Dispose();
            return lease;
        }));
        Assert.Equal(4, rest.Length);
    }
}
