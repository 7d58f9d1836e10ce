using Gateway.Tests.Functional;
using Triton.Inference;

namespace Gateway.Tests.Lifecycle;

/// <summary>How an SSE stream ends: [DONE] before the bookkeeping, and never a reset after the headers.</summary>
public sealed class StreamEndTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static HttpRequestMessage StreamingChat() =>
        new(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") };

    [Fact]
    public async Task DoneIsWritten_BeforeTritonClosesItsStream()
    {
        var close = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" all"));
            await call.SendEmptyFinalAsync();
            // Triton holds the stream until it has processed the gateway's half-close; a slow
            // one must not hold back the client's [DONE] (the gateway's idle timeout is 30 s).
            await close.Task.WaitAsync(call.Aborted);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);

        using var response = await gateway.Http.SendAsync(StreamingChat(), HttpCompletionOption.ResponseHeadersRead);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        string? last = null;
        while (await sse.NextAsync().WaitAsync(Wait) is { } data)
        {
            last = data;
            if (data == "[DONE]")
            {
                break;
            }
        }
        Assert.Equal("[DONE]", last);
        Assert.False(close.Task.IsCompleted);

        close.SetResult();
        await triton.Calls.Single().CompletedCleanly.WaitAsync(Wait); // half-closed, not cancelled
        Assert.False(triton.Calls.Single().Cancelled.IsCompleted);
    }

    [Fact]
    public async Task AnUnexpectedFailureAfterTheHeaders_EndsWithAnErrorEventAndDone_NotAReset()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" first"), finalFlag: false);
            // A malformed response: the FT tensors are named but their bytes are missing.
            var broken = new ModelInferResponse { Id = call.Request.Id, ModelName = call.Request.ModelName };
            broken.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = "UINT32", Shape = { 1, 1, 0 } });
            broken.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = "UINT32", Shape = { 1, 1 } });
            broken.RawOutputContents.Add(Google.Protobuf.ByteString.Empty);
            broken.RawOutputContents.Add(Google.Protobuf.ByteString.Empty);
            await call.SendRawAsync(broken);
            await call.Aborted.WaitHandle.WaitOneAsync(Wait);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);

        using var response = await gateway.Http.SendAsync(StreamingChat(), HttpCompletionOption.ResponseHeadersRead);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync().WaitAsync(Wait); // throws on a reset connection

        Assert.Equal("[DONE]", events[^1]);
        var error = Json.Parse(events[^2]).GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Contains(events, e => e.Contains(" first", StringComparison.Ordinal));
        await triton.Calls.Single().Cancelled.WaitAsync(Wait); // Triton stops generating
    }
}
