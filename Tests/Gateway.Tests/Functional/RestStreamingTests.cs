using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.OpenAi;
using Gateway.Text;

namespace Gateway.Tests.Functional;

/// <summary>The REST + SSE face against a scripted Triton: exact framing, text handling and cancellation.</summary>
public sealed class RestStreamingTests
{
    internal static readonly ITextTokenizer Gpt2 = new TextTokenizers().Get(TextTokenizers.Gpt2);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    internal static StringContent ChatBody(string extra = "", string content = "Hi") => new(
        $$"""{"model":"gpt-j-6b","messages":[{"role":"user","content":{{JsonSerializer.Serialize(content)}}}]{{extra}}}""",
        Encoding.UTF8, "application/json");

    private static async Task<HttpResponseMessage> PostStreamingAsync(HttpClient http, string path, HttpContent body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body };
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    [Fact]
    public async Task ChatStream_FramesRoleContentFinishUsageDone_EachEventFlushedAtOnce()
    {
        var secondTokenAllowed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" Hello"));
            // The gateway must have delivered " Hello" to the client before the next token exists.
            await secondTokenAllowed.Task.WaitAsync(Wait);
            await call.SendTokensAsync(Gpt2.Encode(" world"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);

        using var response = await PostStreamingAsync(gateway.Http, "/v1/chat/completions",
            ChatBody(""","stream":true,"stream_options":{"include_usage":true}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
        Assert.True(double.TryParse(response.Headers.GetValues(OpenAiEndpoints.OverheadHeader).Single(), System.Globalization.CultureInfo.InvariantCulture, out _));
        Assert.Null(response.Content.Headers.ContentEncoding.FirstOrDefault());

        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var first = Json.Parse((await sse.NextAsync())!);
        Assert.Equal("chat.completion.chunk", first.GetProperty("object").GetString());
        var id = first.GetProperty("id").GetString();
        var created = first.GetProperty("created").GetInt64();
        Assert.Equal("assistant", first.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal("", first.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind);

        var hello = Json.Parse((await sse.NextAsync().WaitAsync(Wait))!);
        Assert.Equal(" Hello", hello.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        secondTokenAllowed.SetResult();

        var world = Json.Parse((await sse.NextAsync())!);
        Assert.Equal(" world", world.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        Assert.False(world.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("role", out _));

        var finish = Json.Parse((await sse.NextAsync())!);
        Assert.Equal("stop", finish.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Empty(finish.GetProperty("choices")[0].GetProperty("delta").EnumerateObject());

        var usage = Json.Parse((await sse.NextAsync())!);
        Assert.Equal(0, usage.GetProperty("choices").GetArrayLength());
        var promptTokens = Gpt2.CountTokens(ChatTemplates.Get(ChatTemplates.GptPlain).Render([new ChatTurn("user", "Hi")]));
        Assert.Equal(promptTokens, usage.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(promptTokens + 2, usage.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        Assert.Equal("[DONE]", await sse.NextAsync());
        Assert.Null(await sse.NextAsync());
        foreach (var chunk in new[] { hello, world, finish, usage })
        {
            Assert.Equal(id, chunk.GetProperty("id").GetString());
            Assert.Equal(created, chunk.GetProperty("created").GetInt64());
            Assert.Equal("gpt-j-6b", chunk.GetProperty("model").GetString());
        }
        await triton.Calls.Single().CompletedCleanly.WaitAsync(Wait);
    }

    [Fact]
    public async Task ChatStream_WithoutIncludeUsage_HasNoUsageChunk()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" ok"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await PostStreamingAsync(gateway.Http, "/v1/chat/completions", ChatBody(""","stream":true"""));
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        Assert.Equal(4, events.Count); // role, " ok", finish, [DONE]
        Assert.Equal("[DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"usage\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CompletionStream_TextCompletionChunksThenFinishThenDone()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" upon a time"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await PostStreamingAsync(gateway.Http, "/v1/completions", new StringContent(
            """{"model":"gpt-j-6b","prompt":"Once","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}""", Encoding.UTF8, "application/json"));
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(Json.Parse).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        var text = string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(" upon a time", text);
        Assert.Equal("length", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(3, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(1, chunks[^1].GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal([3u], triton.Calls.Single().InputIds("request_output_len"));
    }

    [Fact]
    public async Task Stream_EmojiSplitAcrossTokens_ArrivesAsWholeCharacters()
    {
        const string text = " Fox 🦊 and 👍🏽 done";
        var ids = Gpt2.Encode(text);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(ids);
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await PostStreamingAsync(gateway.Http, "/v1/chat/completions", ChatBody(""","stream":true"""));
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        var pieces = events[1..^2].Select(e => Json.Parse(e).GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()!).ToList();
        Assert.True(pieces.Count < ids.Count, "tokens that end inside a character must not produce their own event");
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.All(pieces, p => Assert.False(char.IsHighSurrogate(p[^1])));
        Assert.Equal(text, string.Concat(pieces));
    }

    [Fact]
    public async Task Stream_StopStringSplitAcrossTokens_IsNeverSentAndCancelsTriton()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" Hello world and more text"));
            await call.Aborted.WaitHandle.WaitOneAsync(Wait); // a real model would keep going
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        // "ld an" spans the tokens " world" and " and".
        using var response = await PostStreamingAsync(gateway.Http, "/v1/chat/completions", ChatBody(""","stream":true,"stop":["ld an","NEVER"]"""));
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        var text = string.Concat(events[1..^2].Select(e => Json.Parse(e).GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal(" Hello wor", text);
        Assert.Equal("stop", Json.Parse(events[^2]).GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        await triton.Calls.Single().Cancelled.WaitAsync(Wait);

        // Also sent to FT as stop_words_list [1,2,N]: every stop's ids, then cumulative offsets.
        var call = triton.Calls.Single();
        var stopWords = call.InputInt32("stop_words_list");
        var expectedIds = Gpt2.Encode("ld an").Concat(Gpt2.Encode("NEVER")).Concat(Gpt2.Encode("\nUser:")).ToArray();
        Assert.Equal(expectedIds, stopWords[..expectedIds.Length]);
        Assert.Equal(2 * expectedIds.Length, stopWords.Length);
    }

    [Fact]
    public async Task Stream_ClientDisconnects_CancelsBackendRequest()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" one"));
            await call.Aborted.WaitHandle.WaitOneAsync(Wait);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var response = await PostStreamingAsync(gateway.Http, "/v1/chat/completions", ChatBody(""","stream":true"""));
        var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        await sse.NextAsync(); // role
        await sse.NextAsync(); // " one"
        sse.Dispose();
        response.Dispose();
        await triton.Calls.Single().Cancelled.WaitAsync(Wait);
    }

    [Fact]
    public async Task Chat_NonStreaming_ReturnsMessageAndExactUsage()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" Paris is nice."));
            await call.SendTokensAsync([50256]); // end id: FT's end of text
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", ChatBody(content: "Capital of France?"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains(OpenAiEndpoints.OverheadHeader));
        var body = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(" Paris is nice.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var prompt = ChatTemplates.Get(ChatTemplates.GptPlain).Render([new ChatTurn("user", "Capital of France?")]);
        Assert.Equal(Gpt2.CountTokens(prompt), body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(Gpt2.Encode(" Paris is nice.").Count, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(Gpt2.Encode(prompt), triton.Calls.Single().InputIds("input_ids").Select(i => (int)i));
    }

    [Fact]
    public async Task Stream_TraceContext_ReachesTritonUnderTheTritonSpan()
    {
        // The listener is process-wide and other tests run in parallel: filter by this request's trace.
        var stopped = new System.Collections.Concurrent.ConcurrentDictionary<ActivitySpanId, Activity>();
        var requestSpans = System.Threading.Channels.Channel.CreateUnbounded<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                stopped[activity.SpanId] = activity;
                if (activity.OperationName == "chat gpt-j-6b")
                {
                    requestSpans.Writer.TryWrite(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(Gpt2.Encode(" hi"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", ChatBody());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var traceparent = triton.Calls.Single().Headers.GetValue("traceparent");
        Assert.NotNull(traceparent);
        var parts = traceparent.Split('-');
        using var timeout = new CancellationTokenSource(Wait);
        Activity requestSpan;
        do
        {
            requestSpan = await requestSpans.Reader.ReadAsync(timeout.Token);
        }
        while (requestSpan.TraceId.ToString() != parts[1]);
        var tritonSpan = stopped.Values.Single(a => a.OperationName == "triton ModelStreamInfer" && a.TraceId == requestSpan.TraceId);
        Assert.Equal(requestSpan.SpanId, tritonSpan.ParentSpanId);
        // Triton's parent span is the Triton span itself or a client span under it (gRPC, HTTP).
        var sent = stopped[ActivitySpanId.CreateFromString(parts[2])];
        var ancestor = sent;
        while (ancestor != tritonSpan && stopped.TryGetValue(ancestor.ParentSpanId, out var parent))
        {
            ancestor = parent;
        }
        Assert.True(ancestor == tritonSpan, $"traceparent names {sent.OperationName}, not under the Triton span");
        Assert.Equal(1, requestSpan.GetTagItem("gen_ai.usage.output_tokens"));
    }

    [Fact]
    public async Task Stream_LegacyTritonWithoutFinalFlag_EndsAtLength()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            // Triton < 23.06: no triton_final_response parameter and no empty final response.
            await call.SendTokensAsync(Gpt2.Encode(" a b c"), finalFlag: false);
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.PostAsync("/v1/completions", new StringContent(
            """{"model":"gpt-j-6b","prompt":"x","max_tokens":3}""", Encoding.UTF8, "application/json"));
        var body = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(" a b c", body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Stream_TransportFailsBeforeAnyToken_RetriesAndSucceeds()
    {
        var attempt = 0;
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            if (Interlocked.Increment(ref attempt) == 1)
            {
                call.Kill(); // the connection breaks before any token: a transport failure
                return;
            }
            await call.SendTokensAsync(Gpt2.Encode(" ok"));
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", ChatBody());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, triton.Calls.Count);
    }

    [Fact]
    public async Task Stream_BackendRejectsTheRequest_IsNotRetried()
    {
        await using var triton = await ScriptedTriton.StartAsync(call =>
            call.SendErrorAsync("[request id: <id_unknown>] inference request for model 'fastertransformer' has invalid argument"));
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", ChatBody());
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal("backend_error", error.GetProperty("code").GetString());
        Assert.Contains("invalid argument", error.GetProperty("message").GetString());
        Assert.Single(triton.Calls); // the same request would be rejected the same way anywhere
    }

    [Fact]
    public async Task Models_ListAndRetrieve_ShowTheCatalogue()
    {
        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var list = Json.Parse(await gateway.Http.GetStringAsync("/v1/models"));
        Assert.Equal("list", list.GetProperty("object").GetString());
        var model = Assert.Single(list.GetProperty("data").EnumerateArray());
        Assert.Equal("gpt-j-6b", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal(2048, model.GetProperty("context_window").GetInt32());
        var one = Json.Parse(await gateway.Http.GetStringAsync("/v1/models/gpt-j-6b"));
        Assert.Equal("gpt-j-6b", one.GetProperty("id").GetString());

        using var other = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        other.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestKeys.OtherModelOnly);
        using var otherResponse = await gateway.Http.SendAsync(other);
        Assert.Equal(0, Json.Parse(await otherResponse.Content.ReadAsStringAsync()).GetProperty("data").GetArrayLength());
    }
}

internal static class WaitHandleExtensions
{
    public static Task WaitOneAsync(this WaitHandle handle, TimeSpan timeout)
    {
        var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var registration = ThreadPool.RegisterWaitForSingleObject(handle, (state, timedOut) => completion.TrySetResult(), null, timeout, executeOnlyOnce: true);
        return completion.Task.ContinueWith(_ => registration.Unregister(null), TaskScheduler.Default);
    }
}
