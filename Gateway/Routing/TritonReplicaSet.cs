using System.Net;
using System.Net.Sockets;
using Gateway.Triton;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Gateway.Routing;

/// <summary>Resolves a host name to every address (a headless Service's A/AAAA records). Replaceable in tests.</summary>
internal delegate Task<IPAddress[]> HostResolver(string host, CancellationToken cancellationToken);

/// <summary>
/// The current Triton replicas. Static configuration (<c>Gateway:Triton:Endpoints</c> or service
/// discovery) fills it once; a headless Service is re-resolved by <see cref="ReplicaMonitor"/>.
/// Readers get an immutable snapshot; a replica keeps its state (counters, health) across refreshes
/// as long as its address stays. A replica that leaves takes no new requests; its channel is
/// released when its last in-flight request ends (at once when none is), and an address that comes
/// back before then gets the same replica again, so one address never has two live replicas
/// sharing (and releasing) one channel.
/// </summary>
internal sealed class TritonReplicaSet
{
    private readonly Lock _lock = new();
    private readonly TritonChannels _channels;
    private readonly List<TritonReplica> _draining = [];
    private volatile TritonReplica[] _replicas;

    public TritonReplicaSet(IOptions<TritonOptions> options, TritonChannels channels)
    {
        _channels = channels;
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

    /// <summary>
    /// Replaces the membership; known addresses keep their state, vanished ones are marked removed
    /// (their channel is released now when nothing runs on them, else when the last request ends).
    /// Returns whether anything changed.
    /// </summary>
    public bool Update(IReadOnlyList<(Uri Grpc, Uri? Metrics)> endpoints)
    {
        lock (_lock)
        {
            var current = _replicas;
            var next = new List<TritonReplica>(endpoints.Count);
            foreach (var (grpc, metrics) in endpoints)
            {
                next.Add(Array.Find(current, r => r.Grpc == grpc) ?? Returning(grpc) ?? new TritonReplica(grpc, metrics));
            }
            var changed = next.Count != current.Length || next.Exists(r => Array.IndexOf(current, r) < 0);
            if (!changed)
            {
                return false;
            }
            _replicas = [.. next];
            foreach (var replica in current)
            {
                if (next.Contains(replica))
                {
                    continue;
                }
                if (replica.MarkRemoved())
                {
                    _channels.Release(replica.Grpc);
                }
                else
                {
                    _draining.Add(replica);
                }
            }
        }
        Changed?.Invoke();
        return true;
    }

    /// <summary>
    /// The last request of a replica that left discovery ended (see <see cref="TritonReplica.RemoveRequest"/>):
    /// its channel is released, unless its address came back meanwhile and took over the channel.
    /// </summary>
    public void Drained(TritonReplica replica)
    {
        lock (_lock)
        {
            if (_draining.Remove(replica))
            {
                _channels.Release(replica.Grpc);
            }
        }
    }

    /// <summary>
    /// The channel of a discovered replica for calls made outside a request's lease (probes, model
    /// discovery); false once the replica has left, so no channel is ever built for a departed address.
    /// </summary>
    public bool TryGetChannel(TritonReplica replica, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out GrpcChannel? channel)
    {
        lock (_lock)
        {
            channel = replica.IsRemoved ? null : _channels.Get(replica.Grpc);
        }
        return channel is not null;
    }

    /// <summary>A draining replica of <paramref name="grpc"/> that still has requests in flight, back in discovery; null when there is none.</summary>
    private TritonReplica? Returning(Uri grpc)
    {
        var index = _draining.FindIndex(r => r.Grpc == grpc);
        if (index < 0)
        {
            return null;
        }
        var replica = _draining[index];
        _draining.RemoveAt(index);
        if (replica.TryRestore())
        {
            return replica;
        }
        // Its last request just ended and its Drained call waits for the lock: release here, so the
        // new replica of this address starts on a fresh channel.
        _channels.Release(grpc);
        return null;
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
