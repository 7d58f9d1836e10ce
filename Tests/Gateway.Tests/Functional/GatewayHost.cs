using System.Net.Http.Headers;
using Gateway.Auth;
using Gateway.Hosting;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Functional;

internal static class TestKeys
{
    /// <summary>Every model, no limits.</summary>
    public const string Full = "sk-test-full";

    /// <summary>Only the model "other-model".</summary>
    public const string OtherModelOnly = "sk-test-other";

    /// <summary>One request per minute.</summary>
    public const string OneRequestPerMinute = "sk-test-rpm1";
}

/// <summary>The real gateway on loopback port 0 (REST and gRPC) in front of a given Triton address.</summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    private GatewayHost(WebApplication app)
    {
        App = app;
        Endpoints = app.GetEndpoints();
        Http = new HttpClient { BaseAddress = Endpoints.Rest, Timeout = TimeSpan.FromSeconds(60) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TestKeys.Full);
        Grpc = GrpcChannel.ForAddress(Endpoints.Grpc);
    }

    public WebApplication App { get; }

    public GatewayEndpoints Endpoints { get; }

    /// <summary>A client with the full-access key.</summary>
    public HttpClient Http { get; }

    public GrpcChannel Grpc { get; }

    public static async Task<GatewayHost> StartAsync(Uri triton, IDictionary<string, string?>? settings = null, TimeProvider? time = null, Action<IServiceCollection>? services = null)
    {
        var config = new Dictionary<string, string?>
        {
            ["Gateway:RestPort"] = "0",
            ["Gateway:GrpcPort"] = "0",
            ["Gateway:ListenOnLoopbackOnly"] = "true",
            ["Gateway:MaxRequestBodyBytes"] = "65536",
            ["Gateway:Triton:Endpoints:0"] = triton.ToString(),
            ["Gateway:Triton:FirstTokenTimeout"] = "00:00:30",
            ["Gateway:Triton:IdleTimeout"] = "00:00:30",
            // No load balancer in front: stopping a test gateway drains without an accept window.
            ["Gateway:Shutdown:AcceptWindow"] = "00:00:00",
            ["Gateway:Shutdown:DrainTimeout"] = "00:00:03",
            ["Gateway:ApiKeys:full:Sha256"] = ApiKeyHash.ToHex(TestKeys.Full),
            ["Gateway:ApiKeys:full:Tenant"] = "tenant-full",
            ["Gateway:ApiKeys:full:AllowedModels:0"] = "*",
            ["Gateway:ApiKeys:other:Sha256"] = ApiKeyHash.ToHex(TestKeys.OtherModelOnly),
            ["Gateway:ApiKeys:other:Tenant"] = "tenant-other",
            ["Gateway:ApiKeys:other:AllowedModels:0"] = "other-model",
            ["Gateway:ApiKeys:rpm1:Sha256"] = ApiKeyHash.ToHex(TestKeys.OneRequestPerMinute),
            ["Gateway:ApiKeys:rpm1:Tenant"] = "tenant-rpm1",
            ["Gateway:ApiKeys:rpm1:AllowedModels:0"] = "*",
            ["Gateway:ApiKeys:rpm1:RequestsPerMinute"] = "1",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }
        var app = GatewayApplication.Build([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(config);
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            if (time is not null)
            {
                builder.Services.AddSingleton(time);
            }
            services?.Invoke(builder.Services);
        });
        await app.StartAsync();
        return new GatewayHost(app);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Grpc.Dispose();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await App.StopAsync(stop.Token);
        await App.DisposeAsync();
    }
}
