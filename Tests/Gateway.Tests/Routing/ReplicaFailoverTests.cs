using System.Net;
using System.Text;
using Gateway.Routing;
using Gateway.Tests.EndToEnd;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Routing;

/// <summary>Two real TritonEmulator replicas (A100 GPT-J timing, so streams take a while) behind one gateway; one is killed.</summary>
public sealed class ReplicaFailoverTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private readonly WebApplication[] _emulators = new WebApplication[2];
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        // Probe rounds run only when a test asks for them (ReplicaMonitor.RefreshAsync), never on the clock.
        // A live replica's probe never times out, however loaded the machine (a dead one's fails at
        // once: connection refused), so every failed probe counted is the killed replica's.
        var settings = new Dictionary<string, string?> { ["Gateway:Routing:ProbeInterval"] = "01:00:00", ["Gateway:Routing:ProbeTimeout"] = "00:00:30" };
        foreach (var (key, value) in global::Gateway.Hosting.GatewayServiceCollectionExtensions.DefaultCatalog)
        {
            settings[key] = value;
            // Same Triton model with an end id the engine never produces: runs to max_tokens.
            settings[key.Replace("gpt-j-6b", EmulatorHost.LongModel, StringComparison.Ordinal)] = key.EndsWith(":EndId", StringComparison.Ordinal) ? "50255" : value;
        }
        for (var i = 0; i < _emulators.Length; i++)
        {
            _emulators[i] = EmulatorHost.BuildEmulator("a100-gptj-6b");
            await _emulators[i].StartAsync();
            var endpoints = _emulators[i].GetEndpoints();
            settings[$"Gateway:Triton:Endpoints:{i}"] = endpoints.Grpc.ToString();
            settings[$"Gateway:Triton:MetricsEndpoints:{i}"] = endpoints.Metrics.ToString();
        }
        _gateway = await GatewayHost.StartAsync(new Uri(settings["Gateway:Triton:Endpoints:0"]!), settings);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        foreach (var emulator in _emulators)
        {
            await emulator.StopAsync(new CancellationToken(canceled: true));
            await emulator.DisposeAsync();
        }
    }

    private TritonReplica[] Replicas => _gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas;

    private Task<HttpResponseMessage> StreamAsync(int maxTokens) => _gateway.Http.SendAsync(
        new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($$"""{"model":"{{EmulatorHost.LongModel}}","prompt":"Once upon a time","max_tokens":{{maxTokens}},"stream":true}""", Encoding.UTF8, "application/json"),
        },
        HttpCompletionOption.ResponseHeadersRead);

    [Fact]
    public async Task ReplicaKilledMidRun_CutStreamsEndWithErrorEvents_AndNoRequestThatHadNotStartedFails()
    {
        // One long stream per replica (routing by load: the second goes where the first is not).
        // The FT model batches statically, so later requests queue on a replica until its batch ends.
        var streams = new List<(HttpResponseMessage Response, SseReader Reader)>();
        for (var i = 0; i < 2; i++)
        {
            var response = await StreamAsync(150).WaitAsync(Wait);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var reader = new SseReader(await response.Content.ReadAsStreamAsync());
            Assert.NotNull(await reader.NextAsync().WaitAsync(Wait)); // the first token is out
            streams.Add((response, reader));
        }
        Assert.All(Replicas, replica => Assert.Equal(1, replica.InFlight));

        // Requests that have not produced a token yet when the replica dies, and more right after.
        var notStarted = new List<Task<HttpResponseMessage>>();
        for (var i = 0; i < 4; i++)
        {
            notStarted.Add(StreamAsync(8));
        }
        using (var cts = new CancellationTokenSource(Wait))
        {
            while (Replicas[0].InFlight + Replicas[1].InFlight < 6)
            {
                await Task.Delay(10, cts.Token); // until the gateway has routed all four (no event to await)
            }
        }
        Assert.All(Replicas, replica => Assert.True(replica.InFlight >= 2)); // requests queued on each, behind the running batch
        await _emulators[0].StopAsync(new CancellationToken(canceled: true)); // kill: connections aborted
        for (var i = 0; i < 8; i++)
        {
            notStarted.Add(StreamAsync(8));
        }

        var errors = 0;
        var finished = 0;
        foreach (var (response, reader) in streams)
        {
            var events = await reader.ReadAllAsync().WaitAsync(Wait);
            Assert.Equal("[DONE]", events[^1]); // every stream ends with [DONE], a failed one right after its error event
            if (Json.Parse(events[^2]).TryGetProperty("error", out var error))
            {
                Assert.Equal("backend_error", error.GetProperty("code").GetString());
                errors++;
            }
            else
            {
                finished++;
            }
            reader.Dispose();
            response.Dispose();
        }
        Assert.Equal((1, 1), (errors, finished));

        foreach (var pending in notStarted)
        {
            using var response = await pending.WaitAsync(Wait);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new SseReader(await response.Content.ReadAsStreamAsync());
            var events = await reader.ReadAllAsync().WaitAsync(Wait);
            Assert.Equal("[DONE]", events[^1]);
        }
        Assert.True(Replicas[0].IsEjected);
    }

    [Fact]
    public async Task IdleReplicaKilled_IsEjectedByHealthProbesWithinTwoSeconds_AndNewRequestsAvoidIt()
    {
        await _emulators[0].StopAsync(new CancellationToken(canceled: true));

        // The monitor's loop runs a probe round every ProbeInterval; running the rounds here makes the
        // count exact instead of racing the clock: the dead replica is out after ProbeFailuresToEject rounds.
        // Rounds are counted until the replica is out: with the default settings the rounds it took,
        // the last one waiting out its probe timeout, must fit in 2 s. A monitor that never ejects, or
        // needs more failed rounds than fit, fails here; so does one that ejects on a single failure
        // (a replica would flap out on one lost probe).
        var monitor = _gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        var rounds = 0;
        while (!Replicas[0].IsEjected && rounds < 10)
        {
            await monitor.RefreshAsync(CancellationToken.None);
            rounds++;
            Assert.True(rounds > 1 || !Replicas[0].IsEjected, "ejected after a single failed probe");
        }
        Assert.True(Replicas[0].IsEjected, $"still routable after {rounds} failed probe rounds");
        Assert.False(Replicas[1].IsEjected);
        var defaults = new RoutingOptions();
        Assert.True(rounds * defaults.ProbeInterval + defaults.ProbeTimeout <= TimeSpan.FromSeconds(2),
            $"{rounds} rounds of {defaults.ProbeInterval.TotalMilliseconds} ms + a {defaults.ProbeTimeout.TotalMilliseconds} ms probe timeout exceed 2 s");

        var deadPicked = Replicas[0].LastPicked;
        var livePicked = Replicas[1].LastPicked;
        for (var i = 0; i < 4; i++)
        {
            using var response = await StreamAsync(4).WaitAsync(Wait);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new SseReader(await response.Content.ReadAsStreamAsync());
            Assert.Equal("[DONE]", (await reader.ReadAllAsync().WaitAsync(Wait))[^1]);
            // Each request went to the live replica at the first try: the dead one was never picked
            // again (not even for an attempt that failed over), the live one was picked every time.
            Assert.Equal(deadPicked, Replicas[0].LastPicked);
            Assert.NotEqual(livePicked, Replicas[1].LastPicked);
            livePicked = Replicas[1].LastPicked;
        }
        Assert.True(Replicas[0].IsEjected);
    }
}
