using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Gateway.Tests.Functional;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

/// <summary>The routing decision on the request's span and in the prefix hit counters.</summary>
public sealed class RoutingTelemetryTests
{
    [Fact]
    public async Task RepeatedLongPrompt_SpanCarriesReplicaScoreAndMatchedPrefix_AndCountersGiveTheHitRatio()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" ok"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var factory = gateway.App.Services.GetRequiredService<IMeterFactory>();
        var counters = new ConcurrentDictionary<string, long>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == factory && instrument.Name.StartsWith("gateway.routing.prefix.", StringComparison.Ordinal))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((i, v, _, _) => counters.AddOrUpdate(i.Name, v, (_, old) => old + v));
        meters.Start();
        var spans = new ConcurrentQueue<Activity>();
        var bothStopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var activities = new ActivityListener
        {
            ShouldListenTo = static source => source.Name == "Gateway",
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            // Only this test's requests: other tests' gateways in the process use the same source name.
            ActivityStopped = a =>
            {
                if (a.GetTagItem("gateway.route.replica") is string replica && replica == triton.Address.Authority)
                {
                    spans.Enqueue(a);
                    if (spans.Count >= 2)
                    {
                        bothStopped.TrySetResult();
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(activities);
        var system = string.Join(' ', Enumerable.Repeat("The gateway routes every chat turn to the replica that holds its prefix.", 20));

        for (var i = 0; i < 2; i++)
        {
            using var response = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody(content: system + " Question " + i));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        // A span stops after its response is written: wait for the listener to see both.
        await bothStopped.Task.WaitAsync(TimeSpan.FromSeconds(20));

        var routed = spans.ToArray();
        Assert.Equal(2, routed.Length);
        Assert.Equal(triton.Address.Authority, routed[0].GetTagItem("gateway.route.replica"));
        var blocks = (int)routed[1].GetTagItem("gateway.route.prefix_blocks")!;
        Assert.True(blocks >= 4, $"a ~300-token prompt has several 64-token blocks, got {blocks}");
        Assert.Equal(0, routed[0].GetTagItem("gateway.route.prefix_matched_blocks"));
        var matched = (int)routed[1].GetTagItem("gateway.route.prefix_matched_blocks")!;
        Assert.InRange(matched, blocks - 1, blocks); // only the last block differs
        Assert.Equal(matched * 64, routed[1].GetTagItem("gateway.route.prefix_matched_tokens"));
        Assert.IsType<double>(routed[1].GetTagItem("gateway.route.score"));
        Assert.True((double)routed[1].GetTagItem("gateway.route.score")! < (double)routed[1].GetTagItem("gateway.route.load_score")!);
        Assert.Equal(matched, counters["gateway.routing.prefix.matched_blocks"]);
        Assert.True(counters["gateway.routing.prefix.blocks"] >= 2L * blocks - 1);
    }
}
