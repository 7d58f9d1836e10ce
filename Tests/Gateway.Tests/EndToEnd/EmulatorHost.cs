using Gateway.Tests.Functional;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Triton.Inference;
using TritonEmulator.Hosting;

namespace Gateway.Tests.EndToEnd;

/// <summary>The real TritonEmulator (the repository's models/, A100 GPT-J timing) with a gateway in front.</summary>
public sealed class EmulatorHost : IAsyncLifetime
{
    public const string LongModel = "gpt-j-6b-long";

    public WebApplication Emulator { get; private set; } = null!;

    public EmulatorEndpoints Endpoints { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public GrpcChannel TritonChannel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = BuildEmulator("a100-gptj-6b");
        await Emulator.StartAsync();
        Endpoints = Emulator.GetEndpoints();
        TritonChannel = GrpcChannel.ForAddress(Endpoints.Grpc);
        var models = new Dictionary<string, string?>();
        foreach (var (key, value) in global::Gateway.Hosting.GatewayServiceCollectionExtensions.DefaultCatalog)
        {
            models[key] = value;
            // "gpt-j-6b-long": the same Triton model with an end id the engine's corpus never produces,
            // so a generation runs to max_tokens (seconds on the A100 profile) for cancellation tests.
            models[key.Replace("gpt-j-6b", LongModel, StringComparison.Ordinal)] = key.EndsWith(":EndId", StringComparison.Ordinal) ? "50255" : value;
        }
        Gateway = await GatewayHost.StartAsync(Endpoints.Grpc, models);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        TritonChannel.Dispose();
        await Emulator.StopAsync(new CancellationToken(canceled: true));
        await Emulator.DisposeAsync();
    }

    /// <summary>Cancelled requests of the FT model in Triton's own statistics (response_stats cancel count).</summary>
    public async Task<ulong> CancelledCountAsync()
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel);
        var stats = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "fastertransformer" });
        return stats.ModelStats.Aggregate(0ul, (sum, model) => sum + model.ResponseStats.Values.Aggregate(0ul, (s, r) => s + (r.Cancel?.Count ?? 0)));
    }

    /// <summary>Waits until Triton's statistics count more cancelled requests than <paramref name="before"/>.</summary>
    public async Task WaitForCancelAsync(ulong before, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (await CancelledCountAsync() <= before)
        {
            // Statistics have no push channel; poll them until the cancel shows (bounded by the timeout).
            await Task.Delay(TimeSpan.FromMilliseconds(50), cts.Token);
        }
    }

    /// <summary>A TritonEmulator on loopback port 0 serving the repository's models/ with a timing profile.</summary>
    public static WebApplication BuildEmulator(string profile) => EmulatorApplication.Build([], builder =>
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Emulator:HttpPort"] = "0",
            ["Emulator:GrpcPort"] = "0",
            ["Emulator:MetricsPort"] = "0",
            ["Emulator:ListenAddress"] = "127.0.0.1",
            ["Emulator:ModelRepository"] = FindModels(),
            ["Emulator:Profile"] = profile,
        });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
    });

    internal static string FindModels()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "models", "fastertransformer", "config.pbtxt");
            if (File.Exists(candidate))
            {
                return Path.Combine(dir.FullName, "models");
            }
        }
        throw new DirectoryNotFoundException("models/ not found above the test output folder");
    }
}
