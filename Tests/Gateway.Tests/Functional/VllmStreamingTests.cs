using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;

namespace Gateway.Tests.Functional;

/// <summary>
/// The gateway's own handling of the vLLM contract against a scripted Triton: its stop matching
/// even when the backend sends a stop string, the backend's counts as usage, the request it sends.
/// </summary>
public sealed class VllmStreamingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static readonly Dictionary<string, string?> Catalogue = new()
    {
        ["Gateway:Models:llama:TritonModel"] = "vllm_model",
        ["Gateway:Models:llama:Contract"] = "vllm",
        ["Gateway:Models:llama:ChatTemplate"] = "chatml",
        ["Gateway:Models:llama:ContextWindow"] = "4096",
        ["Gateway:Models:llama:MaxOutputTokens"] = "1024",
    };

    private static StringContent Chat(string extra) => new(
        $$"""{"model":"llama","messages":[{"role":"user","content":"Hi"}]{{extra}}}""", Encoding.UTF8, "application/json");

    private static async Task<List<JsonElement>> StreamAsync(HttpClient http, HttpContent body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = body };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync().WaitAsync(Wait);
        Assert.Equal("[DONE]", events[^1]);
        return [.. events[..^1].Select(Json.Parse)];
    }

    private static string Content(IEnumerable<JsonElement> chunks) => string.Concat(chunks
        .Where(static c => c.GetProperty("choices").GetArrayLength() > 0)
        .Select(static c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));

    [Fact]
    public async Task Stream_BackendSendsTheTemplatesStopString_GatewayCutsItHoldsBackItsStartAndCancelsTheBackend()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendVllmDeltaAsync(" Hello", 1);
            await call.SendVllmDeltaAsync(" there<|im", 2);
            await call.SendVllmDeltaAsync("_end|> more", 2);
            await call.Cancelled.WaitAsync(Wait);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue);

        var chunks = await StreamAsync(gateway.Http, Chat(""","stream":true,"stream_options":{"include_usage":true}"""));

        Assert.Equal(" Hello there", Content(chunks));
        Assert.DoesNotContain(chunks, static c => c.GetRawText().Contains("<|im", StringComparison.Ordinal));
        Assert.Equal("stop", chunks.Last(static c => c.GetProperty("choices").GetArrayLength() > 0).GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var usage = chunks[^1].GetProperty("usage");
        Assert.Equal(3, usage.GetProperty("prompt_tokens").GetInt32()); // the backend's num_input_tokens
        Assert.Equal(5, usage.GetProperty("completion_tokens").GetInt32()); // the backend's num_output_tokens, summed
        await (await triton.FirstCall).Cancelled.WaitAsync(Wait);
    }

    [Fact]
    public async Task Stream_BackendEndsWithLength_FinishReasonLengthAndUsageFromTheBackend()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendVllmDeltaAsync(" a", 1, inputTokens: 17);
            await call.SendVllmDeltaAsync(" b", 1, "length", final: true, inputTokens: 17);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue);

        var chunks = await StreamAsync(gateway.Http, Chat(""","stream":true,"max_tokens":2,"stream_options":{"include_usage":true}"""));

        Assert.Equal(" a b", Content(chunks));
        Assert.Equal("length", chunks.Last(static c => c.GetProperty("choices").GetArrayLength() > 0).GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(17, chunks[^1].GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        await (await triton.FirstCall).CompletedCleanly.WaitAsync(Wait);
    }

    [Fact]
    public async Task Request_CarriesTheRenderedPromptAndEveryStopString()
    {
        await using var triton = await ScriptedTriton.StartAsync(call => call.SendVllmDeltaAsync("", 1, "stop", final: true));
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue);

        using var response = await gateway.Http.PostAsync("/v1/chat/completions", Chat(""","stop":["\n\n"],"temperature":0,"seed":9,"max_tokens":20"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var request = (await triton.FirstCall).Request;
        Assert.Equal("vllm_model", request.ModelName);
        string Input(string name) => Assert.Single(TensorCodec.DecodeStrings(request.RawInputContents[request.Inputs.ToList().FindIndex(t => t.Name == name)].Span));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", Input("text_input"));
        var sampling = Json.Parse(Input("sampling_parameters"));
        Assert.Equal(20, sampling.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0, sampling.GetProperty("temperature").GetDouble());
        Assert.Equal(9, sampling.GetProperty("seed").GetInt64());
        Assert.Equal(["\n\n", "<|im_end|>"], sampling.GetProperty("stop").EnumerateArray().Select(static e => e.GetString()));
    }
}
