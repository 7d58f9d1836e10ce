using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Routing;
using Gateway.Tests.Functional;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>The real gateway over several scripted Triton servers (real gRPC on loopback): failover, ejection, priorities, discovery.</summary>
public sealed class RoutingFunctionalTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static StringContent Completion(int maxTokens = 2) =>
        new($$"""{"model":"gpt-j-6b","prompt":"x","max_tokens":{{maxTokens}}}""", Encoding.UTF8, "application/json");

    private static async Task AnswerAsync(ScriptedCall call)
    {
        await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" a b"));
        await call.SendEmptyFinalAsync();
    }

    private static Dictionary<string, string?> TwoReplicas(ScriptedTriton a, ScriptedTriton b, params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Triton:Endpoints:0"] = a.Address.ToString(),
            ["Gateway:Triton:Endpoints:1"] = b.Address.ToString(),
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }
        return settings;
    }

    [Fact]
    public async Task ReplicaResetsBeforeFirstToken_RequestFailsOver_ReplicaIsEjected_AndAProbeBringsItBack()
    {
        var calls = 0;
        await using var a = await ScriptedTriton.StartAsync(call =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                call.Kill(); // the connection breaks before any token
                return Task.CompletedTask;
            }
            return AnswerAsync(call);
        });
        await using var b = await ScriptedTriton.StartAsync(AnswerAsync);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await GatewayHost.StartAsync(a.Address, TwoReplicas(a, b), time);
        var replicas = gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas;

        using (var first = await gateway.Http.PostAsync("/v1/completions", Completion()))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }
        Assert.Single(a.Calls);
        Assert.Single(b.Calls);
        Assert.True(replicas[0].IsEjected);

        for (var i = 0; i < 3; i++)
        {
            using var response = await gateway.Http.PostAsync("/v1/completions", Completion());
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.Single(a.Calls); // no traffic while ejected, although it would tie on load
        Assert.Equal(4, b.Calls.Count);

        time.Advance(TimeSpan.FromSeconds(2)); // MinEjection
        await gateway.App.Services.GetRequiredService<ReplicaMonitor>().RefreshAsync(default);
        Assert.False(replicas[0].IsEjected);
        using (var back = await gateway.Http.PostAsync("/v1/completions", Completion()))
        {
            Assert.Equal(HttpStatusCode.OK, back.StatusCode);
        }
        Assert.Equal(2, a.Calls.Count);
    }

    [Fact]
    public async Task ReplicaDiesWhileTheOtherIsEjected_RetriesGoToTheLiveReplica_NotAgainToTheDeadOne()
    {
        // The survivor carries a long stream (so it scores worse than the idle dead replica), and
        // failed probes (as probe timeouts on a loaded machine do) have ejected it although it serves.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var a = await ScriptedTriton.StartAsync(async call =>
        {
            if (call.InputIds("request_output_len")[0] == 8)
            {
                await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" a"), finalFlag: false);
                await release.Task.WaitAsync(call.Aborted);
            }
            await AnswerAsync(call);
        });
        var b = await ScriptedTriton.StartAsync(AnswerAsync);
        await using var gateway = await GatewayHost.StartAsync(a.Address, TwoReplicas(a, b, ("Gateway:Routing:ProbeInterval", "01:00:00")), new FakeTimeProvider(DateTimeOffset.UtcNow));
        var monitor = gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        var replicas = gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas;

        using var stream = await gateway.Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"gpt-j-6b","prompt":"x","max_tokens":8,"stream":true}""", Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal(1, replicas[0].InFlight); // idle replicas tie: the first one takes it
        a.Ready = false;
        for (var round = 0; round < ReplicaMonitor.ProbeFailuresToEject; round++)
        {
            await monitor.RefreshAsync(default);
        }
        a.Ready = true; // serving again, but out of rotation until MinEjection has passed
        Assert.True(replicas[0].IsEjected);
        Assert.False(replicas[1].IsEjected);

        await b.DisposeAsync(); // the replica in rotation dies: connections refused from now on
        for (var i = 0; i < 3; i++)
        {
            using var response = await gateway.Http.PostAsync("/v1/completions", Completion()).WaitAsync(Wait);
            // An attempt on the dead replica (it is idle, so it scores best) fails fast; the retry must reach the live one.
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }
        Assert.True(replicas[1].IsEjected);
        Assert.Equal(4, a.Calls.Count);

        release.SetResult();
        using var sse = new SseReader(await stream.Content.ReadAsStreamAsync());
        Assert.Equal("[DONE]", (await sse.ReadAllAsync().WaitAsync(Wait))[^1]);
    }

    [Fact]
    public async Task ReplicaNotReady_IsEjectedAfterTwoFailedProbes()
    {
        await using var a = await ScriptedTriton.StartAsync(AnswerAsync);
        await using var b = await ScriptedTriton.StartAsync(AnswerAsync);
        await using var gateway = await GatewayHost.StartAsync(a.Address, TwoReplicas(a, b), new FakeTimeProvider(DateTimeOffset.UtcNow));
        var monitor = gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        var replicas = gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas;

        a.Ready = false;
        await monitor.RefreshAsync(default);
        Assert.False(replicas[0].IsEjected); // one failed probe may be a blip
        await monitor.RefreshAsync(default);
        Assert.True(replicas[0].IsEjected);
        Assert.False(replicas[1].IsEjected);
        using var response = await gateway.Http.PostAsync("/v1/completions", Completion());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(a.Calls);
    }

    [Theory]
    [InlineData(false)] // ModelReady false
    [InlineData(null)] // the model is not in that replica's repository
    public async Task ModelNotReadyOnOneReplica_ThatModelAvoidsIt_OtherModelsStillUseIt(bool? secondModelOnA)
    {
        await using var a = await ScriptedTriton.StartAsync(AnswerAsync);
        await using var b = await ScriptedTriton.StartAsync(AnswerAsync);
        a.ModelState = model => model == "fastertransformer_2" ? secondModelOnA : true;
        var settings = TwoReplicas(a, b, ("Gateway:Routing:ProbeInterval", "01:00:00"));
        foreach (var (key, value) in global::Gateway.Hosting.GatewayServiceCollectionExtensions.DefaultCatalog)
        {
            settings[key] = value;
            settings[key.Replace("gpt-j-6b", "gpt-j-second", StringComparison.Ordinal)] = key.EndsWith(":TritonModel", StringComparison.Ordinal) ? "fastertransformer_2" : value;
        }
        await using var gateway = await GatewayHost.StartAsync(a.Address, settings, new FakeTimeProvider(DateTimeOffset.UtcNow));
        var monitor = gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        var replicas = gateway.App.Services.GetRequiredService<TritonReplicaSet>().Replicas;
        for (var round = 0; round < ReplicaMonitor.ProbeFailuresToEject; round++)
        {
            await monitor.RefreshAsync(default);
        }

        Assert.False(replicas[0].IsEjected); // the server is healthy; only one of its models is not
        for (var i = 0; i < 4; i++)
        {
            using var second = await gateway.Http.PostAsync("/v1/completions",
                new StringContent("""{"model":"gpt-j-second","prompt":"x","max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        }
        Assert.Empty(a.Calls);
        Assert.Equal(4, b.Calls.Count);
        Assert.All(b.Calls, call => Assert.Equal("fastertransformer_2", call.Request.ModelName));

        for (var i = 0; i < 4; i++)
        {
            using var first = await gateway.Http.PostAsync("/v1/completions", Completion());
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }
        Assert.Equal(2, a.Calls.Count); // idle traffic of the other model rotates over both
        Assert.All(a.Calls, call => Assert.Equal("fastertransformer", call.Request.ModelName));

        a.ModelState = _ => true; // the model loads: the next round lets it back
        await monitor.RefreshAsync(default);
        for (var i = 0; i < 2; i++)
        {
            using var again = await gateway.Http.PostAsync("/v1/completions",
                new StringContent("""{"model":"gpt-j-second","prompt":"x","max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }
        Assert.Contains(a.Calls, call => call.Request.ModelName == "fastertransformer_2");
    }

    [Fact]
    public async Task AllSaturated_LowPriorityGets503WithRetryAfter_HighPriorityQueuesAndRunsWhenCapacityFrees()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            if (call.Request.Parameters.ContainsKey("priority"))
            {
                await AnswerAsync(call);
                return;
            }
            await gate.Task; // the first request holds the only slot
            await AnswerAsync(call);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Routing:SaturationThreshold"] = "1",
            ["Gateway:Routing:RetryAfter"] = "00:00:03",
        });
        var router = gateway.App.Services.GetRequiredService<TritonRouter>();

        var busy = gateway.Http.PostAsync("/v1/completions", Completion());
        await triton.FirstCall.WaitAsync(Wait);

        using var low = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Completion() };
        low.Headers.Add("x-priority", "low");
        using var shed = await gateway.Http.SendAsync(low);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, shed.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(3), shed.Headers.RetryAfter?.Delta);
        Assert.Equal("overloaded", Json.Parse(await shed.Content.ReadAsStringAsync()).GetProperty("error").GetProperty("code").GetString());

        using var high = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Completion() };
        high.Headers.Add("x-priority", "high");
        var queued = gateway.Http.SendAsync(high);
        using (var cts = new CancellationTokenSource(Wait))
        {
            while (router.QueuedRequests == 0)
            {
                await Task.Delay(10, cts.Token); // the queue has no event to await; bounded by the timeout
            }
        }
        Assert.Single(triton.Calls);
        Assert.False(queued.IsCompleted);

        gate.SetResult();
        using var first = await busy.WaitAsync(Wait);
        using var second = await queued.WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(2, triton.Calls.Count);
        Assert.Equal(1, triton.Calls.Last().Request.Parameters["priority"].Int64Param); // high → Triton priority 1
    }

    [Fact]
    public async Task HeadlessService_EveryAddressIsAReplica_AndMembershipIsRefreshed()
    {
        await using var triton = await ScriptedTriton.StartAsync(AnswerAsync);
        var addresses = new[] { IPAddress.Loopback };
        var resolved = new List<string>();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Triton:Endpoints:0"] = null,
            ["Gateway:Triton:HeadlessService"] = $"triton-headless:{triton.Address.Port}",
            ["Gateway:Triton:HeadlessMetricsPort"] = "8002",
            // Only the test's own RefreshAsync runs rounds: advancing the fake clock past a short probe
            // interval would also fire the monitor's timer, whose round could overlap the test's.
            ["Gateway:Routing:ProbeInterval"] = "01:00:00",
        }, time, services => services.AddSingleton<HostResolver>((host, _) =>
        {
            lock (resolved)
            {
                resolved.Add(host);
            }
            return Task.FromResult(Volatile.Read(ref addresses));
        }));
        var set = gateway.App.Services.GetRequiredService<TritonReplicaSet>();
        var monitor = gateway.App.Services.GetRequiredService<ReplicaMonitor>();
        await monitor.RefreshAsync(default);

        var only = Assert.Single(set.Replicas);
        Assert.Equal(triton.Address, only.Grpc);
        Assert.Equal(new Uri("http://127.0.0.1:8002"), only.Metrics);
        Assert.Contains("triton-headless", resolved);
        using (var response = await gateway.Http.PostAsync("/v1/completions", Completion()))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Volatile.Write(ref addresses, [IPAddress.Parse("127.0.0.2"), IPAddress.Loopback]);
        await monitor.RefreshAsync(default);
        Assert.Single(set.Replicas); // not due yet (DiscoveryInterval)
        time.Advance(TimeSpan.FromSeconds(5));
        await monitor.RefreshAsync(default);
        Assert.Equal([triton.Address, new Uri($"http://127.0.0.2:{triton.Address.Port}")], set.Replicas.Select(r => r.Grpc));
        Assert.Same(only, set.Replicas[0]); // state kept across refreshes

        Volatile.Write(ref addresses, [IPAddress.Parse("127.0.0.2")]);
        time.Advance(TimeSpan.FromSeconds(5));
        await monitor.RefreshAsync(default);
        Assert.True(only.IsRemoved);
        Assert.Equal("127.0.0.2", Assert.Single(set.Replicas).Grpc.Host);
    }

    [Fact]
    public async Task GrpcFace_PriorityMetadata_ReachesTriton()
    {
        await using var triton = await ScriptedTriton.StartAsync(AnswerAsync);
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new Llm.Gateway.V1.LlmGateway.LlmGatewayClient(gateway.Grpc);
        var headers = new global::Grpc.Core.Metadata { { "authorization", "Bearer " + TestKeys.Full }, { "x-priority", "high" } };
        using var call = client.StreamCompletion(new Llm.Gateway.V1.CompletionRequest { Model = "gpt-j-6b", Prompt = "x", Sampling = new Llm.Gateway.V1.SamplingOptions { MaxTokens = 2 } }, headers);
        while (await call.ResponseStream.MoveNext(default))
        {
        }
        Assert.Equal(1, Assert.Single(triton.Calls).Request.Parameters["priority"].Int64Param);
    }
}
