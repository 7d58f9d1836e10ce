using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;

namespace Web.Chat;

/// <summary>
/// Streams a chat through the gateway's OpenAI-compatible REST face (<c>POST /v1/chat/completions</c>,
/// SSE) for what the gRPC face does not carry: <c>response_format</c> and <c>tools</c>. The request
/// is written with <see cref="Utf8JsonWriter"/> (the schema and tools go in as the user's checked JSON);
/// each event is read from its UTF-8 bytes with a source-generated context. The OpenAI SDK is not
/// used here because it drops the gateway's in-stream error events (a timeout after the first token),
/// which the chat must show. Its own <see cref="HttpClient"/>: the app's default handlers add a total
/// timeout, and an answer may stream for minutes (the gateway's idle and first-token timeouts end a
/// stalled one with an error event).
/// </summary>
internal sealed class GatewayRestChat : IDisposable
{
    private const int MaxErrorBody = 64 * 1024;
    private static ReadOnlySpan<byte> Done => "[DONE]"u8;

    private readonly HttpClient _http;
    private readonly Uri? _endpoint;
    private readonly string _apiKey;

    public GatewayRestChat(IOptions<GatewayClientOptions> options)
        : this(options.Value, new SocketsHttpHandler
        {
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
        })
    {
    }

    internal GatewayRestChat(GatewayClientOptions options, HttpMessageHandler handler)
    {
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _endpoint = Uri.TryCreate(options.RestAddress, UriKind.Absolute, out var address) ? new Uri(address, "v1/chat/completions") : null;
        _apiKey = options.ApiKey;
    }

    public async IAsyncEnumerable<AnswerEvent> StreamChatAsync(ChatPrompt prompt, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (_endpoint is null)
        {
            throw new ChatException(new ChatError(ChatErrorKind.NoBackend, "Structured output is not set up",
                $"Response format and tools go through the gateway's REST face, and {GatewayClientOptions.SectionName}:RestAddress (or {GatewayClientOptions.RestDiscoveryKey}) is not set."));
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new ByteArrayContent(Body(prompt)) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.Authorization = new("Bearer", _apiKey);
        request.Headers.Accept.Add(new("text/event-stream"));

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException exception) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ChatException(ChatErrors.Unreachable(exception), exception);
        }

        // Disposing the response (leaving the loop early or on cancellation) aborts the request,
        // which the gateway turns into a cancelled Triton request.
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw new ChatException(await ErrorAsync(response, cancellationToken).ConfigureAwait(false));
            }

            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var events = SseParser.Create<ChunkJson?>(stream, static (_, data) => data.SequenceEqual(Done)
                ? null
                : JsonSerializer.Deserialize(data, RestChatJsonContext.Default.ChunkJson));
            await using var reader = events.EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);

            var finish = "";
            var model = prompt.Model;
            UsageJson? usage = null;
            while (true)
            {
                ChunkJson? chunk;
                try
                {
                    if (!await reader.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }
                    chunk = reader.Current.Data;
                }
                catch (Exception exception) when (cancellationToken.IsCancellationRequested && exception is OperationCanceledException or IOException or HttpRequestException)
                {
                    throw new OperationCanceledException("The answer was stopped.", exception, cancellationToken);
                }
                catch (Exception exception) when (exception is IOException or HttpRequestException)
                {
                    throw new ChatException(new ChatError(ChatErrorKind.NoBackend, "The connection to the gateway broke",
                        "The answer stopped arriving. Try again.", null, exception.Message), exception);
                }
                catch (JsonException exception)
                {
                    throw new ChatException(new ChatError(ChatErrorKind.Unexpected, "Something went wrong",
                        "The gateway sent an event the web app cannot read. Try again.", null, exception.Message), exception);
                }

                if (chunk is null)
                {
                    break; // [DONE]
                }
                if (chunk.Error is { } error)
                {
                    throw new ChatException(ChatErrors.FromStreamError(error.ToBody()));
                }
                if (chunk.Model is { Length: > 0 } chunkModel)
                {
                    model = chunkModel;
                }
                usage = chunk.Usage ?? usage;
                if (chunk.Choices is not { Count: > 0 } choices)
                {
                    continue;
                }
                var choice = choices[0];
                if (choice.FinishReason is { Length: > 0 } reason)
                {
                    finish = reason;
                }
                if (choice.Delta is not { } delta)
                {
                    continue;
                }
                if (delta.Content is { Length: > 0 } text)
                {
                    // REST chunks carry no token counts; the usage chunk at the end has them.
                    yield return new AnswerDelta(text, 0);
                }
                if (delta.ToolCalls is { } calls)
                {
                    foreach (var call in calls)
                    {
                        yield return new AnswerToolCallDelta(call.Index, call.Id, call.Function?.Name, call.Function?.Arguments);
                    }
                }
            }
            yield return new AnswerFinal(finish, usage?.PromptTokens ?? 0, usage?.CompletionTokens ?? 0, 0, model);
        }
    }

    /// <summary>The request body: the chat, streaming with usage, and the checked response format and tools.</summary>
    internal static byte[] Body(ChatPrompt prompt)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", prompt.Model);
            json.WriteStartArray("messages");
            foreach (var message in prompt.Messages)
            {
                json.WriteStartObject();
                json.WriteString("role", message.Role);
                json.WriteString("content", message.Content);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteBoolean("stream", true);
            json.WriteStartObject("stream_options");
            json.WriteBoolean("include_usage", true);
            json.WriteEndObject();
            if (prompt.Temperature is { } temperature)
            {
                json.WriteNumber("temperature", temperature);
            }
            if (prompt.MaxTokens is { } maxTokens and > 0)
            {
                json.WriteNumber("max_tokens", maxTokens);
            }
            if (prompt.Structured is { } structured)
            {
                WriteStructured(json, structured);
            }
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteStructured(Utf8JsonWriter json, StructuredOutput structured)
    {
        switch (structured.Format)
        {
            case ResponseFormatKind.JsonObject:
                json.WriteStartObject("response_format");
                json.WriteString("type", "json_object");
                json.WriteEndObject();
                break;
            case ResponseFormatKind.JsonSchema:
                json.WriteStartObject("response_format");
                json.WriteString("type", "json_schema");
                json.WriteStartObject("json_schema");
                json.WriteString("name", structured.SchemaName);
                json.WriteBoolean("strict", structured.Strict);
                json.WritePropertyName("schema");
                // Checked to be a JSON object by StructuredOutput.From; the writer checks it again.
                json.WriteRawValue(structured.Schema!);
                json.WriteEndObject();
                json.WriteEndObject();
                break;
        }
        if (structured.Tools is { } tools)
        {
            json.WritePropertyName("tools");
            json.WriteRawValue(tools);
            switch (structured.ToolChoice)
            {
                case ToolChoiceKind.Named:
                    json.WriteStartObject("tool_choice");
                    json.WriteString("type", "function");
                    json.WriteStartObject("function");
                    json.WriteString("name", structured.ToolName);
                    json.WriteEndObject();
                    json.WriteEndObject();
                    break;
                default:
                    json.WriteString("tool_choice", structured.ToolChoice.ToString().ToLowerInvariant());
                    break;
            }
        }
    }

    private static async Task<ChatError> ErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        GatewayErrorBody? body = null;
        try
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (bytes.Length is > 0 and <= MaxErrorBody)
            {
                body = JsonSerializer.Deserialize(bytes, RestChatJsonContext.Default.ErrorEnvelopeJson)?.Error?.ToBody();
            }
        }
        catch (JsonException)
        {
            // Not an OpenAI error body (a proxy's page): the status alone says what happened.
        }
        return ChatErrors.FromHttp(response.StatusCode, body, RetryAfter(response));
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues("retry-after-ms", out var ms)
            && double.TryParse(ms.FirstOrDefault(), NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
        {
            return TimeSpan.FromMilliseconds(milliseconds);
        }
        return response.Headers.RetryAfter?.Delta;
    }

    public void Dispose() => _http.Dispose();
}

internal sealed class ChunkJson
{
    public string? Model { get; set; }
    public List<ChoiceJson>? Choices { get; set; }
    public UsageJson? Usage { get; set; }
    public ErrorJson? Error { get; set; }
}

internal sealed class ChoiceJson
{
    public int Index { get; set; }
    public DeltaJson? Delta { get; set; }
    public string? FinishReason { get; set; }
}

internal sealed class DeltaJson
{
    public string? Content { get; set; }
    public List<ToolCallDeltaJson>? ToolCalls { get; set; }
}

internal sealed class ToolCallDeltaJson
{
    public int Index { get; set; }
    public string? Id { get; set; }
    public FunctionDeltaJson? Function { get; set; }
}

internal sealed class FunctionDeltaJson
{
    public string? Name { get; set; }
    public string? Arguments { get; set; }
}

internal sealed class UsageJson
{
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
}

internal sealed class ErrorEnvelopeJson
{
    public ErrorJson? Error { get; set; }
}

internal sealed class ErrorJson
{
    public string? Message { get; set; }
    public string? Type { get; set; }
    public string? Param { get; set; }
    public string? Code { get; set; }

    public GatewayErrorBody ToBody() => new(Message, Type, Param, Code);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ChunkJson))]
[JsonSerializable(typeof(ErrorEnvelopeJson))]
internal sealed partial class RestChatJsonContext : JsonSerializerContext;
