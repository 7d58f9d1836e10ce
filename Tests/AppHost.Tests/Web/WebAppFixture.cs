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

    /// <summary>The tiny llama model (vLLM contract), found by the gateway's model discovery.</summary>
    public const string TinyModel = "tiny";

    /// <summary>A model repository: the shipped FasterTransformer model plus the tiny llama GGUF.</summary>
    public string Repository { get; } = Directory.CreateTempSubdirectory("web-models-").FullName;

    private readonly Resources.TestStateDirectory _state = new();

    public async Task InitializeAsync()
    {
        WriteRepository();
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=a100-gptj-6b", $"Triton:ModelRepository={Repository}", _state.Argument]);
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

    private void WriteRepository()
    {
        var shipped = Path.Combine(RepositoryRoot(), "models", "fastertransformer");
        foreach (var file in Directory.EnumerateFiles(shipped, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(Repository, "fastertransformer", Path.GetRelativePath(shipped, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var version = Directory.CreateDirectory(Path.Combine(Repository, TinyModel, "1")).FullName;
        File.WriteAllText(Path.Combine(Repository, TinyModel, "config.pbtxt"), """
            backend: "vllm"
            instance_group [ { count: 1, kind: KIND_MODEL } ]
            parameters { key: "emulator_max_contexts" value { string_value: "2" } }
            parameters { key: "chat_template" value { string_value: "chatml" } }
            parameters { key: "max_model_len" value { string_value: "256" } }
            """);
        File.WriteAllText(Path.Combine(version, "model.json"), """{"model": "tiny.gguf"}""");
        TritonEmulator.Tests.Models.Vllm.TinyLlama.Create().WriteGguf(Path.Combine(version, "tiny.gguf"));
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Aspire.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("Aspire.sln not found above " + AppContext.BaseDirectory);
    }

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
        Directory.Delete(Repository, recursive: true);
        _state.Dispose();
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
