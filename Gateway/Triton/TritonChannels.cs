using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Gateway.Triton;

/// <summary>
/// One shared <see cref="GrpcChannel"/> per Triton endpoint: HTTP/2 with several connections
/// when streams pile up, a raised receive limit, keep-alive pings, no total timeout and no
/// resilience handler (streams must never be cut or replayed by a generic policy).
/// </summary>
internal sealed class TritonChannels(IOptions<TritonOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<Uri, GrpcChannel> _channels = new();

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

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }
}
