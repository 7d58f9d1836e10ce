using System.Globalization;
using System.Net.Http.Json;
using TritonEmulator.Tests.Infrastructure;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Metrics;

public sealed class MetricsTests
{
    /// <summary>A tiny Prometheus text parser: "name{labels} value" lines, # comments skipped.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var samples = new Dictionary<string, double>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var split = line.LastIndexOf(' ');
            Assert.True(split > 0, $"bad sample line: {line}");
            samples[line[..split]] = double.Parse(line[(split + 1)..], CultureInfo.InvariantCulture);
        }
        return samples;
    }

    [Fact]
    public async Task Metrics_UseTritonNames_AndCountersMoveWithTraffic()
    {
        await using var emulator = await TestEmulator.StartAsync([FasterTransformer()], profile: "zero-latency");
        using var metrics = new HttpClient { BaseAddress = emulator.Endpoints.Metrics };
        var before = Parse(await metrics.GetStringAsync("/metrics"));
        const string labels = "{model=\"fastertransformer\",version=\"1\"}";
        Assert.Equal(0, before["nv_inference_request_success" + labels]);
        Assert.Contains(before.Keys, k => k.StartsWith("nv_gpu_memory_total_bytes{gpu_uuid=", StringComparison.Ordinal));
        Assert.Contains(before.Keys, k => k.StartsWith("nv_gpu_utilization{gpu_uuid=", StringComparison.Ordinal));

        await using (var stream = new StreamRecorder(emulator.Client))
        {
            await stream.SendAsync(Request("m", outputLength: 4));
            await stream.WaitUntilAsync(s => s.IsFinished("m"));
            var bad = Request("bad");
            bad.Inputs[0].Datatype = "FP32";
            await stream.SendAsync(bad);
            await stream.WaitUntilAsync(s => s.IsFinished("bad"));
        }
        using var http = new HttpClient { BaseAddress = emulator.Endpoints.Http };
        await http.PostAsJsonAsync("/v2/models/fastertransformer/generate", new { text_input = "Hello", parameters = new { max_tokens = 3 } });

        // A request's statistics are recorded when the scheduler releases it, which may be just after its
        // last response reached the client (as on Triton): the scrape converges, so wait for it, bounded.
        var after = await ScrapeUntilAsync(metrics, s => s.GetValueOrDefault("nv_inference_request_success" + labels) >= 2
            && s.GetValueOrDefault("nv_inference_request_failure{model=\"fastertransformer\",version=\"1\",reason=\"OTHER\"}") >= 1);
        Assert.Equal(2, after["nv_inference_request_success" + labels]);
        Assert.Equal(1, after["nv_inference_request_failure{model=\"fastertransformer\",version=\"1\",reason=\"OTHER\"}"]);
        Assert.Equal(2, after["nv_inference_count" + labels]);
        Assert.Equal(2, after["nv_inference_exec_count" + labels]);
        Assert.Equal(0, after["nv_inference_pending_request_count" + labels]);
        Assert.True(after["nv_inference_request_duration_us" + labels] > 0);
        Assert.True(after.ContainsKey("nv_inference_queue_duration_us" + labels));
        Assert.True(after.ContainsKey("nv_inference_compute_infer_duration_us" + labels));
        Assert.True(after.ContainsKey("nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-00000000-0000-0000-0000-emulator0000\"}"));
    }

    private static async Task<Dictionary<string, double>> ScrapeUntilAsync(HttpClient metrics, Func<Dictionary<string, double>, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var samples = Parse(await metrics.GetStringAsync("/metrics"));
            if (done(samples) || DateTime.UtcNow > deadline)
            {
                return samples;
            }
            await Task.Delay(20);
        }
    }
}
