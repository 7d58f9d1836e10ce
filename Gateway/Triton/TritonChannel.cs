using Grpc.Net.Client;

namespace Gateway.Triton;

/// <summary>
/// The <see cref="GrpcChannel"/> of one Triton endpoint: HTTP/2 with several connections when
/// streams pile up, a raised receive limit, keep-alive pings, no total timeout and no resilience
/// handler (streams must never be cut or replayed by a generic policy). Each replica builds its own
/// when it joins and disposes it when it is gone (see <c>TritonReplica.Channel</c>); building one
/// opens no connection.
/// </summary>
internal static class TritonChannel
{
    public static GrpcChannel Create(Uri endpoint, TritonOptions options) =>
        GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
                ConnectTimeout = TimeSpan.FromSeconds(5),
                // gRPC never redirects: no redirect stage in the handler chain.
                AllowAutoRedirect = false,
                // The gateway writes traceparent itself from its Triton span (see TritonCall), so no
                // propagator and no HTTP-level diagnostics stage (its Activity per call) either.
                ActivityHeadersPropagator = null,
            },
            MaxReceiveMessageSize = options.MaxReceiveMessageSize,
            DisposeHttpClient = true,
        });
}
