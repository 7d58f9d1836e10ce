using Gateway.Routing;
using Gateway.Triton;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>
/// Replicas on fake addresses (<c>10.0.0.N</c>, gRPC 8001, metrics 8002) and a router over them on a
/// fake clock, with no network: what the router's unit tests build on.
/// </summary>
internal sealed class FakeFleet : IDisposable
{
    public FakeFleet() => Set = new(Options.Create(new TritonOptions()), NullLogger<TritonReplicaSet>.Instance);

    public FakeTimeProvider Time { get; } = new();

    /// <summary>The fleet's replicas, each with its own channel (built, never connected here).</summary>
    public TritonReplicaSet Set { get; }

    /// <summary>A replica outside any set, on a channel that is never connected.</summary>
    public static TritonReplica Detached(string grpc)
    {
        var address = new Uri(grpc);
        return new TritonReplica(address, null, TritonChannel.Create(address, new TritonOptions()));
    }

    /// <summary>Sets the fleet to <paramref name="replicas"/> replicas and returns a router over it.</summary>
    public TritonRouter Router(int replicas, RoutingOptions options, int seed)
    {
        var endpoints = new List<(Uri, Uri?)>();
        for (var i = 0; i < replicas; i++)
        {
            endpoints.Add((new Uri($"http://10.0.0.{i + 1}:8001"), new Uri($"http://10.0.0.{i + 1}:8002")));
        }
        Set.Update(endpoints);
        return Router(options, seed);
    }

    /// <summary>A router over the fleet as it is now.</summary>
    public TritonRouter Router(RoutingOptions options, int seed) =>
        new(Set, Options.Create(options), Time, new RoutingRandom(new Random(seed)), NullLogger<TritonRouter>.Instance);

    public void Dispose() => Set.Dispose();
}
