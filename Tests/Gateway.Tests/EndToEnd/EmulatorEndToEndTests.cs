using System.Net;
using System.Text;
using Gateway.Tests.Functional;
using Grpc.Core;
using Llm.Gateway.V1;

namespace Gateway.Tests.EndToEnd;

/// <summary>Official clients → gateway → real TritonEmulator over gRPC ModelStreamInfer.</summary>
public sealed class EmulatorEndToEndTests(EmulatorHost host) : IClassFixture<EmulatorHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<(string Text, string Finish, int CompletionTokens)> CompleteAsync(string json)
    {
        using var response = await host.Gateway.Http.PostAsync("/v1/completions", Json(json));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = Functional.Json.Parse(await response.Content.ReadAsStringAsync());
        var choice = body.GetProperty("choices")[0];
        return (choice.GetProperty("text").GetString()!, choice.GetProperty("finish_reason").GetString()!, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    private async Task<(string Text, string Finish, int CompletionTokens, int Events)> StreamCompleteAsync(string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(json) };
        using var response = await host.Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Functional.Json.Parse).ToList();
        var text = new StringBuilder();
        string? finish = null;
        var tokens = -1;
        foreach (var chunk in chunks)
        {
            if (chunk.GetProperty("choices").GetArrayLength() > 0)
            {
                var piece = chunk.GetProperty("choices")[0].GetProperty("text").GetString()!;
                Assert.DoesNotContain('\uFFFD', piece);
                text.Append(piece);
                if (chunk.GetProperty("choices")[0].GetProperty("finish_reason").GetString() is { } f)
                {
                    finish = f;
                }
            }
            if (chunk.TryGetProperty("usage", out var usage) && usage.ValueKind == System.Text.Json.JsonValueKind.Object)
            {
                tokens = usage.GetProperty("completion_tokens").GetInt32();
            }
        }
        return (text.ToString(), finish!, tokens, chunks.Count);
    }

    [Fact]
    public async Task Completion_MaxTokensReached_FinishesWithLength_StreamedOrNot()
    {
        const string body = """{"model":"gpt-j-6b","prompt":"The weather today","max_tokens":4,"temperature":0}""";
        var whole = await CompleteAsync(body);
        Assert.Equal(("length", 4), (whole.Finish, whole.CompletionTokens));
        var streamed = await StreamCompleteAsync(body.Replace("}", ""","stream":true,"stream_options":{"include_usage":true}}""", StringComparison.Ordinal));
        Assert.Equal(whole.Text, streamed.Text);
        Assert.Equal(("length", 4), (streamed.Finish, streamed.CompletionTokens));
    }

    [Fact]
    public async Task Completion_MultibyteCharacterSplitAcrossTokens_ArrivesWhole()
    {
        // Greedy continuation from the engine's corpus: " ☕ and watched …" (☕ is several GPT-2 tokens).
        const string body = """{"model":"gpt-j-6b","prompt":"People stepped into a small café near the station, ordered coffee","max_tokens":6,"temperature":0}""";
        var streamed = await StreamCompleteAsync(body.Replace("}", ""","stream":true}""", StringComparison.Ordinal));
        Assert.Contains("☕", streamed.Text);
        Assert.True(RestStreamingTests.Gpt2.Encode("☕").Count > 1);
        Assert.Equal((await CompleteAsync(body)).Text, streamed.Text);
    }

    [Fact]
    public async Task Completion_StopStringSplitAcrossTokens_IsCutBeforeIt()
    {
        const string body = """{"model":"gpt-j-6b","prompt":"The weather today","max_tokens":24,"temperature":0}""";
        var full = await CompleteAsync(body);
        // A stop string made of the end of one generated token and the start of the next.
        var ids = RestStreamingTests.Gpt2.Encode(full.Text);
        string? stop = null;
        for (var i = 2; i < ids.Count - 1 && stop is null; i++)
        {
            var left = RestStreamingTests.Gpt2.CreateDetokenizerText(ids[i]);
            var right = RestStreamingTests.Gpt2.CreateDetokenizerText(ids[i + 1]);
            if (left.Length >= 2 && right.Length >= 2 && left.All(c => c < 128) && right.All(c => c < 128))
            {
                stop = left[^2..] + right[..2];
            }
        }
        Assert.NotNull(stop);
        var expected = full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)];
        var stopJson = System.Text.Json.JsonSerializer.Serialize(stop);
        var cut = await StreamCompleteAsync(body.Replace("}", $$""","stop":[{{stopJson}}],"stream":true}""", StringComparison.Ordinal));
        Assert.Equal(expected, cut.Text);
        Assert.Equal("stop", cut.Finish);
        var whole = await CompleteAsync(body.Replace("}", $$""","stop":{{stopJson}}}""", StringComparison.Ordinal));
        Assert.Equal(expected, whole.Text);
    }

    [Fact]
    public async Task Grpc_ClientCancel_ShowsAsCancelledInTritonStatistics()
    {
        var before = await host.CancelledCountAsync();
        var client = new LlmGateway.LlmGatewayClient(host.Gateway.Grpc);
        using var cts = new CancellationTokenSource();
        using var call = client.StreamCompletion(new Llm.Gateway.V1.CompletionRequest { Model = EmulatorHost.LongModel, Prompt = "Once", Sampling = new SamplingOptions { MaxTokens = 400 } },
            new Metadata { { "authorization", $"Bearer {TestKeys.Full}" } }, cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext());
        await cts.CancelAsync();
        await host.WaitForCancelAsync(before, Wait);
    }

    [Fact]
    public async Task Grpc_Deadline_ShowsAsCancelledInTritonStatistics()
    {
        var before = await host.CancelledCountAsync();
        var client = new LlmGateway.LlmGatewayClient(host.Gateway.Grpc);
        using var call = client.StreamCompletion(new Llm.Gateway.V1.CompletionRequest { Model = EmulatorHost.LongModel, Prompt = "Once", Sampling = new SamplingOptions { MaxTokens = 400 } },
            new Metadata { { "authorization", $"Bearer {TestKeys.Full}" } }, deadline: DateTime.UtcNow.AddSeconds(5));
        // A token arrived, so Triton is generating when the deadline (well before its ≈ 9 s of work) passes;
        // a deadline that expired before the gateway reached Triton would leave nothing there to cancel.
        Assert.True(await call.ResponseStream.MoveNext());
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        await host.WaitForCancelAsync(before, Wait);
    }
}

/// <summary>Killing the engine mid-stream needs an engine of its own.</summary>
public sealed class EmulatorKilledTests
{
    [Fact]
    public async Task EmulatorKilledMidStream_IsFinalErrorEvent()
    {
        var host = new EmulatorHost();
        await host.InitializeAsync();
        try
        {
            using var response = await host.Gateway.Http.SendAsync(
                new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = new StringContent("""{"model":"gpt-j-6b-long","max_tokens":400,"stream":true,"messages":[{"role":"user","content":"Talk"}]}""", Encoding.UTF8, "application/json"),
                },
                HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
            await sse.NextAsync(); // role
            await sse.NextAsync(); // a token
            await host.Emulator.StopAsync(new CancellationToken(canceled: true)); // kill: connections aborted
            var events = await sse.ReadAllAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var error = Functional.Json.Parse(events[^2]).GetProperty("error");
            Assert.Equal("backend_error", error.GetProperty("code").GetString());
            Assert.Equal("[DONE]", events[^1]);
        }
        finally
        {
            await host.DisposeAsync();
        }
    }
}
