using System.Net;
using Gateway.Tests.Functional;

namespace Gateway.Tests.Lifecycle;

public sealed class KeepAliveTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task FirstTokenTakes25s_KeepAliveCommentsArriveBeforeTheFirstDataLine_ThenTokensAndDone()
    {
        var time = new ObservableTimeProvider();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await release.Task.WaitAsync(call.Aborted);
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" long prompt done"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?>
        {
            ["Gateway:Sse:KeepAliveAfter"] = "00:00:10",
            ["Gateway:Sse:KeepAliveInterval"] = "00:00:07",
        }, time);

        var sending = gateway.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") },
            HttpCompletionOption.ResponseHeadersRead);
        await triton.FirstCall.WaitAsync(Wait);
        await time.WaitForTimerAsync(TimeSpan.FromSeconds(10), Wait);
        time.Advance(TimeSpan.FromSeconds(10)); // 10 s of silence: the first comment, and with it the 200
        using var response = await sending.WaitAsync(Wait);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(": keep-alive", await sse.NextCommentAsync().WaitAsync(Wait));
        time.Advance(TimeSpan.FromSeconds(7)); // 17 s: the interval
        Assert.Equal(": keep-alive", await sse.NextCommentAsync().WaitAsync(Wait));
        time.Advance(TimeSpan.FromSeconds(7)); // 24 s
        Assert.Equal(": keep-alive", await sse.NextCommentAsync().WaitAsync(Wait));
        time.Advance(TimeSpan.FromSeconds(1)); // 25 s: the first token
        release.SetResult();

        var events = await sse.ReadAllAsync().WaitAsync(Wait);
        Assert.Equal(3, sse.CommentsBeforeFirstData);
        Assert.All(sse.Comments, c => Assert.Equal(": keep-alive", c));
        Assert.Equal("[DONE]", events[^1]);
        var text = string.Concat(events.Where(e => e != "[DONE]").Select(e => Json.Parse(e).GetProperty("choices")).Where(c => c.GetArrayLength() > 0)
            .Select(c => c[0].GetProperty("delta").TryGetProperty("content", out var content) ? content.GetString() : ""));
        Assert.Equal(" long prompt done", text);
    }

    [Fact]
    public async Task FastFirstToken_SendsNoComment()
    {
        var time = new ObservableTimeProvider();
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" quick"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, time: time);
        using var response = await gateway.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.StartsWith("chatcmpl-", response.Headers.GetValues("x-request-id").Single());
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync().WaitAsync(Wait);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Empty(sse.Comments);
    }
}
