using System.Net;
using System.Text;
using System.Text.Json;
using Web.Chat;
using Web.Conversations;

namespace Web.Tests.Chat;

/// <summary>The REST path (response format and tools): the request it writes and the gateway's SSE it reads.</summary>
public sealed class GatewayRestChatTests
{
    private const string Tools = """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]""";

    /// <summary>Answers every request with one canned response and keeps the request body.</summary>
    private sealed class CannedHandler(HttpStatusCode status, string body, string contentType = "text/event-stream") : HttpMessageHandler
    {
        public HttpRequestMessage? Request { get; private set; }
        public string? RequestBody { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Request = request;
            RequestBody = await request.Content!.ReadAsStringAsync(cancellationToken);
            var response = new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, contentType) };
            if (status == HttpStatusCode.TooManyRequests)
            {
                response.Headers.Add("retry-after-ms", "2500");
            }
            return response;
        }
    }

    private static GatewayRestChat Client(CannedHandler handler) =>
        new(new GatewayClientOptions { RestAddress = "http://gateway.test:5080", ApiKey = "sk-web" }, handler);

    private static ChatPrompt Prompt(ChatSettings settings) => new()
    {
        Model = "llama",
        Messages = [new PromptMessage(ChatRoles.User, "Weather in Paris? Answer in JSON.")],
        Temperature = 0.2f,
        MaxTokens = 64,
        Structured = StructuredOutput.From(settings).Output ?? throw new InvalidOperationException("invalid settings"),
    };

    private static string Sse(params string[] data) => string.Concat(data.Select(d => "data: " + d + "\n\n"));

    private static async Task<List<AnswerEvent>> ReadAllAsync(IAsyncEnumerable<AnswerEvent> events)
    {
        var list = new List<AnswerEvent>();
        await foreach (var item in events)
        {
            list.Add(item);
        }
        return list;
    }

    [Fact]
    public async Task Stream_JsonSchema_PostsResponseFormatAndReadsContentAndUsage()
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse(
            """{"id":"c","object":"chat.completion.chunk","model":"llama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}""",
            """{"id":"c","object":"chat.completion.chunk","model":"llama","choices":[{"index":0,"delta":{"content":"{\"city\":"},"finish_reason":null}]}""",
            """{"id":"c","object":"chat.completion.chunk","model":"llama","choices":[{"index":0,"delta":{"content":"\"Paris\"}"},"finish_reason":"stop"}]}""",
            """{"id":"c","object":"chat.completion.chunk","model":"llama","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":6,"total_tokens":17}}""",
            "[DONE]"));
        var settings = new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, SchemaName = "weather", Schema = """{"type":"object","properties":{"city":{"type":"string"}}}""" };

        var events = await ReadAllAsync(Client(handler).StreamChatAsync(Prompt(settings), CancellationToken.None));

        Assert.Equal(HttpMethod.Post, handler.Request!.Method);
        Assert.Equal("http://gateway.test:5080/v1/chat/completions", handler.Request.RequestUri!.ToString());
        Assert.Equal("Bearer sk-web", handler.Request.Headers.Authorization!.ToString());
        using var body = JsonDocument.Parse(handler.RequestBody!);
        var root = body.RootElement;
        Assert.True(root.GetProperty("stream").GetBoolean());
        Assert.True(root.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(64, root.GetProperty("max_tokens").GetInt32());
        var format = root.GetProperty("response_format");
        Assert.Equal("json_schema", format.GetProperty("type").GetString());
        Assert.Equal("weather", format.GetProperty("json_schema").GetProperty("name").GetString());
        Assert.True(format.GetProperty("json_schema").GetProperty("strict").GetBoolean());
        Assert.Equal("string", format.GetProperty("json_schema").GetProperty("schema").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        Assert.False(root.TryGetProperty("tools", out _));

        Assert.Equal("{\"city\":\"Paris\"}", string.Concat(events.OfType<AnswerDelta>().Select(d => d.Text)));
        Assert.Equal(new AnswerFinal("stop", 11, 6, 0, "llama"), events[^1]);
    }

    [Fact]
    public async Task Stream_JsonObject_PostsJsonObjectFormat()
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse("[DONE]"));

        await ReadAllAsync(Client(handler).StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None));

        using var body = JsonDocument.Parse(handler.RequestBody!);
        Assert.Equal("""{"type":"json_object"}""", body.RootElement.GetProperty("response_format").GetRawText());
    }

    [Fact]
    public async Task Stream_Tools_PostsToolsAndChoice_AndYieldsToolCallPieces()
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse(
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_x00","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}""",
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}""",
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}""",
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}""",
            "[DONE]"));
        var settings = new ChatSettings { Tools = Tools, ToolChoice = ToolChoiceKind.Named, ToolChoiceName = "get_weather" };

        var events = await ReadAllAsync(Client(handler).StreamChatAsync(Prompt(settings), CancellationToken.None));

        using var body = JsonDocument.Parse(handler.RequestBody!);
        Assert.Equal("get_weather", body.RootElement.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("""{"type":"function","function":{"name":"get_weather"}}""", body.RootElement.GetProperty("tool_choice").GetRawText());
        Assert.False(body.RootElement.TryGetProperty("response_format", out _));
        Assert.Equal(
            [new AnswerToolCallDelta(0, "call_x00", "get_weather", ""), new AnswerToolCallDelta(0, null, null, "{\"city\":"), new AnswerToolCallDelta(0, null, null, "\"Paris\"}")],
            events.OfType<AnswerToolCallDelta>());
        Assert.Equal("tool_calls", ((AnswerFinal)events[^1]).FinishReason);

        // Through the streamer the pieces make the whole call.
        var answer = new ChatTurn { Id = "a", Role = ChatRoles.Assistant, State = TurnState.Streaming };
        foreach (var call in events.OfType<AnswerToolCallDelta>())
        {
            answer.AppendToolCall(call.Index, call.Id, call.Name, call.Arguments);
        }
        Assert.Equal([new ToolCall("call_x00", "get_weather", "{\"city\":\"Paris\"}")], answer.ToolCalls);
    }

    [Theory]
    [InlineData(ToolChoiceKind.Auto, "auto")]
    [InlineData(ToolChoiceKind.Required, "required")]
    [InlineData(ToolChoiceKind.None, "none")]
    public async Task Stream_Tools_ToolChoiceWords(ToolChoiceKind choice, string word)
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse("[DONE]"));

        await ReadAllAsync(Client(handler).StreamChatAsync(Prompt(new ChatSettings { Tools = Tools, ToolChoice = choice }), CancellationToken.None));

        using var body = JsonDocument.Parse(handler.RequestBody!);
        Assert.Equal(word, body.RootElement.GetProperty("tool_choice").GetString());
    }

    [Fact]
    public async Task Stream_UnsupportedParameter_FailsWithTheGatewaysMessage()
    {
        const string message = "The model `gpt-j-6b` runs on Triton's fastertransformer backend, which has no constrained (guided) decoding, so 'response_format' cannot be honoured. Models that support it: 'llama'.";
        var handler = new CannedHandler(HttpStatusCode.BadRequest,
            JsonSerializer.Serialize(new { error = new { message, type = "invalid_request_error", param = "response_format", code = "unsupported_parameter" } }),
            "application/json");

        var exception = await Assert.ThrowsAsync<ChatException>(() =>
            ReadAllAsync(Client(handler).StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None)));

        Assert.Equal(ChatErrorKind.InvalidRequest, exception.Error.Kind);
        Assert.Equal("This model does not support Response format (structured output)", exception.Error.Title);
        Assert.Equal(message, exception.Error.GatewayMessage);
    }

    [Fact]
    public async Task Stream_RateLimited_CarriesRetryAfter()
    {
        var handler = new CannedHandler(HttpStatusCode.TooManyRequests,
            """{"error":{"message":"Rate limit reached.","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}""", "application/json");

        var exception = await Assert.ThrowsAsync<ChatException>(() =>
            ReadAllAsync(Client(handler).StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None)));

        Assert.Equal(ChatErrorKind.RateLimited, exception.Error.Kind);
        Assert.Equal(TimeSpan.FromMilliseconds(2500), exception.Error.RetryAfter);
        Assert.Contains("Try again in 3 seconds", exception.Error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_ErrorEventAfterText_FailsAfterTheTextCame()
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse(
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{"content":"{\"ci"},"finish_reason":null}]}""",
            """{"error":{"message":"No token for 30 s.","type":"timeout_error","param":null,"code":"idle_timeout"}}""",
            "[DONE]"));
        var received = new List<AnswerEvent>();

        var exception = await Assert.ThrowsAsync<ChatException>(async () =>
        {
            await foreach (var item in Client(handler).StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None))
            {
                received.Add(item);
            }
        });

        Assert.Equal([new AnswerDelta("{\"ci", 0)], received);
        Assert.Equal(ChatErrorKind.Timeout, exception.Error.Kind);
        Assert.Equal("No token for 30 s.", exception.Error.GatewayMessage);
    }

    [Fact]
    public async Task Backend_StructuredPrompt_GoesThroughRest_PlainDoesNot()
    {
        var handler = new CannedHandler(HttpStatusCode.OK, Sse(
            """{"id":"c","model":"llama","choices":[{"index":0,"delta":{"content":"{}"},"finish_reason":"stop"}]}""", "[DONE]"));
        // A gRPC address nothing listens on: a plain prompt fails there without touching the REST handler.
        var options = new GatewayClientOptions { Address = "http://127.0.0.1:1", RestAddress = "http://gateway.test:5080", ApiKey = "k" };
        using var rest = new GatewayRestChat(options, handler);
        using var backend = new GatewayChatBackend(Microsoft.Extensions.Options.Options.Create(options), rest, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);

        var events = await ReadAllAsync(backend.StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None));
        Assert.Equal("{}", Assert.Single(events.OfType<AnswerDelta>()).Text);
        Assert.NotNull(handler.Request);

        var plain = Prompt(new ChatSettings());
        Assert.True(plain.Structured!.IsPlain);
        var handlerCalls = handler.RequestBody;
        await Assert.ThrowsAsync<ChatException>(() => ReadAllAsync(backend.StreamChatAsync(plain, CancellationToken.None)));
        Assert.Same(handlerCalls, handler.RequestBody);
    }

    [Fact]
    public async Task Stream_NoRestAddress_FailsNamingTheSetting()
    {
        using var client = new GatewayRestChat(new GatewayClientOptions { ApiKey = "k" }, new CannedHandler(HttpStatusCode.OK, ""));

        var exception = await Assert.ThrowsAsync<ChatException>(() =>
            ReadAllAsync(client.StreamChatAsync(Prompt(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject }), CancellationToken.None)));

        Assert.Contains("GatewayClient:RestAddress", exception.Error.Detail, StringComparison.Ordinal);
    }
}
