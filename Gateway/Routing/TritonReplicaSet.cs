using System.Net;
using System.Net.Sockets;
using Gateway.Triton;
using Microsoft.Extensions.Options;

namespace Gateway.Routing;

/// <summary>Resolves a host name to every address (a headless Service's A/AAAA records). Replaceable in tests.</summary>
internal delegate Task<IPAddress[]> HostResolver(string host, CancellationToken cancellationToken);

/// <summary>
/// The current Triton replicas. Static configuration (<c>Gateway:Triton:Endpoints</c> or service
/// discovery) fills it once; a headless Service is re-resolved by <see cref="ReplicaMonitor"/>.
/// Readers get an immutable snapshot; a replica keeps its state (counters, health) across refreshes
/// as long as its address stays.
/// </summary>
internal sealed class TritonReplicaSet
{
    private readonly Lock _lock = new();
    private volatile TritonReplica[] _replicas;

    public TritonReplicaSet(IOptions<TritonOptions> options)
    {
        var settings = options.Value;
        var replicas = new List<TritonReplica>();
        if (settings.ParsedHeadlessService is null)
        {
            for (var i = 0; i < settings.ParsedEndpoints.Count; i++)
            {
                replicas.Add(new TritonReplica(settings.ParsedEndpoints[i], i < settings.ParsedMetricsEndpoints.Count ? settings.ParsedMetricsEndpoints[i] : null));
            }
        }
        _replicas = [.. replicas];
    }

    /// <summary>Raised after the membership changed.</summary>
    public event Action? Changed;

    /// <summary>The current replicas (an immutable snapshot; do not modify).</summary>
    public TritonReplica[] Replicas => _replicas;

    /// <summary>Replaces the membership; known addresses keep their state, vanished ones are marked removed. Returns whether anything changed.</summary>
    public bool Update(IReadOnlyList<(Uri Grpc, Uri? Metrics)> endpoints)
    {
        lock (_lock)
        {
            var current = _replicas;
            var next = new List<TritonReplica>(endpoints.Count);
            foreach (var (grpc, metrics) in endpoints)
            {
                var existing = Array.Find(current, r => r.Grpc == grpc);
                next.Add(existing ?? new TritonReplica(grpc, metrics));
            }
            var changed = next.Count != current.Length || next.Exists(r => Array.IndexOf(current, r) < 0);
            if (!changed)
            {
                return false;
            }
            foreach (var replica in current)
            {
                replica.IsRemoved = !next.Contains(replica);
            }
            _replicas = [.. next];
        }
        Changed?.Invoke();
        return true;
    }

    /// <summary>The endpoints a headless Service's addresses stand for, in a stable order.</summary>
    public static List<(Uri Grpc, Uri? Metrics)> FromAddresses(IEnumerable<IPAddress> addresses, int grpcPort, int metricsPort)
    {
        var result = new List<(Uri, Uri?)>();
        foreach (var address in addresses.Distinct().OrderBy(a => a.ToString(), StringComparer.Ordinal))
        {
            var host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
            result.Add((new Uri($"http://{host}:{grpcPort}"), metricsPort > 0 ? new Uri($"http://{host}:{metricsPort}") : null));
        }
        return result;
    }
}
