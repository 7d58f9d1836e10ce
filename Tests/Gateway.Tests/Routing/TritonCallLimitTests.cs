using System.Net;
using System.Text;
using Gateway.Models;
using Gateway.Routing;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>Calls to Triton outside a request are bounded: a deadline on discovery calls, a size limit on the metrics body.</summary>
public sealed class TritonCallLimitTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Discovery_TritonAcceptsTheCallAndNeverAnswers_TheRoundEndsAtCallTimeout()
    {
        await using var triton = await ScriptedTriton.StartAsync();
        triton.HangRepositoryIndex = true;
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?> { ["Gateway:Routing:ProbeInterval"] = "01:00:00" });
        var time = new ObservableTimeProvider();
        var callTimeout = TimeSpan.FromSeconds(7);
        var discovery = new TritonModelDiscovery(
            Options.Create(new ModelDiscoveryOptions { Enabled = true, CallTimeout = callTimeout }),
            gateway.App.Services.GetRequiredService<IModelCatalog>(),
            gateway.App.Services.GetRequiredService<TritonReplicaSet>(),
            time,
            NullLogger<TritonModelDiscovery>.Instance);

        var round = discovery.DiscoverAsync((ModelCatalog)gateway.App.Services.GetRequiredService<IModelCatalog>(), CancellationToken.None);
        await time.WaitForTimerAsync(callTimeout, Wait); // the deadline is armed on the (fake) clock
        await triton.RepositoryIndexReceived.WaitAsync(Wait); // and Triton holds the call
        Assert.False(round.IsCompleted);
        time.Advance(callTimeout);

        await round.WaitAsync(Wait); // returns, without throwing, once the deadline passes
        Assert.Equal(1, triton.RepositoryIndexCalls);
    }

    [Fact]
    public async Task MetricsScrape_BodyLargerThanMaxMetricsBytes_IsAbandoned_AndThePreviousLoadIsKept()
    {
        var small = Encoding.UTF8.GetBytes("nv_inference_pending_request_count{model=\"m\",version=\"1\"} 3\n");
        var padding = new StringBuilder();
        while (padding.Length < 2 * 1024 * 1024)
        {
            padding.Append("# HELP padding_metric_family a very long exposition that never ends well\n");
        }
        var huge = Encoding.UTF8.GetBytes(padding + "nv_inference_pending_request_count{model=\"m\",version=\"1\"} 50\n");
        var body = small;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        await using var metrics = builder.Build();
        metrics.MapGet("/metrics", () => Results.Bytes(Volatile.Read(ref body), "text/plain; version=0.0.4"));
        await metrics.StartAsync();
        var metricsAddress = new Uri(metrics.Urls.First());

        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Triton:MetricsEndpoints:0"] = metricsAddress.ToString(),
            ["Gateway:Routing:ProbeInterval"] = "01:00:00",
            ["Gateway:Routing:MaxMetricsBytes"] = (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, new FakeTimeProvider(DateTimeOffset.UtcNow));
        var replica = Assert.Single(gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas);
        var monitor = gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        await monitor.RefreshAsync(default).WaitAsync(Wait);
        Assert.Equal(3, replica.Load?.Pending);

        Volatile.Write(ref body, huge);
        await monitor.RefreshAsync(default).WaitAsync(Wait);

        Assert.Equal(3, replica.Load?.Pending); // the 2 MiB body was cut off at 1 MiB, never parsed
    }
}
