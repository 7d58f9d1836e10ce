using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;

namespace AppHost.Tests;

/// <summary>The AppHost serving <c>models-trtllm/</c> on its two local replicas (KV-cache reuse on), once for the class.</summary>
public sealed class TrtLlmAppHostFixture : IAsyncLifetime
{
    private readonly Resources.TestStateDirectory _state = new();

    public DistributedApplication App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=zero-latency", "Triton:ModelRepository=models-trtllm", _state.Argument]);
        App = await builder.BuildAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await App.StartAsync(cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("triton", cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("triton-1", cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("gateway", cts.Token);
    }

    public async Task DisposeAsync()
    {
        if (App is not null)
        {
            await App.DisposeAsync();
        }
        _state.Dispose();
    }
}

/// <summary>One AppHost at a time binds the fixed ports: after the parallel collections, like the web app's.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrtLlmAppHostCollection : ICollectionFixture<TrtLlmAppHostFixture>
{
    public const string Name = "AppHost (models-trtllm)";
}

[Collection(TrtLlmAppHostCollection.Name)]
public sealed class PrefixRoutingTests(TrtLlmAppHostFixture fixture)
{
    private static readonly string[] Replicas = ["triton", "triton-1"];

    private static readonly string[] Words =
        "the gateway sends every turn of a chat to the replica whose cache already holds the system prompt and history so the engine prefills only what is new while other tenants spread over the rest of the fleet by load".Split(' ');

    private static string Prompt(int seed, int words)
    {
        var random = new Random(seed);
        return string.Join(' ', Enumerable.Range(0, words).Select(_ => Words[random.Next(Words.Length)]));
    }

    private async Task<(double Served, double Reused)> ReplicaAsync(string replica, CancellationToken cancellationToken)
    {
        using var metrics = fixture.App.CreateHttpClient(replica, "metrics");
        var lines = (await metrics.GetStringAsync("/metrics", cancellationToken)).Split('\n');
        double Value(string series) => lines.Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        return (Value("nv_inference_request_success{model=\"tensorrt_llm\",version=\"1\"}"),
            Value("nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"reused\",model=\"tensorrt_llm\",version=\"1\"}"));
    }

    private async Task<(double Served, double Reused)[]> SnapshotAsync(CancellationToken cancellationToken) =>
        [await ReplicaAsync(Replicas[0], cancellationToken), await ReplicaAsync(Replicas[1], cancellationToken)];

    private HttpClient Gateway()
    {
        var http = fixture.App.CreateHttpClient("gateway", "http");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", GatewayResourceExtensions.DevApiKey);
        return http;
    }

    private static async Task ChatAsync(HttpClient http, string system, string question, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new
        {
            model = "gpt-j-6b",
            max_tokens = 8,
            messages = new object[] { new { role = "system", content = system }, new { role = "user", content = question } },
        });
        using var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), cancellationToken);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    [Fact]
    public async Task SharedSystemPrompt_LandsOnOneReplica_WhoseReusedBlocksRise_AndOtherPrefixesStillSpread()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var http = Gateway();
        var system = Prompt(350, 350); // 350 words: ~7 blocks of 64 tokens
        var before = await SnapshotAsync(cts.Token);

        // Eight turns of chats behind the same system prompt, one after the other (as chat turns come).
        for (var i = 0; i < 8; i++)
        {
            await ChatAsync(http, system, $"Question {i}: what does the cache hold now?", cts.Token);
        }

        var after = await SnapshotAsync(cts.Token);
        var served = new[] { after[0].Served - before[0].Served, after[1].Served - before[1].Served };
        Assert.Equal(8, served.Sum());
        var home = served[0] >= served[1] ? 0 : 1;
        Assert.True(served[home] >= 7, $"the shared prefix should stay on one replica: {served[0]} / {served[1]}");
        var reused = after[home].Reused - before[home].Reused;
        Assert.True(reused >= 5 * (served[home] - 1), $"{Replicas[home]} should reuse the system prompt's blocks on every turn after the first: {reused} reused blocks");

        // Different system prompts, sent together: no replica holds them, so load spreads them.
        var spreadBefore = await SnapshotAsync(cts.Token);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => ChatAsync(http, Prompt(1000 + i, 350), "Hello?", cts.Token)));
        var spreadAfter = await SnapshotAsync(cts.Token);
        var spread = new[] { spreadAfter[0].Served - spreadBefore[0].Served, spreadAfter[1].Served - spreadBefore[1].Served };
        Assert.Equal(8, spread.Sum());
        Assert.True(spread[0] >= 1 && spread[1] >= 1, $"different prefixes should spread over both replicas: {spread[0]} / {spread[1]}");
    }
}
