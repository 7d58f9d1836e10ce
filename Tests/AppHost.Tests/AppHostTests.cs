using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace AppHost.Tests;

/// <summary>Starts the real AppHost once for the class (≈15 s) and checks the graph comes up.</summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    private readonly Resources.TestStateDirectory _state = new();

    public DistributedApplication App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=zero-latency", _state.Argument]);
        App = await builder.BuildAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await App.StartAsync(cts.Token);
    }

    public async Task DisposeAsync()
    {
        await App.DisposeAsync();
        _state.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class AppHostCollection : ICollectionFixture<AppHostFixture>
{
    public const string Name = "AppHost";
}

[Collection(AppHostCollection.Name)]
public sealed class AppHostTests(AppHostFixture fixture)
{
    [Fact]
    public async Task Triton_StartsAndBecomesHealthy()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));

        await fixture.App.ResourceNotifications.WaitForResourceHealthyAsync("triton", cts.Token);

        using var http = fixture.App.CreateHttpClient("triton", "http");
        using var ready = await http.GetAsync("/v2/health/ready", cts.Token);
        Assert.True(ready.IsSuccessStatusCode);
    }

    [Fact]
    public async Task Gateway_RoutesOverEveryLocalTritonReplica()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await fixture.App.ResourceNotifications.WaitForResourceHealthyAsync("triton-1", cts.Token);
        await fixture.App.ResourceNotifications.WaitForResourceHealthyAsync("gateway", cts.Token);

        var model = fixture.App.Services.GetRequiredService<DistributedApplicationModel>();
        var gateway = model.Resources.OfType<ProjectResource>().Single(r => r.Name == "gateway");
        var resolved = await ExecutionConfigurationBuilder.Create(gateway).WithEnvironmentVariablesConfig()
            .BuildAsync(fixture.App.Services.GetRequiredService<DistributedApplicationExecutionContext>(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, cts.Token);
        var environment = resolved.EnvironmentVariables.ToDictionary(e => e.Key, e => e.Value);
        Assert.EndsWith(":8001", environment["services__triton__grpc__0"]);
        Assert.EndsWith(":8011", environment["services__triton__grpc__1"]);
        Assert.EndsWith(":8002", environment["services__triton__metrics__0"]);
        Assert.EndsWith(":8012", environment["services__triton__metrics__1"]);

        // Requests spread over both replicas (by load; idle ties rotate).
        using var http = fixture.App.CreateHttpClient("gateway", "http");
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", GatewayResourceExtensions.DevApiKey);
        var requests = Enumerable.Range(0, 6).Select(_ => http.PostAsync("/v1/completions", new StringContent(
            """{"model":"gpt-j-6b","prompt":"Hello","max_tokens":64}""", System.Text.Encoding.UTF8, "application/json"), cts.Token)).ToList();
        foreach (var response in await Task.WhenAll(requests))
        {
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(cts.Token));
            response.Dispose();
        }
        foreach (var replica in new[] { "triton", "triton-1" })
        {
            // A request's statistics are recorded when the engine releases it, which may follow its last
            // response to the client (as on Triton): the scrape converges, so wait for it, bounded.
            using var metrics = fixture.App.CreateHttpClient(replica, "metrics");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            double succeeded;
            while (true)
            {
                var text = await metrics.GetStringAsync("/metrics", cts.Token);
                succeeded = text.Split('\n').Where(l => l.StartsWith("nv_inference_request_success{", StringComparison.Ordinal))
                    .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
                if (succeeded > 0 || DateTime.UtcNow > deadline)
                {
                    break;
                }
                await Task.Delay(50, cts.Token);
            }
            Assert.True(succeeded > 0, replica + " served no request");
        }
    }
}
