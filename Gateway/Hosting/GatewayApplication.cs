using System.Net;

namespace Gateway.Hosting;

/// <summary>Where a started gateway listens.</summary>
public sealed record GatewayEndpoints(Uri Rest, Uri Grpc);

/// <summary>Builds the gateway; used by Program.cs and by tests (ports 0, extra configuration).</summary>
public static class GatewayApplication
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ApplicationName = typeof(GatewayApplication).Assembly.GetName().Name,
        });
        builder.AddServiceDefaults();
        configure?.Invoke(builder);
        builder.AddGatewayServices();
        var app = builder.Build();
        app.MapGateway();
        return app;
    }

    /// <summary>The bound REST and gRPC addresses (loopback when listening on every interface). Call after start.</summary>
    public static GatewayEndpoints GetEndpoints(this WebApplication app)
    {
        var listeners = app.Services.GetRequiredService<GatewayListeners>();
        return new GatewayEndpoints(ToUri(listeners.Rest), ToUri(listeners.Grpc));

        static Uri ToUri(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? options)
        {
            var endPoint = options?.IPEndPoint ?? throw new InvalidOperationException("The gateway has not started.");
            var host = endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any) ? "127.0.0.1" : endPoint.Address.ToString();
            return new Uri($"http://{host}:{endPoint.Port}");
        }
    }
}
