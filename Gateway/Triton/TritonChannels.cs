using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Gateway.Triton;

/// <summary>
/// One shared <see cref="GrpcChannel"/> per Triton endpoint: HTTP/2 with several connections
/// when streams pile up, a raised receive limit, keep-alive pings, no total timeout and no
/// resilience handler (streams must never be cut or replayed by a generic policy). A replica that
/// left discovery gets its channel released (<see cref="Release"/>) once its last request ended;
/// the next <see cref="Get"/> for that address builds a fresh one.
/// </summary>
internal sealed partial class TritonChannels(IOptions<TritonOptions> options, ILogger<TritonChannels> logger) : IDisposable
{
    private readonly ConcurrentDictionary<Uri, GrpcChannel> _channels = new();

    /// <summary>Raised after a channel was released and disposed.</summary>
    public event Action<Uri>? Released;

    /// <summary>Channels open now.</summary>
    public int Count => _channels.Count;

    public bool Contains(Uri endpoint) => _channels.ContainsKey(endpoint);

    public GrpcChannel Get(Uri endpoint) => _channels.GetOrAdd(endpoint, static (uri, maxReceive) =>
        GrpcChannel.ForAddress(uri, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
                ConnectTimeout = TimeSpan.FromSeconds(5),
                // The gateway writes traceparent itself from the Triton span (see TritonCall).
                ActivityHeadersPropagator = DistributedContextPropagator.CreateNoOutputPropagator(),
            },
            MaxReceiveMessageSize = maxReceive,
            DisposeHttpClient = true,
        }), options.Value.MaxReceiveMessageSize);

    /// <summary>
    /// Forgets and disposes the channel of <paramref name="endpoint"/> (its connections close). Only
    /// for a replica with nothing in flight: calls still running on the channel would be cancelled.
    /// </summary>
    public void Release(Uri endpoint)
    {
        if (_channels.TryRemove(endpoint, out var channel))
        {
            channel.Dispose();
            LogReleased(logger, endpoint);
            Released?.Invoke(endpoint);
        }
    }

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Triton channel to {Endpoint} released")]
    private static partial void LogReleased(ILogger logger, Uri endpoint);
}
