using Gateway.Auth;
using Gateway.Generation;
using Gateway.Grpc;
using Gateway.Keys;
using Gateway.Ledger;
using Gateway.Lifecycle;
using Gateway.Models;
using Gateway.OpenAi;
using Gateway.Quotas;
using Gateway.Routing;
using Gateway.Telemetry;
using Gateway.Text;
using Gateway.Triton;
using Gateway.Triton.Contracts;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

public static class GatewayServiceCollectionExtensions
{
    /// <summary>The default catalogue entry, used only when <c>Gateway:Models</c> is empty (local development).</summary>
    internal static readonly Dictionary<string, string?> DefaultCatalog = new()
    {
        ["Gateway:Models:gpt-j-6b:TritonModel"] = "fastertransformer",
        ["Gateway:Models:gpt-j-6b:Contract"] = TritonContracts.FasterTransformer,
        ["Gateway:Models:gpt-j-6b:Tokenizer"] = TextTokenizers.Gpt2,
        ["Gateway:Models:gpt-j-6b:ChatTemplate"] = ChatTemplates.GptPlain,
        ["Gateway:Models:gpt-j-6b:ContextWindow"] = "2048",
        ["Gateway:Models:gpt-j-6b:MaxOutputTokens"] = "1024",
        ["Gateway:Models:gpt-j-6b:EndId"] = "50256",
        ["Gateway:Models:gpt-j-6b:StartId"] = "50256",
    };

    /// <summary>Options, Kestrel listeners, auth, quotas, catalogue, Triton client, both faces, telemetry.</summary>
    public static WebApplicationBuilder AddGatewayServices(this WebApplicationBuilder builder)
    {
        if (!builder.Configuration.GetSection("Gateway:Models").GetChildren().Any())
        {
            builder.Configuration.AddInMemoryCollection(DefaultCatalog);
        }
        var services = builder.Services;

        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddOptions<ModelCatalogOptions>().BindConfiguration(ModelCatalogOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ModelCatalogOptions>, ModelCatalogOptionsValidator>();
        services.AddOptions<ModelDiscoveryOptions>().BindConfiguration(ModelDiscoveryOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ModelDiscoveryOptions>, ModelDiscoveryOptionsValidator>();
        services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ApiKeyOptions>, ApiKeyOptionsValidator>();
        services.AddOptions<TritonOptions>().BindConfiguration(TritonOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IPostConfigureOptions<TritonOptions>, TritonOptionsSetup>();
        services.AddSingleton<IValidateOptions<TritonOptions>, TritonOptionsValidator>();
        services.AddOptions<RoutingOptions>().BindConfiguration(RoutingOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RoutingOptions>, RoutingOptionsValidator>();
        services.AddOptions<SseOptions>().BindConfiguration(SseOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SseOptions>, SseOptionsValidator>();
        // Before the drain: hosted services stop in reverse, so the ledger flushes after the drain ended the streams.
        services.AddKeysAndLedger();
        services.AddDrain();

        var listeners = new GatewayListeners();
        services.AddSingleton(listeners);
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<GatewayOptions>>((kestrel, gatewayOptions) =>
        {
            var options = gatewayOptions.Value;
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            Listen(kestrel, options, options.RestPort, HttpProtocols.Http1AndHttp2, listenOptions => listeners.Rest = listenOptions);
            Listen(kestrel, options, options.GrpcPort, HttpProtocols.Http2, listenOptions => listeners.Grpc = listenOptions);
        });

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<GatewayTelemetry>();
        services.AddSingleton<TextTokenizers>();
        services.AddSingleton<ITritonContract, FasterTransformerContract>();
        services.AddSingleton<ITritonContract, VllmContract>();
        services.AddSingleton<ITritonContract, TensorRtLlmContract>();
        services.AddSingleton<IModelCatalog, ModelCatalog>();
        services.TryAddSingleton<IApiKeyAuthenticator, ApiKeyAuthenticator>();
        services.AddQuotas();
        services.AddTritonRouting();
        services.AddHostedService<TritonModelDiscovery>();
        services.AddSingleton<IGenerationService, GenerationService>();
        services.AddOpenAiApi();

        services.AddGrpc(options => options.EnableDetailedErrors = false)
            .AddServiceOptions<LlmGatewayService>(options => options.Interceptors.Add<DrainInterceptor>());
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(); // reports the same checks as /health
        return builder;
    }

    /// <summary>REST, gRPC (with health and reflection) and the /health and /alive probes.</summary>
    public static WebApplication MapGateway(this WebApplication app)
    {
        // Resolve the catalogue now: tokenizers load before the first request, not during it.
        app.Lifetime.ApplicationStarted.Register(static state => ((IServiceProvider)state!).GetRequiredService<IModelCatalog>(), app.Services);
        app.UseWhen(static context => context.Request.Path.StartsWithSegments("/v1"), static api => api.UseMiddleware<DrainMiddleware>());
        app.MapOpenAiApi();
        app.MapAdminApi();
        app.MapGrpcService<LlmGatewayService>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        app.MapDefaultEndpoints();
        return app;
    }

    /// <summary>
    /// The graceful drain (Gateway/Lifecycle): readiness check, request counting, refusal and the
    /// deadline. The host's own shutdown timeout is set past the drain so it never cuts it short.
    /// </summary>
    private static void AddDrain(this IServiceCollection services)
    {
        services.AddOptions<ShutdownOptions>().BindConfiguration(ShutdownOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ShutdownOptions>, ShutdownOptionsValidator>();
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>(static (host, shutdown) =>
            host.ShutdownTimeout = shutdown.Value.DrainTimeout + shutdown.Value.FinalWriteTimeout + TimeSpan.FromSeconds(5));
        services.AddSingleton<GatewayDrain>();
        services.AddHostedService<DrainService>();
        services.AddHealthChecks().AddCheck<DrainHealthCheck>("drain");
    }

    /// <summary>Replica discovery, health, load scraping and the load-aware router (Gateway/Routing).</summary>
    private static void AddTritonRouting(this IServiceCollection services)
    {
        services.TryAddSingleton<HostResolver>(static (host, cancellationToken) => System.Net.Dns.GetHostAddressesAsync(host, cancellationToken));
        services.TryAddSingleton(new RoutingRandom(Random.Shared));
        services.AddSingleton<TritonReplicaSet>();
        services.AddSingleton<TritonRouter>();
        services.AddSingleton<ITritonRouter>(static sp => sp.GetRequiredService<TritonRouter>());
        services.AddSingleton<ReplicaMonitor>();
        services.AddHostedService(static sp => sp.GetRequiredService<ReplicaMonitor>());
    }

    private static void Listen(KestrelServerOptions kestrel, GatewayOptions options, int port, HttpProtocols protocols, Action<ListenOptions> capture)
    {
        void Configure(ListenOptions listenOptions)
        {
            listenOptions.Protocols = protocols;
            capture(listenOptions);
        }
        if (options.ListenOnLoopbackOnly)
        {
            kestrel.Listen(System.Net.IPAddress.Loopback, port, Configure);
        }
        else
        {
            kestrel.ListenAnyIP(port, Configure);
        }
    }
}

/// <summary>The Kestrel listeners, kept to report the bound ports (port 0 in tests).</summary>
internal sealed class GatewayListeners
{
    public ListenOptions? Rest { get; set; }
    public ListenOptions? Grpc { get; set; }
}
