using System.Net;
using Microsoft.AspNetCore.Connections.Features;
using Grpc.AspNetCore.Server.Model;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Prometheus;
using TritonEmulator.Metrics;
using TritonEmulator.Models;
using TritonEmulator.Models.Text;
using TritonEmulator.Protocols.Grpc;
using TritonEmulator.Protocols.Http;

namespace TritonEmulator.Hosting;

/// <summary>The addresses the engine listens on, with the real ports (tests may ask for port 0).</summary>
public sealed record EmulatorEndpoints(Uri Http, Uri Grpc, Uri Metrics);

/// <summary>
/// Builds the Triton-compatible engine: KServe v2 HTTP (8000), Triton gRPC over h2c (8001) and
/// Prometheus metrics (8002), each on its own Kestrel listener configured in code.
/// </summary>
public static class EmulatorApplication
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.Services.AddEmulatorServices();
        builder.WebHost.ConfigureKestrel((_, kestrel) => ConfigureListeners(kestrel));
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapEmulator();
        return app;
    }

    /// <summary>The bound endpoints; call after <c>StartAsync</c>.</summary>
    public static EmulatorEndpoints GetEndpoints(this WebApplication app)
    {
        var listeners = app.Services.GetRequiredService<EmulatorListeners>();
        return new EmulatorEndpoints(listeners.Uri(ListenerKind.Http), listeners.Uri(ListenerKind.Grpc), listeners.Uri(ListenerKind.Metrics));
    }

    internal static IServiceCollection AddEmulatorServices(this IServiceCollection services)
    {
        services.AddOptions<EmulatorOptions>().BindConfiguration(EmulatorOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EmulatorOptions>, EmulatorOptionsValidator>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<EmulatorListeners>();
        services.AddSingleton<TritonMetrics>();
        services.AddSingleton<GpuModel>();
        services.AddSingleton(_ => TokenLanguageModel.CreateDefault());
        services.AddSingleton<IModelDefinitionSource, RepositoryModelDefinitionSource>();
        services.AddSingleton<TritonEmulator.Models.Vllm.VllmModelLoader>();
        services.AddSingleton<InferenceServer>();
        services.AddHostedService(static sp => sp.GetRequiredService<InferenceServer>());
        services.AddHealthChecks().AddCheck<EngineReadyHealthCheck>("engine");
        services.AddGrpc(options =>
        {
            options.MaxReceiveMessageSize = int.MaxValue;
            options.MaxSendMessageSize = int.MaxValue;
        });
        services.AddSingleton<GrpcInferenceService>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IServiceMethodProvider<GrpcInferenceEndpoint>, GrpcInferenceMethodProvider>());
        services.AddGrpcHealthChecks();
        return services;
    }

    private static void ConfigureListeners(KestrelServerOptions kestrel)
    {
        var options = kestrel.ApplicationServices.GetRequiredService<IOptions<EmulatorOptions>>().Value;
        var listeners = kestrel.ApplicationServices.GetRequiredService<EmulatorListeners>();
        var address = options.ParseListenAddress();
        Listen(kestrel, listeners, address, options.HttpPort, ListenerKind.Http, HttpProtocols.Http1);
        Listen(kestrel, listeners, address, options.GrpcPort, ListenerKind.Grpc, HttpProtocols.Http2);
        Listen(kestrel, listeners, address, options.MetricsPort, ListenerKind.Metrics, HttpProtocols.Http1);
    }

    private static void Listen(KestrelServerOptions kestrel, EmulatorListeners listeners, IPAddress address, int port, ListenerKind kind, HttpProtocols protocols) =>
        kestrel.Listen(address, port, listen =>
        {
            listen.Protocols = protocols;
            listeners.Add(kind, listen);
            listen.Use(next => connection =>
            {
                connection.Items[EmulatorListeners.ItemKey] = kind;
                return next(connection);
            });
        });

    internal static WebApplication MapEmulator(this WebApplication app)
    {
        app.UseRouting();
        // Each endpoint answers only on its own listener, like Triton's three ports.
        app.Use((context, next) =>
        {
            var wanted = context.GetEndpoint()?.Metadata.GetMetadata<ListenerMetadata>();
            var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
            if (wanted is not null && items is not null && items.TryGetValue(EmulatorListeners.ItemKey, out var actual) && !Equals(actual, wanted.Kind))
            {
                context.SetEndpoint(null);
            }
            return next(context);
        });
        app.MapKServeHttpApi().WithMetadata(new ListenerMetadata(ListenerKind.Http));
        app.MapDefaultEndpoints();
        app.MapGrpcService<GrpcInferenceEndpoint>().WithMetadata(new ListenerMetadata(ListenerKind.Grpc));
        app.MapGrpcHealthChecksService().WithMetadata(new ListenerMetadata(ListenerKind.Grpc));
        app.MapGet("/metrics", async (TritonMetrics metrics, HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
            await metrics.VllmPrefixCache.WriteAsync(context.Response.Body, context.RequestAborted);
        }).WithMetadata(new ListenerMetadata(ListenerKind.Metrics));
        return app;
    }
}

internal enum ListenerKind
{
    Http,
    Grpc,
    Metrics,
}

internal sealed record ListenerMetadata(ListenerKind Kind);

/// <summary>The three Kestrel listeners; after start their endpoints carry the bound ports.</summary>
internal sealed class EmulatorListeners
{
    public const string ItemKey = "TritonEmulator.Listener";

    private readonly Dictionary<ListenerKind, ListenOptions> _listeners = [];

    public void Add(ListenerKind kind, ListenOptions listen) => _listeners[kind] = listen;

    public Uri Uri(ListenerKind kind)
    {
        if (!_listeners.TryGetValue(kind, out var listen) || listen.IPEndPoint is not { } endpoint || endpoint.Port == 0)
        {
            throw new InvalidOperationException("the emulator has not started: call StartAsync first");
        }
        var host = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any)
            ? "localhost"
            : endpoint.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]" : endpoint.Address.ToString();
        return new Uri($"http://{host}:{endpoint.Port}");
    }
}

/// <summary>/health follows Triton's readiness: every model in the repository loaded.</summary>
internal sealed class EngineReadyHealthCheck(InferenceServer server) : Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck
{
    public Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(
        Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(server.IsReady
            ? Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy()
            : Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy("not every model is ready"));
}
