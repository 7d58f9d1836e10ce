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
/// as long as its address stays. Each replica owns its gRPC channel, built when it joins. A replica
/// that leaves takes no new requests; its channel is released when its last in-flight request ends
/// (at once when none is), and an address that comes back before then gets the same replica again.
/// </summary>
internal sealed partial class TritonReplicaSet : IDisposable
{
    private readonly Lock _lock = new();
    private readonly TritonOptions _options;
    private readonly ILogger<TritonReplicaSet> _logger;
    private readonly List<TritonReplica> _draining = [];
    private volatile TritonReplica[] _replicas;

    public TritonReplicaSet(IOptions<TritonOptions> options, ILogger<TritonReplicaSet> logger)
    {
        var settings = _options = options.Value;
        _logger = logger;
        var replicas = new List<TritonReplica>();
        if (settings.ParsedHeadlessService is null)
        {
            for (var i = 0; i < settings.ParsedEndpoints.Count; i++)
            {
                replicas.Add(NewReplica(settings.ParsedEndpoints[i], i < settings.ParsedMetricsEndpoints.Count ? settings.ParsedMetricsEndpoints[i] : null));
            }
        }
        _replicas = [.. replicas];
    }

    /// <summary>Raised after the membership changed.</summary>
    public event Action? Changed;

    /// <summary>Raised after a replica's channel was released and disposed.</summary>
    public event Action<TritonReplica>? ChannelReleased;

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
                next.Add(Array.Find(current, r => r.Grpc == grpc) ?? Returning(grpc) ?? NewReplica(grpc, metrics));
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
                    Release(replica);
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
    /// its channel is released, unless its address came back meanwhile (which released it already).
    /// </summary>
    public void Drained(TritonReplica replica)
    {
        lock (_lock)
        {
            if (_draining.Remove(replica))
            {
                Release(replica);
            }
        }
    }

    /// <summary>
    /// The channel of a discovered replica for calls made outside a request's lease (probes, model
    /// discovery); false once the replica has left, so nothing new starts on a channel about to be released.
    /// </summary>
    public bool TryGetChannel(TritonReplica replica, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out GrpcChannel? channel)
    {
        lock (_lock)
        {
            channel = replica.IsRemoved ? null : replica.Channel;
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
        // Its last request just ended and its Drained call waits for the lock (and will find it gone
        // from the draining list): release here; the new replica of this address builds its own channel.
        Release(replica);
        return null;
    }

    private TritonReplica NewReplica(Uri grpc, Uri? metrics) => new(grpc, metrics, TritonChannel.Create(grpc, _options));

    /// <summary>Disposes the channel of a replica whose state is final (left discovery, nothing in flight).</summary>
    private void Release(TritonReplica replica)
    {
        if (replica.ReleaseChannel())
        {
            LogReleased(_logger, replica.Grpc);
            ChannelReleased?.Invoke(replica);
        }
    }

    /// <summary>At shutdown: every channel still open, of current and of draining replicas.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var replica in _replicas)
            {
                replica.ReleaseChannel();
            }
            foreach (var replica in _draining)
            {
                replica.ReleaseChannel();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Triton channel to {Endpoint} released")]
    private static partial void LogReleased(ILogger logger, Uri endpoint);

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
