using System.Net;
using System.Text;
using Gateway.Routing;
using Gateway.Tests.Functional;
using Gateway.Triton;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>
/// The gateway over a headless Service (fake DNS, a real scripted Triton on 127.0.0.1): the gRPC
/// channel of a replica whose address leaves the Service is disposed once nothing runs on it any
/// more, never under a running stream, and the address gets a fresh channel when it comes back.
/// </summary>
public sealed class ChannelReleaseTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    // Nothing listens there: the replica that stays in the Service while 127.0.0.1 is gone.
    private static readonly IPAddress Elsewhere = IPAddress.Parse("127.0.0.2");

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly TaskCompletionSource _heldStreamsFinish = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IPAddress[] _addresses = [IPAddress.Loopback];
    private ScriptedTriton _triton = null!;
    private GatewayHost _gateway = null!;

    private TritonReplicaSet Set => _gateway.App.Services.GetRequiredService<TritonReplicaSet>();

    private ReplicaMonitor Monitor => _gateway.App.Services.GetRequiredService<ReplicaMonitor>();

    public async Task InitializeAsync()
    {
        // Every call sends one token, then waits until the test lets the held streams finish.
        _triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" a"));
            await _heldStreamsFinish.Task.WaitAsync(call.Aborted);
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" b"));
            await call.SendEmptyFinalAsync();
        });
        _gateway = await GatewayHost.StartAsync(_triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Triton:Endpoints:0"] = null,
            ["Gateway:Triton:HeadlessService"] = $"triton-headless:{_triton.Address.Port}",
            ["Gateway:Triton:HeadlessMetricsPort"] = "0",
            // Rounds run only when a test calls RefreshAsync (no timer tick races the fake DNS).
            ["Gateway:Routing:ProbeInterval"] = "01:00:00",
        }, _time, services => services.AddSingleton<HostResolver>((_, _) => Task.FromResult(Volatile.Read(ref _addresses))));
    }

    public async Task DisposeAsync()
    {
        _heldStreamsFinish.TrySetResult();
        await _gateway.DisposeAsync();
        await _triton.DisposeAsync();
    }

    [Fact]
    public async Task ReplicaLeavesWhileStreaming_StreamFinishesNormally_ThenItsChannelIsReleased()
    {
        var replica = Assert.Single(Set.Replicas);
        var endpoint = replica.Grpc;
        var released = ReleasedAsync(endpoint);
        var (response, reader) = await StartStreamAsync();
        using (response)
        using (reader)
        {
            await ResolveToAsync(Elsewhere);

            Assert.True(replica.IsRemoved);
            Assert.DoesNotContain(replica, Set.Replicas); // no new request goes there
            Assert.Equal(1, replica.InFlight);
            Assert.False(replica.IsChannelReleased); // the running stream keeps it
            Assert.False(released.IsCompleted);

            _heldStreamsFinish.SetResult();
            Assert.Equal(" b", await FinishAsync(reader));
        }
        await released.WaitAsync(Wait);
        Assert.True(replica.IsChannelReleased);
        Assert.Equal(0, replica.InFlight);
        var call = Assert.Single(_triton.Calls);
        await call.CompletedCleanly.WaitAsync(Wait); // Triton saw the request half-closed, not reset
        Assert.False(call.Cancelled.IsCompleted);
    }

    [Fact]
    public async Task IdleReplicaLeaves_ItsChannelIsReleasedInTheSameDiscoveryRound()
    {
        _heldStreamsFinish.SetResult();
        var replica = Assert.Single(Set.Replicas);
        Assert.Equal(" a b", await CompleteAsync());
        await IdleAsync(replica); // the unary response can reach the client before its lease ends
        Assert.False(replica.IsChannelReleased);
        var released = ReleasedAsync(replica.Grpc);

        await ResolveToAsync(Elsewhere);

        Assert.True(replica.IsRemoved);
        Assert.True(released.IsCompleted);
        Assert.True(replica.IsChannelReleased);
    }

    [Fact]
    public async Task AddressComesBackAfterItsChannelWasReleased_GetsAFreshReplicaAndChannel_AndServes()
    {
        _heldStreamsFinish.SetResult();
        var before = Assert.Single(Set.Replicas);
        var endpoint = before.Grpc;
        Assert.Equal(" a b", await CompleteAsync());
        var released = ReleasedAsync(endpoint);
        await ResolveToAsync(Elsewhere);
        await released.WaitAsync(Wait);
        Assert.True(before.IsChannelReleased);

        await ResolveToAsync(IPAddress.Loopback);

        var after = Assert.Single(Set.Replicas);
        Assert.Equal(endpoint, after.Grpc);
        Assert.NotSame(before, after);
        Assert.False(after.IsRemoved);
        Assert.False(after.IsEjected); // the probe went through the new channel
        Assert.NotSame(before.Channel, after.Channel);
        Assert.False(after.IsChannelReleased);
        Assert.Equal(" a b", await CompleteAsync());
        Assert.Equal(2, _triton.Calls.Count);
    }

    [Fact]
    public async Task AddressComesBackWhileItsStreamRuns_SameReplicaKeepsItsChannel_AndNothingIsReleased()
    {
        var replica = Assert.Single(Set.Replicas);
        var endpoint = replica.Grpc;
        var released = ReleasedAsync(endpoint);
        var (response, reader) = await StartStreamAsync();
        using (response)
        using (reader)
        {
            await ResolveToAsync(Elsewhere);
            Assert.True(replica.IsRemoved);

            await ResolveToAsync(IPAddress.Loopback);

            Assert.Same(replica, Assert.Single(Set.Replicas)); // its running stream still counts on it
            Assert.False(replica.IsRemoved);
            Assert.Equal(1, replica.InFlight);

            _heldStreamsFinish.SetResult();
            Assert.Equal(" b", await FinishAsync(reader));
        }
        // The stream's lease ended before its body did (the endpoint disposes it first): had it
        // released the channel, that would have happened by now.
        Assert.Equal(0, replica.InFlight);
        Assert.False(released.IsCompleted);
        Assert.False(replica.IsChannelReleased);
        Assert.Equal(" a b", await CompleteAsync());
        Assert.Equal(2, _triton.Calls.Count);
    }

    /// <summary>The headless Service now resolves to <paramref name="addresses"/>; one discovery round runs.</summary>
    private async Task ResolveToAsync(params IPAddress[] addresses)
    {
        Volatile.Write(ref _addresses, addresses);
        _time.Advance(TimeSpan.FromSeconds(5)); // DiscoveryInterval
        await Monitor.RefreshAsync(default);
    }

    /// <summary>Waits until no request of this gateway runs on <paramref name="replica"/> (no event to await; bounded by the timeout).</summary>
    private static async Task IdleAsync(TritonReplica replica)
    {
        using var cts = new CancellationTokenSource(Wait);
        while (replica.InFlight > 0)
        {
            await Task.Delay(10, cts.Token);
        }
    }

    /// <summary>Completes when the channel of a replica of <paramref name="endpoint"/> is released.</summary>
    private Task ReleasedAsync(Uri endpoint)
    {
        var released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Set.ChannelReleased += replica =>
        {
            if (replica.Grpc == endpoint)
            {
                released.TrySetResult();
            }
        };
        return released.Task;
    }

    /// <summary>A streaming completion that is running on Triton: its first token is out.</summary>
    private async Task<(HttpResponseMessage Response, SseReader Reader)> StartStreamAsync()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"gpt-j-6b","prompt":"x","max_tokens":8,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        var response = await _gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reader = new SseReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(" a", Json.Parse((await reader.NextAsync().WaitAsync(Wait))!).GetProperty("choices")[0].GetProperty("text").GetString());
        return (response, reader);
    }

    /// <summary>The rest of a stream's text; asserts it ended normally.</summary>
    private static async Task<string> FinishAsync(SseReader reader)
    {
        var events = await reader.ReadAllAsync().WaitAsync(Wait);
        Assert.Equal("[DONE]", events[^1]);
        var text = new StringBuilder();
        foreach (var data in events[..^1])
        {
            var choices = Json.Parse(data).GetProperty("choices");
            if (choices.GetArrayLength() > 0)
            {
                text.Append(choices[0].GetProperty("text").GetString());
            }
        }
        return text.ToString();
    }

    /// <summary>A non-streaming completion (held streams must be let go first); returns its text.</summary>
    private async Task<string> CompleteAsync()
    {
        using var response = await _gateway.Http.PostAsync("/v1/completions",
            new StringContent("""{"model":"gpt-j-6b","prompt":"x","max_tokens":8}""", Encoding.UTF8, "application/json")).WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("choices")[0].GetProperty("text").GetString()!;
    }
}
