using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;

namespace AppHost.Tests;

/// <summary>The whole graph on TensorRT-LLM's inflight_batcher_llm repository: one user-facing model, streamed chat, TRT-LLM metrics.</summary>
/// <remarks>Shares the models-trtllm AppHost of <see cref="TrtLlmAppHostCollection"/>: AppHosts bind fixed ports, so two never run at once.</remarks>
[Collection(TrtLlmAppHostCollection.Name)]
public sealed class TensorRtLlmAppHostTests(TrtLlmAppHostFixture fixture)
{
    private async Task<HttpClient> GatewayAsync(CancellationToken cancellationToken)
    {
        await fixture.App.ResourceNotifications.WaitForResourceHealthyAsync("gateway", cancellationToken);
        var http = fixture.App.CreateHttpClient("gateway", "http");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", GatewayResourceExtensions.DevApiKey);
        return http;
    }

    [Fact]
    public async Task Models_ListsOnlyTheEnsemblesPublicId()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var http = await GatewayAsync(cts.Token);

        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models", cts.Token)).RootElement.GetProperty("data");

        Assert.Equal(["gpt-j-6b"], models.EnumerateArray().Select(static m => m.GetProperty("id").GetString()));
    }

    [Fact]
    public async Task StreamedChat_RunsThroughTheEnsemble_AndTheReplicaExportsTensorRtLlmMetrics()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var http = await GatewayAsync(cts.Token);

        using var response = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"gpt-j-6b","stream":true,"stream_options":{"include_usage":true},"max_tokens":12,"temperature":0,"messages":[{"role":"user","content":"Tell me about the weather"}]}""",
            Encoding.UTF8, "application/json"), cts.Token);
        var body = await response.Content.ReadAsStringAsync(cts.Token);

        Assert.True(response.IsSuccessStatusCode, body);
        var events = body.Split('\n').Where(static l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(static l => l["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(static e => JsonDocument.Parse(e).RootElement).ToList();
        var text = string.Concat(chunks.Where(static c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(static c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var content) ? content.GetString() : ""));
        Assert.False(string.IsNullOrWhiteSpace(text), body);
        var usage = chunks.Last(static c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object).GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 12);

        using var metrics = fixture.App.CreateHttpClient("triton", "metrics");
        var lines = (await metrics.GetStringAsync("/metrics", cts.Token)).Split('\n');
        foreach (var family in (string[])["nv_trt_llm_request_metrics{", "nv_trt_llm_kv_cache_block_metrics{", "nv_trt_llm_runtime_memory_metrics{",
            "nv_trt_llm_inflight_batcher_metrics{", "nv_trt_llm_general_metrics{"])
        {
            Assert.Contains(lines, line => line.StartsWith(family, StringComparison.Ordinal));
        }
    }
}
