using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Gateway.Tests.Functional;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

public sealed class GatewayMetricsTests
{
    [Fact]
    public async Task Request_RecordsGenAiInstrumentsAndRequestCount()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" one two three"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var factory = gateway.App.Services.GetRequiredService<IMeterFactory>();
        var measurements = new ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener
        {
            // Only this gateway's meter: meters from IMeterFactory are scoped to their factory.
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Gateway" && instrument.Meter.Scope == factory)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        var counted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            measurements.Enqueue((i.Name, v, ToDictionary(tags)));
            if (i.Name == "gateway.requests")
            {
                counted.TrySetResult(); // recorded last, when the request's stream is disposed
            }
        });
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Enqueue((i.Name, v, ToDictionary(tags))));
        listener.Start();

        using var response = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("usage");
        await counted.Task.WaitAsync(TimeSpan.FromSeconds(20));

        var output = Assert.Single(measurements, m => m.Instrument == "gen_ai.client.token.usage" && (string?)m.Tags["gen_ai.token.type"] == "output");
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), output.Value);
        var input = Assert.Single(measurements, m => m.Instrument == "gen_ai.client.token.usage" && (string?)m.Tags["gen_ai.token.type"] == "input");
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), input.Value);
        Assert.Equal("chat", output.Tags["gen_ai.operation.name"]);
        Assert.Equal("gpt-j-6b", output.Tags["gen_ai.request.model"]);
        Assert.Single(measurements, m => m.Instrument == "gen_ai.server.time_to_first_token");
        Assert.Single(measurements, m => m.Instrument == "gen_ai.server.time_per_output_token");
        Assert.Single(measurements, m => m.Instrument == "gen_ai.server.request.duration");
        var count = Assert.Single(measurements, m => m.Instrument == "gateway.requests");
        Assert.Equal("tenant-full", count.Tags["tenant"]);
        Assert.Equal("success", count.Tags["outcome"]);
    }

    private static Dictionary<string, object?> ToDictionary(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var result = new Dictionary<string, object?>();
        foreach (var tag in tags)
        {
            result[tag.Key] = tag.Value;
        }
        return result;
    }
}
