using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Functional;

/// <summary>Every REST error: OpenAI's error shape, the right status, the parameter named.</summary>
public sealed class RestErrorTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private ScriptedTriton _triton = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" fine"));
            await call.SendEmptyFinalAsync();
        });
        _gateway = await GatewayHost.StartAsync(_triton.Address);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _triton.DisposeAsync();
    }

    internal static async Task<JsonElement> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string? param, string? code)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()));
        Assert.Equal(param, error.GetProperty("param").GetString()); // present even when null
        Assert.Equal(code, error.GetProperty("code").GetString());
        return error;
    }

    private async Task<HttpResponseMessage> PostAsync(string json, string? key = TestKeys.Full, string path = "/v1/chat/completions")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is null)
        {
            using var anonymous = new HttpClient { BaseAddress = _gateway.Endpoints.Rest };
            return await anonymous.SendAsync(request);
        }
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await _gateway.Http.SendAsync(request);
    }

    private const string Hi = """{"model":"gpt-j-6b","messages":[{"role":"user","content":"Hi"}]}""";

    [Fact]
    public async Task MissingKey_Is401()
    {
        using var response = await PostAsync(Hi, key: null);
        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, null, "invalid_api_key");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Empty(_triton.Calls);
    }

    [Fact]
    public async Task WrongKey_Is401()
    {
        using var response = await PostAsync(Hi, key: "sk-wrong");
        var error = await AssertErrorAsync(response, HttpStatusCode.Unauthorized, null, "invalid_api_key");
        Assert.DoesNotContain("sk-wrong", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ModelNotAllowedForKey_Is403()
    {
        using var response = await PostAsync(Hi, key: TestKeys.OtherModelOnly);
        await AssertErrorAsync(response, HttpStatusCode.Forbidden, "model", "model_not_allowed");
    }

    [Fact]
    public async Task UnknownModel_Is404()
    {
        using var response = await PostAsync("""{"model":"gpt-9","messages":[{"role":"user","content":"Hi"}]}""");
        await AssertErrorAsync(response, HttpStatusCode.NotFound, "model", "model_not_found");
        using var retrieve = await _gateway.Http.GetAsync("/v1/models/gpt-9");
        await AssertErrorAsync(retrieve, HttpStatusCode.NotFound, "model", "model_not_found");
    }

    [Fact]
    public async Task InvalidJson_Is400()
    {
        using var response = await PostAsync("{\"model\": ");
        await AssertErrorAsync(response, HttpStatusCode.BadRequest, null, "invalid_json");
    }

    [Fact]
    public async Task WrongFieldType_Is400NamingTheField()
    {
        using var response = await PostAsync("""{"model":"gpt-j-6b","messages":[{"role":"user","content":"Hi"}],"temperature":"hot"}""");
        await AssertErrorAsync(response, HttpStatusCode.BadRequest, "temperature", "invalid_type");
    }

    [Fact]
    public async Task OutOfRangeValue_Is400NamingTheField()
    {
        using var response = await PostAsync("""{"model":"gpt-j-6b","messages":[{"role":"user","content":"Hi"}],"top_p":1.5}""");
        await AssertErrorAsync(response, HttpStatusCode.BadRequest, "top_p", "invalid_value");
    }

    [Fact]
    public async Task NGreaterThanOne_Is400SayingItIsUnsupported()
    {
        using var response = await PostAsync("""{"model":"gpt-j-6b","messages":[{"role":"user","content":"Hi"}],"n":3}""");
        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest, "n", "unsupported_parameter");
        Assert.Contains("not supported", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task PromptPlusMaxTokensBeyondWindow_Is400ContextLengthExceeded()
    {
        var prompt = string.Concat(Enumerable.Repeat(" hello", 1500));
        using var response = await PostAsync($$"""{"model":"gpt-j-6b","max_tokens":1000,"messages":[{"role":"user","content":"{{prompt}}"}]}""");
        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest, "messages", "context_length_exceeded");
        Assert.Contains("2048", error.GetProperty("message").GetString());
        Assert.Empty(_triton.Calls);
    }

    [Fact]
    public async Task MaxTokensAboveModelLimit_Is400NamingTheField()
    {
        using var response = await PostAsync("""{"model":"gpt-j-6b","max_completion_tokens":5000,"messages":[{"role":"user","content":"Hi"}]}""");
        await AssertErrorAsync(response, HttpStatusCode.BadRequest, "max_completion_tokens", "invalid_value");
    }

    [Fact]
    public async Task BodyTooLarge_Is413()
    {
        var big = new string('x', 70_000);
        using var response = await PostAsync($$"""{"model":"gpt-j-6b","messages":[{"role":"user","content":"{{big}}"}]}""");
        await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, null, "request_too_large");
    }

    [Fact]
    public async Task RateLimited_Is429WithRetryAfter()
    {
        using var first = await PostAsync(Hi, key: TestKeys.OneRequestPerMinute);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var second = await PostAsync(Hi, key: TestKeys.OneRequestPerMinute);
        await AssertErrorAsync(second, HttpStatusCode.TooManyRequests, null, "rate_limit_exceeded");
        var retryAfter = int.Parse(second.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 60);
    }

    [Fact]
    public async Task NoBackendReachable_Is503WithRetryAfter()
    {
        // A port that was just free: nothing listens there.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var gateway = await GatewayHost.StartAsync(new Uri($"http://127.0.0.1:{port}"));
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody());
        await AssertErrorAsync(response, HttpStatusCode.ServiceUnavailable, null, "backend_unavailable");
        Assert.True(response.Headers.Contains("Retry-After"));
    }

    [Fact]
    public async Task NoFirstTokenInTime_Is504AndCancelsTriton()
    {
        var time = new ObservableTimeProvider();
        await using var triton = await ScriptedTriton.StartAsync(call => call.Aborted.WaitHandle.WaitOneAsync(Wait));
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?> { ["Gateway:Triton:FirstTokenTimeout"] = "00:00:05" }, time);
        var pending = gateway.Http.PostAsync("/v1/chat/completions", RestStreamingTests.ChatBody(""","stream":true"""));
        await triton.FirstCall.WaitAsync(Wait);
        time.Advance(TimeSpan.FromSeconds(5));
        using var response = await pending.WaitAsync(Wait);
        await AssertErrorAsync(response, HttpStatusCode.GatewayTimeout, null, "first_token_timeout");
        await triton.Calls.Single().Cancelled.WaitAsync(Wait);
        Assert.Single(triton.Calls); // no retry after a timeout
    }

    [Fact]
    public async Task NoTokenForIdleTimeoutMidStream_IsFinalErrorEvent()
    {
        var time = new ObservableTimeProvider();
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" one"));
            await call.Aborted.WaitHandle.WaitOneAsync(Wait);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address, new Dictionary<string, string?> { ["Gateway:Triton:IdleTimeout"] = "00:00:07" }, time);
        using var response = await gateway.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        await sse.NextAsync(); // role
        await sse.NextAsync(); // " one"
        await time.WaitForTimerAsync(TimeSpan.FromSeconds(7), Wait);
        time.Advance(TimeSpan.FromSeconds(7));
        var error = Json.Parse((await sse.NextAsync().WaitAsync(Wait))!).GetProperty("error");
        Assert.Equal("idle_timeout", error.GetProperty("code").GetString());
        // The error is the final event, then [DONE] (as vLLM ends a failed stream) and the end of the body.
        Assert.Equal("[DONE]", await sse.NextAsync().WaitAsync(Wait));
        Assert.Null(await sse.NextAsync().WaitAsync(Wait));
        await triton.Calls.Single().Cancelled.WaitAsync(Wait);
    }

    [Fact]
    public async Task BackendKilledMidStream_IsFinalErrorEvent()
    {
        var clientHasTokens = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(RestStreamingTests.Gpt2.Encode(" one two"));
            await clientHasTokens.Task.WaitAsync(Wait);
            call.Kill();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = RestStreamingTests.ChatBody(""","stream":true""") },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        await sse.NextAsync(); // role
        Assert.Contains(" one", await sse.NextAsync());
        clientHasTokens.SetResult();
        var events = await sse.ReadAllAsync().WaitAsync(Wait);
        var error = Json.Parse(events[^2]).GetProperty("error");
        Assert.Equal("backend_error", error.GetProperty("code").GetString());
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Single(events, e => e == "[DONE]");
        Assert.Single(triton.Calls); // never retried after tokens were sent
    }
}
