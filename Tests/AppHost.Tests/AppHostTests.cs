using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;

namespace AppHost.Tests;

/// <summary>Starts the real AppHost once for the class (≈15 s) and checks the graph comes up.</summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    public DistributedApplication App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=zero-latency"]);
        App = await builder.BuildAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await App.StartAsync(cts.Token);
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
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
}
