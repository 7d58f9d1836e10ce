using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Playwright;

namespace AppHost.Tests.Web;

/// <summary>
/// The whole graph with the emulator's realistic timing (≈20 ms per token, so an answer grows
/// visibly and can be stopped mid-way) and one headless Debian Chromium for the class.
/// </summary>
public sealed class WebAppFixture : IAsyncLifetime
{
    /// <summary>Debian's Chromium (test.sh installs it); Playwright never downloads a browser here.</summary>
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public DistributedApplication App { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public Uri WebUrl { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=a100-gptj-6b"]);
        App = await builder.BuildAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await App.StartAsync(cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("web", cts.Token);
        WebUrl = App.GetEndpoint("web", "http");

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        });
    }

    /// <summary>A fresh browser profile (empty localStorage) at the given size.</summary>
    public Task<IBrowserContext> NewContextAsync(int width = 1280, int height = 800) =>
        Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = WebUrl.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
            ColorScheme = ColorScheme.Light,
        });

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }
        _playwright?.Dispose();
        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }
}

/// <summary>
/// Runs after the parallel collections (the shared AppHost fixture among them) have finished and
/// released the fixed ports, so only one AppHost binds 5080/5081/5090/8000-8002 at a time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WebAppCollection : ICollectionFixture<WebAppFixture>
{
    public const string Name = "Web app";
}
