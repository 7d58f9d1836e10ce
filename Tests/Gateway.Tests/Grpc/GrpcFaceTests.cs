using System.Net;
using System.Net.Sockets;
using Gateway.Tests.Functional;
using Grpc.Core;
using Grpc.Health.V1;
using Llm.Gateway.V1;

namespace Gateway.Tests.Grpc;

/// <summary>The gRPC face with the generated client: streaming, status codes, deadline and cancel reaching Triton.</summary>
public sealed class GrpcFaceTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static Metadata Auth(string key = TestKeys.Full) => new() { { "authorization", $"Bearer {key}" } };

    private static ChatRequest Chat(string model = "gpt-j-6b", SamplingOptions? sampling = null) => new()
    {
        Model = model,
        Messages = { new ChatMessage { Role = "user", Content = "Hi" } },
        Sampling = sampling ?? new SamplingOptions(),
    };

    private static async Task<ScriptedTriton> TokensThenFinal(string text) => await ScriptedTriton.StartAsync(async call =>
    {
        await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(text));
        await call.SendEmptyFinalAsync();
    });

    [Fact]
    public async Task StreamChat_DeltasThenFinalWithUsage()
    {
        await using var triton = await TokensThenFinal(" Hello there");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(sampling: new SamplingOptions { MaxTokens = 10, Temperature = 0 }), Auth());
        var events = await call.ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal("assistant", events[0].Delta.Role);
        var text = string.Concat(events.Where(e => e.EventCase == GenerateEvent.EventOneofCase.Delta).Select(e => e.Delta.Text));
        Assert.Equal(" Hello there", text);
        var final = events[^1].Final;
        Assert.Single(events, e => e.EventCase == GenerateEvent.EventOneofCase.Final);
        Assert.Equal(FinishReason.Stop, final.FinishReason);
        Assert.Equal(2u, final.Usage.CompletionTokens);
        Assert.Equal((uint)events.Sum(e => e.Delta?.TokenCount ?? 0), final.Usage.CompletionTokens);
        Assert.Equal(final.Usage.PromptTokens + 2, final.Usage.TotalTokens);
        Assert.StartsWith("chatcmpl-", final.Id);
        Assert.Equal("gpt-j-6b", final.Model);
        Assert.Equal([1u], triton.Calls.Single().InputIds("runtime_top_k")); // temperature 0 = greedy
    }

    [Fact]
    public async Task StreamCompletion_MaxTokensReached_FinishesWithLength()
    {
        await using var triton = await TokensThenFinal(" a b");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamCompletion(new CompletionRequest { Model = "gpt-j-6b", Prompt = "x", Sampling = new SamplingOptions { MaxTokens = 2 } }, Auth());
        var events = await call.ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal(FinishReason.Length, events[^1].Final.FinishReason);
        Assert.Equal([2u], triton.Calls.Single().InputIds("request_output_len"));
    }

    [Fact]
    public async Task StreamChat_Deadline_PropagatesToTriton()
    {
        // gRPC deadlines run on the wall clock, client and server (grpc-dotnet takes no TimeProvider),
        // so the test orders events instead of racing time: what the gateway adds is that its Triton
        // call ends with the client's deadline, which needs the deadline to pass after Triton has the
        // call. Triton answers nothing until cancelled; each try waits for the call to reach it (an
        // event) and, should the deadline win that race on a slow machine, tries again with twice the
        // deadline. Nothing depends on how long anything takes, only on the order of the events.
        for (var deadline = TimeSpan.FromMilliseconds(250); ; deadline *= 2)
        {
            await using var triton = await ScriptedTriton.StartAsync(call => call.Aborted.WaitHandle.WaitOneAsync(Wait));
            await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?> { ["Gateway:Triton:FirstTokenTimeout"] = "00:10:00" });
            var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
            using var call = client.StreamChat(Chat(), Auth(), deadline: DateTime.UtcNow + deadline);
            var next = call.ResponseStream.MoveNext();
            if (await Task.WhenAny(triton.FirstCall, next) != triton.FirstCall && deadline < Wait)
            {
                continue; // the deadline passed before the gateway reached Triton
            }
            var error = await Assert.ThrowsAsync<RpcException>(() => next.WaitAsync(Wait));
            Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
            // Triton has the call, and it ends: the gateway cancelled it when the deadline passed.
            await (await triton.FirstCall.WaitAsync(Wait)).Cancelled.WaitAsync(Wait);
            Assert.Single(triton.Calls);
            return;
        }
    }

    [Fact]
    public async Task StreamChat_ClientCancels_CancelsTriton()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" slow"));
            await call.Aborted.WaitHandle.WaitOneAsync(Wait);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var cts = new CancellationTokenSource();
        using var call = client.StreamChat(Chat(), Auth(), cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.True(await call.ResponseStream.MoveNext());
        await cts.CancelAsync();
        await triton.Calls.Single().Cancelled.WaitAsync(Wait);
    }

    [Theory]
    [InlineData(null, "gpt-j-6b", StatusCode.Unauthenticated)]
    [InlineData("sk-wrong", "gpt-j-6b", StatusCode.Unauthenticated)]
    [InlineData(TestKeys.OtherModelOnly, "gpt-j-6b", StatusCode.PermissionDenied)]
    [InlineData(TestKeys.Full, "no-such-model", StatusCode.NotFound)]
    [InlineData(TestKeys.Full, "", StatusCode.InvalidArgument)]
    public async Task StreamChat_RequestErrors_AreStatusCodesWithMessages(string? key, string model, StatusCode expected)
    {
        await using var triton = await TokensThenFinal(" x");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(model), key is null ? new Metadata() : Auth(key));
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(expected, error.StatusCode);
        Assert.False(string.IsNullOrWhiteSpace(error.Status.Detail));
        Assert.Empty(triton.Calls);
    }

    [Fact]
    public async Task StreamChat_InvalidSampling_IsInvalidArgumentNamingTheField()
    {
        await using var triton = await TokensThenFinal(" x");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(sampling: new SamplingOptions { Temperature = 5 }), Auth());
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("temperature", error.Trailers.GetValue("error-param"));
    }

    [Fact]
    public async Task StreamChat_RateLimited_IsResourceExhaustedWithRetryAfter()
    {
        await using var triton = await TokensThenFinal(" x");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using (var first = client.StreamChat(Chat(), Auth(TestKeys.OneRequestPerMinute)))
        {
            await first.ResponseStream.ReadAllAsync().ToListAsync();
        }
        using var second = client.StreamChat(Chat(), Auth(TestKeys.OneRequestPerMinute));
        var error = await Assert.ThrowsAsync<RpcException>(() => second.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.NotNull(error.Trailers.GetValue("retry-after"));
    }

    [Fact]
    public async Task StreamChat_NoBackend_IsUnavailable()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var gateway = await GatewayHost.StartAsync(new Uri($"http://127.0.0.1:{port}"));
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(), Auth());
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task StreamChat_NoFirstTokenInTime_IsDeadlineExceeded()
    {
        var time = new ObservableTimeProvider();
        await using var triton = await ScriptedTriton.StartAsync(call => call.Aborted.WaitHandle.WaitOneAsync(Wait));
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?> { ["Gateway:Triton:FirstTokenTimeout"] = "00:00:03" }, time);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(), Auth());
        var next = call.ResponseStream.MoveNext();
        await triton.FirstCall.WaitAsync(Wait);
        time.Advance(TimeSpan.FromSeconds(3));
        var error = await Assert.ThrowsAsync<RpcException>(() => next.WaitAsync(Wait));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    [Fact]
    public async Task StreamChat_BackendKilledMidStream_IsUnavailableAfterTheDeltas()
    {
        var clientHasTokens = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" one"));
            await clientHasTokens.Task.WaitAsync(Wait);
            call.Kill();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var call = client.StreamChat(Chat(), Auth());
        Assert.True(await call.ResponseStream.MoveNext()); // role
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(" one", call.ResponseStream.Current.Delta.Text);
        clientHasTokens.SetResult();
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(Wait));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Single(triton.Calls);
    }

    [Fact]
    public async Task ListModels_ReturnsModelsTheKeyMayUse()
    {
        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        var models = await client.ListModelsAsync(new ListModelsRequest(), Auth());
        var model = Assert.Single(models.Models);
        Assert.Equal("gpt-j-6b", model.Id);
        Assert.Equal(2048u, model.ContextWindow);
        Assert.Empty((await client.ListModelsAsync(new ListModelsRequest(), Auth(TestKeys.OtherModelOnly))).Models);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ListModelsAsync(new ListModelsRequest()));
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
    }

    [Fact]
    public async Task Health_IsServing()
    {
        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var health = new Health.HealthClient(gateway.Grpc);
        var response = await health.CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }
}

public sealed class GrpcReflectionTests
{
    [Fact]
    public async Task Reflection_ListsTheGatewayService()
    {
        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var client = new global::Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(gateway.Grpc);
        using var call = client.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new global::Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("llm.gateway.v1.LlmGateway", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }
}
