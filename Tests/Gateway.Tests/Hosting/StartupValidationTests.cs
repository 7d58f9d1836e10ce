using Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Hosting;

public sealed class StartupValidationTests
{
    private static async Task<string> StartFailureAsync(Dictionary<string, string?> settings)
    {
        settings.TryAdd("Gateway:RestPort", "0");
        settings.TryAdd("Gateway:GrpcPort", "0");
        settings.TryAdd("Gateway:ListenOnLoopbackOnly", "true");
        var app = GatewayApplication.Build([], builder => builder.Configuration.AddInMemoryCollection(settings));
        await using (app)
        {
            var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
            return error.Message;
        }
    }

    [Fact]
    public async Task Start_NoTritonEndpoint_FailsNamingTheKey()
    {
        var message = await StartFailureAsync([]);
        Assert.Contains("Gateway:Triton:Endpoints", message);
    }

    [Fact]
    public async Task Start_BadCatalogueEntry_FailsNamingTheKey()
    {
        var message = await StartFailureAsync(new()
        {
            ["Gateway:Triton:Endpoints:0"] = "http://127.0.0.1:1",
            ["Gateway:Models:m1:TritonModel"] = "ft",
            ["Gateway:Models:m1:Contract"] = "onnx",
            ["Gateway:Models:m1:ContextWindow"] = "100",
            ["Gateway:Models:m1:MaxOutputTokens"] = "200",
        });
        Assert.Contains("Gateway:Models:m1:Contract", message);
        Assert.Contains("Gateway:Models:m1:MaxOutputTokens", message);
    }

    [Fact]
    public async Task Start_ZeroDiscoveryCallTimeout_FailsNamingTheKey()
    {
        var message = await StartFailureAsync(new()
        {
            ["Gateway:Triton:Endpoints:0"] = "http://127.0.0.1:1",
            ["Gateway:ModelDiscovery:CallTimeout"] = "00:00:00",
        });
        Assert.Contains("Gateway:ModelDiscovery:CallTimeout must be positive", message);
    }

    [Fact]
    public async Task Start_TinyMaxMetricsBytes_FailsNamingTheKey()
    {
        var message = await StartFailureAsync(new()
        {
            ["Gateway:Triton:Endpoints:0"] = "http://127.0.0.1:1",
            ["Gateway:Routing:MaxMetricsBytes"] = "10",
        });
        Assert.Contains("Gateway:Routing:MaxMetricsBytes", message);
    }

    [Fact]
    public async Task Start_UnknownChatTemplate_FailsNamingTheKeyAndTheKnownTemplates()
    {
        var message = await StartFailureAsync(new()
        {
            ["Gateway:Triton:Endpoints:0"] = "http://127.0.0.1:1",
            ["Gateway:Models:tiny:TritonModel"] = "tiny",
            ["Gateway:Models:tiny:Contract"] = "vllm",
            ["Gateway:Models:tiny:ChatTemplate"] = "alpaca",
        });
        Assert.Contains("Gateway:Models:tiny:ChatTemplate 'alpaca' is unknown", message);
        Assert.Contains("chatml", message);
        Assert.DoesNotContain("Gateway:Models:tiny:Contract", message);
    }

    [Fact]
    public async Task Start_ServiceDiscoveryEntry_IsUsedWhenNoEndpointsAreConfigured()
    {
        var app = GatewayApplication.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Gateway:RestPort"] = "0",
            ["Gateway:GrpcPort"] = "0",
            ["Gateway:ListenOnLoopbackOnly"] = "true",
            ["services:triton:grpc:0"] = "http://localhost:8001",
        }));
        await using (app)
        {
            await app.StartAsync();
            var options = (IOptions<Gateway.Triton.TritonOptions>)app.Services.GetService(typeof(IOptions<Gateway.Triton.TritonOptions>))!;
            Assert.Equal(["http://localhost:8001"], options.Value.Endpoints);
            var endpoints = app.GetEndpoints();
            Assert.NotEqual(endpoints.Rest.Port, endpoints.Grpc.Port);
            await app.StopAsync();
        }
    }
}
