using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Gateway.Triton;

/// <summary>
/// Picks the Triton replica for one attempt of one request. This single-backend version takes the
/// configured endpoints in turn per attempt; routing over replicas by load (Gateway/Routing)
/// replaces it behind the same interface.
/// </summary>
public interface ITritonEndpointSelector
{
    /// <summary>The endpoint for attempt <paramref name="attempt"/> (0-based) of a request to <paramref name="tritonModel"/>, or null if none is usable.</summary>
    Uri? Select(string tritonModel, int attempt);
}

internal sealed class ConfiguredEndpointSelector(IOptions<TritonOptions> options) : ITritonEndpointSelector
{
    public Uri? Select(string tritonModel, int attempt)
    {
        var endpoints = options.Value.ParsedEndpoints;
        return endpoints.Count == 0 ? null : endpoints[attempt % endpoints.Count];
    }
}

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
