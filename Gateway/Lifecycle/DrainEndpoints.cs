using Gateway.OpenAi;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Gateway.Lifecycle;

/// <summary>
/// Counts every REST API request in flight and, once the accept window is over, answers new ones
/// 503 with <c>Retry-After</c> and an OpenAI error of type <c>server_shutting_down</c>.
/// </summary>
/// <remarks>
/// From the shutdown signal on, HTTP/1.1 responses carry <c>Connection: close</c>: a client must
/// not send its next POST on a keep-alive connection the stopping server is about to close (that
/// request would get no answer at all). HTTP/2 clients get Kestrel's GOAWAY instead.
/// </remarks>
internal sealed class DrainMiddleware(RequestDelegate next, GatewayDrain drain)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            context.Response.OnStarting(static state =>
            {
                var (context, drain) = ((HttpContext, GatewayDrain))state;
                if (!drain.IsReady)
                {
                    context.Response.Headers.Connection = "close";
                }
                return Task.CompletedTask;
            }, (context, drain));
        }
        if (!drain.TryEnter())
        {
            await OpenAiErrors.WriteAsync(context, drain.ShuttingDown(refused: true)).ConfigureAwait(false);
            return;
        }
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            drain.Exit();
        }
    }
}

/// <summary>The same for the gRPC face: counted in flight, refused with <c>UNAVAILABLE</c> after the accept window.</summary>
internal sealed class DrainInterceptor(GatewayDrain drain) : Interceptor
{
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Enter(context);
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        finally
        {
            drain.Exit();
        }
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Enter(context);
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        finally
        {
            drain.Exit();
        }
    }

    private void Enter(ServerCallContext context)
    {
        if (!drain.TryEnter())
        {
            throw Gateway.Grpc.LlmGatewayService.ToRpcException(drain.ShuttingDown(refused: true));
        }
    }
}

/// <summary>Readiness: unhealthy from the shutdown signal on, so the Service and the load balancer stop sending.</summary>
internal sealed class DrainHealthCheck(GatewayDrain drain) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(drain.IsReady ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("shutting down: draining open requests"));
}
