using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Gateway.Auth;
using Gateway.Quotas;
using Gateway.Tests.Functional;
using Grpc.Core;
using Llm.Gateway.V1;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Lifecycle;

/// <summary>
/// In-process drain and end-of-request bookkeeping: what open requests get at the drain deadline,
/// that a client hang-up is never recorded as success, and that bookkeeping survives a failing settle.
/// </summary>
public sealed class DrainTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static Metadata Auth() => new() { { "authorization", $"Bearer {TestKeys.Full}" } };

    /// <summary>One token, then silence until the gateway gives up on the call.</summary>
    private static Task<ScriptedTriton> OneTokenThenHang() => ScriptedTriton.StartAsync(async call =>
    {
        await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" slow"), finalFlag: false);
        await call.Aborted.WaitHandle.WaitOneAsync(TimeSpan.FromSeconds(60));
    });

    [Fact]
    public async Task DrainDeadline_OpenSseStreamGetsShuttingDownThenDone_GrpcStreamUnavailable_UnaryA503()
    {
        await using var triton = await OneTokenThenHang();
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Shutdown:DrainTimeout"] = "00:00:01",
        });

        using var streaming = await gateway.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") },
            HttpCompletionOption.ResponseHeadersRead);
        using var sse = new SseReader(await streaming.Content.ReadAsStreamAsync());
        Assert.NotNull(await sse.NextAsync().WaitAsync(Wait)); // role
        Assert.Contains(" slow", await sse.NextAsync().WaitAsync(Wait));

        var client = new LlmGateway.LlmGatewayClient(gateway.Grpc);
        using var grpc = client.StreamChat(new ChatRequest { Model = "gpt-j-6b", Messages = { new ChatMessage { Role = "user", Content = "Hi" } } }, Auth());
        Assert.True(await grpc.ResponseStream.MoveNext().WaitAsync(Wait)); // role
        Assert.True(await grpc.ResponseStream.MoveNext().WaitAsync(Wait)); // " slow"

        var unary = gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody());
        await triton.WaitForCallsAsync(3, Wait);

        var stopping = gateway.App.StopAsync();

        var rest = await sse.ReadAllAsync().WaitAsync(Wait);
        Assert.Equal("[DONE]", rest[^1]);
        var error = Json.Parse(rest[^2]).GetProperty("error");
        Assert.Equal("server_shutting_down", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));

        var status = await Assert.ThrowsAsync<RpcException>(() => grpc.ResponseStream.MoveNext().WaitAsync(Wait));
        Assert.Equal(StatusCode.Unavailable, status.StatusCode);
        Assert.False(string.IsNullOrWhiteSpace(status.Status.Detail));

        using var unaryResponse = await unary.WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unaryResponse.StatusCode);
        Assert.Equal("server_shutting_down", Json.Parse(await unaryResponse.Content.ReadAsStringAsync()).GetProperty("error").GetProperty("type").GetString());

        await stopping.WaitAsync(Wait);
        foreach (var call in triton.Calls)
        {
            await call.Cancelled.WaitAsync(Wait); // nothing left generating on Triton
        }
    }

    [Fact]
    public async Task OnceStopping_Http11ResponsesCloseTheirConnection_SoNoRequestIsSentOnADyingOne()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" ok"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Shutdown:AcceptWindow"] = "00:00:02",
            ["Gateway:Shutdown:DrainTimeout"] = "00:00:03",
        });
        using (var before = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody()))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            Assert.NotEqual(true, before.Headers.ConnectionClose);
        }

        var stopping = gateway.App.StopAsync();
        using (var during = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody()))
        {
            // Served in the accept window, or refused after it: either way the connection closes.
            Assert.Contains(during.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.ServiceUnavailable });
            Assert.True(during.Headers.ConnectionClose);
        }
        await stopping.WaitAsync(Wait);
    }

    [Fact]
    public async Task ClientHangsUpOnAUnaryRequest_IsRecordedAsCancelled_NotSuccess()
    {
        await using var triton = await OneTokenThenHang();
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var requests = new RequestOutcomes(gateway);

        using var hangUp = new CancellationTokenSource();
        var sending = gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody(), hangUp.Token);
        var call = await triton.FirstCall.WaitAsync(Wait);
        await hangUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);

        await call.Cancelled.WaitAsync(Wait);
        Assert.Equal("cancelled", await requests.Next.WaitAsync(Wait));
    }

    [Fact]
    public async Task SettlingTheQuotaThrows_TheAnswerStandsAndTheRequestIsStillRecorded()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" fine"));
            await call.SendEmptyFinalAsync();
        });
        var quotas = new ThrowingSettleQuotas();
        await using var gateway = await GatewayHost.StartAsync(triton.Address,
            services: s => s.AddSingleton<IQuotaLimiter>(quotas));
        using var requests = new RequestOutcomes(gateway);

        for (var i = 0; i < 2; i++) // and the gateway goes on serving after a failed settle
        {
            using var response = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody());
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(" fine", Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            Assert.Equal("success", await requests.Next.WaitAsync(Wait));
        }
        Assert.Equal(2, quotas.SettleCalls);
    }

    /// <summary>The <c>outcome</c> tag of each <c>gateway.requests</c> measurement of one gateway, in order.</summary>
    private sealed class RequestOutcomes : IDisposable
    {
        private readonly MeterListener _listener;
        private readonly ConcurrentQueue<TaskCompletionSource<string>> _pending = new();
        private readonly ConcurrentQueue<string> _seen = new();
        private readonly Lock _lock = new();

        public RequestOutcomes(GatewayHost gateway)
        {
            var factory = gateway.App.Services.GetRequiredService<IMeterFactory>();
            _listener = new MeterListener
            {
                InstrumentPublished = (instrument, l) =>
                {
                    if (instrument.Meter.Scope == factory && instrument.Name == "gateway.requests")
                    {
                        l.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "outcome")
                    {
                        Publish((string)tag.Value!);
                    }
                }
            });
            _listener.Start();
        }

        /// <summary>The next outcome recorded (or already recorded and not yet taken).</summary>
        public Task<string> Next
        {
            get
            {
                lock (_lock)
                {
                    if (_seen.TryDequeue(out var outcome))
                    {
                        return Task.FromResult(outcome);
                    }
                    var waiter = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                    _pending.Enqueue(waiter);
                    return waiter.Task;
                }
            }
        }

        private void Publish(string outcome)
        {
            lock (_lock)
            {
                if (_pending.TryDequeue(out var waiter))
                {
                    waiter.SetResult(outcome);
                }
                else
                {
                    _seen.Enqueue(outcome);
                }
            }
        }

        public void Dispose() => _listener.Dispose();
    }

    private sealed class ThrowingSettleQuotas : IQuotaLimiter
    {
        private int _settleCalls;

        public int SettleCalls => Volatile.Read(ref _settleCalls);

        public ValueTask<QuotaDecision> TryReserveAsync(Caller caller, int tokens, CancellationToken cancellationToken) =>
            ValueTask.FromResult(new QuotaDecision(new Reservation(this, tokens), null, TimeSpan.Zero, null));

        private sealed class Reservation(ThrowingSettleQuotas owner, int tokens) : QuotaReservation
        {
            public override int ReservedTokens => tokens;

            public override ValueTask SettleAsync(int actualTokens)
            {
                Interlocked.Increment(ref owner._settleCalls);
                throw new InvalidOperationException("the quota store went away");
            }
        }
    }
}
