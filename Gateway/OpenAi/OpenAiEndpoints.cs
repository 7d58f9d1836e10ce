using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Gateway.Auth;
using Gateway.Generation;
using Gateway.Hosting;
using Gateway.Lifecycle;
using Gateway.Models;
using Gateway.Routing;
using Microsoft.Extensions.Options;

namespace Gateway.OpenAi;

public static class OpenAiEndpoints
{
    /// <summary>The gateway's own time for a request, not spent waiting on Triton (for SSE: up to the first token).</summary>
    public const string OverheadHeader = "x-gateway-overhead-duration-ms";

    /// <summary>Maps <c>/v1/chat/completions</c>, <c>/v1/completions</c>, <c>/v1/models</c> and <c>/v1/models/{id}</c>.</summary>
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1").WithTags("OpenAI");
        v1.MapPost("/chat/completions", (HttpContext context, OpenAiHandler handler) => handler.GenerateAsync(context, chat: true))
            .WithName("CreateChatCompletion");
        v1.MapPost("/completions", (HttpContext context, OpenAiHandler handler) => handler.GenerateAsync(context, chat: false))
            .WithName("CreateCompletion");
        v1.MapGet("/models", (HttpContext context, OpenAiHandler handler) => handler.ListModelsAsync(context))
            .WithName("ListModels");
        v1.MapGet("/models/{**id}", (HttpContext context, string id, OpenAiHandler handler) => handler.GetModelAsync(context, id))
            .WithName("RetrieveModel");
        return endpoints;
    }
}

/// <summary>The REST + SSE face: parses, authenticates, runs the shared pipeline, writes OpenAI shapes.</summary>
internal sealed partial class OpenAiHandler(
    IApiKeyAuthenticator authenticator,
    IGenerationService generation,
    IModelCatalog catalog,
    IOptions<GatewayOptions> options,
    IOptions<RoutingOptions> routing,
    IOptions<SseOptions> sseOptions,
    GatewayDrain drain,
    TimeProvider time,
    ILogger<OpenAiHandler> logger)
{
    private static GatewayException Internal(Exception inner) =>
        new(GatewayError.Internal, "The gateway failed to process the request.", null, "internal_error", inner: inner);

    [LoggerMessage(Level = LogLevel.Error, Message = "Unexpected failure on {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string path);

    private readonly long _modelsCreated = time.GetUtcNow().ToUnixTimeSeconds();

    public async Task GenerateAsync(HttpContext context, bool chat)
    {
        // The client's hang-up or the drain deadline; never the host's stopping signal itself.
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.Deadline);
        var cancellationToken = linked.Token;
        GenerationRequest request;
        Caller caller;
        bool streaming, includeUsage;
        try
        {
            caller = Authenticate(context);
            if (chat)
            {
                var body = await ReadBodyAsync(context, OpenAiJsonContext.Default.ChatCompletionRequest, cancellationToken).ConfigureAwait(false);
                request = OpenAiRequestMapper.MapChat(body);
                (streaming, includeUsage) = (body.Stream == true, body.StreamOptions?.IncludeUsage == true);
            }
            else
            {
                var body = await ReadBodyAsync(context, OpenAiJsonContext.Default.CompletionRequest, cancellationToken).ConfigureAwait(false);
                request = OpenAiRequestMapper.MapCompletion(body);
                (streaming, includeUsage) = (body.Stream == true, body.StreamOptions?.IncludeUsage == true);
            }
            request = PriorityHeader.Apply(request, context.Request.Headers[PriorityHeader.Name], routing.Value.LowPriorityLevel);
            request = TenantHeader.Apply(request, routing.Value, name => context.Request.Headers[name].FirstOrDefault());
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await EndInterruptedAsync(context, null).ConfigureAwait(false);
            return;
        }

        if (streaming)
        {
            await StreamAsync(context, request, caller, chat, includeUsage, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await CompleteAsync(context, request, caller, chat, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The drain deadline's error when that is what stopped the request; null when the client hung
    /// up (its own token fired first).
    /// </summary>
    private GatewayException? ShutdownCause(HttpContext context) =>
        drain.Deadline.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested ? drain.ShuttingDown(refused: false) : null;

    /// <summary>
    /// A unary request stopped by cancellation: at the drain deadline a 503 the client can retry;
    /// after a client hang-up nobody reads the answer, so it is logged and closed as 499, never an empty 200.
    /// </summary>
    private async Task EndInterruptedAsync(HttpContext context, GenerationStream? stream)
    {
        if (ShutdownCause(context) is { } shutdown)
        {
            stream?.EndedWith(shutdown);
            await OpenAiErrors.WriteAsync(context, shutdown).ConfigureAwait(false);
            return;
        }
        LogClientCancelled(logger, context.Request.Path, stream?.Id, stream?.CompletionTokens ?? 0);
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = StatusCodeClientClosedRequest;
        }
    }

    /// <summary>nginx's "client closed request", the status logs and metrics show for a hang-up.</summary>
    private const int StatusCodeClientClosedRequest = 499;

    [LoggerMessage(Level = LogLevel.Information, Message = "Client closed the request on {Path} ({RequestId}) after {CompletionTokens} completion tokens: cancelled")]
    private static partial void LogClientCancelled(ILogger logger, string path, string? requestId, int completionTokens);

    public async Task ListModelsAsync(HttpContext context)
    {
        Caller caller;
        try
        {
            caller = Authenticate(context);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        var data = new List<ModelCard>();
        foreach (var model in catalog.Models)
        {
            if (caller.MayUse(model.Id))
            {
                data.Add(ToCard(model));
            }
        }
        await context.Response.WriteAsJsonAsync(new ModelList { Data = data }, OpenAiJsonContext.Default.ModelList, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task GetModelAsync(HttpContext context, string id)
    {
        try
        {
            var caller = Authenticate(context);
            if (!catalog.TryGet(id, out var model) || (caller.IsManaged && !caller.MayUse(id)))
            {
                throw new GatewayException(GatewayError.ModelNotFound, $"The model `{id}` does not exist.", "model", "model_not_found");
            }
            if (!caller.MayUse(id))
            {
                throw new GatewayException(GatewayError.PermissionDenied, $"The API key may not use the model `{id}`.", "model", "model_not_allowed");
            }
            await context.Response.WriteAsJsonAsync(ToCard(model), OpenAiJsonContext.Default.ModelCard, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
        }
    }

    private ModelCard ToCard(CatalogModel model) => new()
    {
        Id = model.Id,
        Created = _modelsCreated,
        OwnedBy = model.Options.OwnedBy,
        ContextWindow = model.Options.ContextWindow,
        MaxOutputTokens = model.Options.MaxOutputTokens,
    };

    private Caller Authenticate(HttpContext context) =>
        authenticator.Authenticate(context.Request.Headers.Authorization.ToString()) ?? throw new GatewayException(
            GatewayError.Unauthenticated,
            context.Request.Headers.Authorization.Count == 0
                ? "You did not provide an API key. Send it as the header Authorization: Bearer YOUR_KEY."
                : "Incorrect API key provided.",
            null,
            "invalid_api_key");

    private async Task<T> ReadBodyAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) where T : class
    {
        var limit = options.Value.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            throw TooLarge(limit);
        }
        JsonDocument document;
        try
        {
            // Parse first, then bind: a syntax error and a wrongly typed field are different 400s.
            document = await JsonDocument.ParseAsync(context.Request.Body, default, cancellationToken).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(limit);
        }
        catch (JsonException)
        {
            throw new GatewayException(GatewayError.InvalidRequest,
                "We could not parse the JSON body of your request. The body must be a valid JSON object.", null, "invalid_json");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new GatewayException(GatewayError.InvalidRequest, "The request body must be a JSON object.", null, "invalid_json");
            }
            try
            {
                return document.Deserialize(typeInfo)
                    ?? throw new GatewayException(GatewayError.InvalidRequest, "The request body must be a JSON object.", null, "invalid_json");
            }
            catch (JsonException ex)
            {
                var param = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
                throw new GatewayException(GatewayError.InvalidRequest,
                    param is null ? "The request body does not match the expected shape." : $"Invalid type for '{param}'.",
                    param, "invalid_type");
            }
        }
    }

    private static GatewayException TooLarge(long limit) =>
        new(GatewayError.PayloadTooLarge, $"The request body is larger than the limit of {limit} bytes.", null, "request_too_large");

    private static string Milliseconds(TimeSpan duration) => duration.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture);

    private async Task CompleteAsync(HttpContext context, GenerationRequest request, Caller caller, bool chat, CancellationToken cancellationToken)
    {
        GenerationStream stream;
        try
        {
            stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await EndInterruptedAsync(context, null).ConfigureAwait(false);
            return;
        }
        catch (Exception ex)
        {
            LogUnexpected(logger, ex, context.Request.Path);
            await OpenAiErrors.WriteAsync(context, Internal(ex)).ConfigureAwait(false);
            return;
        }
        await using (stream.ConfigureAwait(false))
        {
            var text = new StringBuilder();
            try
            {
                await foreach (var delta in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    text.Append(delta.Chars.Span);
                }
            }
            catch (GatewayException ex)
            {
                // Nothing was sent yet: a proper status.
                await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await EndInterruptedAsync(context, stream).ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                LogUnexpected(logger, ex, context.Request.Path);
                var failure = Internal(ex);
                stream.EndedWith(failure);
                await OpenAiErrors.WriteAsync(context, failure).ConfigureAwait(false);
                return;
            }
            var usage = ToUsage(stream);
            var finish = FinishReasonText(stream.FinishReason);
            var response = context.Response;
            response.Headers["x-request-id"] = stream.Id;
            response.Headers[OpenAiEndpoints.OverheadHeader] = Milliseconds(stream.Overhead);
            if (chat)
            {
                var body = new ChatCompletion
                {
                    Id = stream.Id,
                    Created = stream.Created,
                    Model = stream.Model,
                    Choices = [ChatAnswer(request, text.ToString(), stream)],
                    Usage = usage,
                };
                await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.ChatCompletion, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            else
            {
                var body = new TextCompletion
                {
                    Id = stream.Id,
                    Created = stream.Created,
                    Model = stream.Model,
                    Choices = [new TextChoice { Index = 0, Text = text.ToString(), FinishReason = finish }],
                    Usage = usage,
                };
                await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.TextCompletion, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            // The answer is complete before the stream's bookkeeping (Triton's close, quota, metrics) runs.
            await response.CompleteAsync().ConfigureAwait(false);
        }
    }

    private async Task StreamAsync(HttpContext context, GenerationRequest request, Caller caller, bool chat, bool includeUsage, CancellationToken cancellationToken)
    {
        // Keep-alive comments start now: a long prompt's wait for its first token is not silence to a proxy.
        var sse = new SseResponse(context, sseOptions.Value, time);
        await using (sse.ConfigureAwait(false))
        {
            GenerationStream stream;
            try
            {
                stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
            }
            catch (GatewayException ex)
            {
                await sse.FailAsync(ex).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                if (ShutdownCause(context) is { } shutdown)
                {
                    await sse.FailAsync(shutdown).ConfigureAwait(false);
                }
                else
                {
                    LogClientCancelled(logger, context.Request.Path, null, 0);
                }
                return;
            }
            catch (Exception ex)
            {
                LogUnexpected(logger, ex, context.Request.Path);
                await sse.FailAsync(Internal(ex)).ConfigureAwait(false);
                return;
            }
            await using (stream.ConfigureAwait(false))
            {
                try
                {
                    if (chat && ToolAnswers.HasToolCalling(request))
                    {
                        await WriteToolEventsAsync(sse, stream, request, includeUsage, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await WriteEventsAsync(sse, stream, chat, includeUsage, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (GatewayException ex)
                {
                    // The 200 is gone: the error is the final event, then [DONE] (as vLLM does); the
                    // SDKs raise it. The response then ends normally: an abort would make TCP drop it.
                    await sse.FailAsync(ex).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    if (ShutdownCause(context) is { } shutdown)
                    {
                        stream.EndedWith(shutdown);
                        await sse.FailAsync(shutdown).ConfigureAwait(false);
                    }
                    else
                    {
                        // The client went away; disposing the stream cancels Triton.
                        LogClientCancelled(logger, context.Request.Path, stream.Id, stream.CompletionTokens);
                    }
                }
                catch (Exception ex)
                {
                    // Never a reset connection: the client gets an error it can read.
                    LogUnexpected(logger, ex, context.Request.Path);
                    var failure = Internal(ex);
                    stream.EndedWith(failure);
                    await sse.FailAsync(failure).ConfigureAwait(false);
                }
            }
        }
    }

    private static async Task WriteEventsAsync(SseResponse sse, GenerationStream stream, bool chat, bool includeUsage, CancellationToken cancellationToken)
    {
        await sse.StartAsync(stream.Id, Milliseconds(stream.Overhead), cancellationToken).ConfigureAwait(false);
        // One chunk object per stream, mutated per event: no per-token object graphs.
        var chatDelta = new ChunkDelta();
        var chatChoice = new ChunkChoice { Index = 0, Delta = chatDelta };
        var chatChunk = new ChatCompletionChunk { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [chatChoice] };
        var textChoice = new TextChoice { Index = 0, Text = "" };
        var textChunk = new TextCompletion { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [textChoice] };
        if (chat)
        {
            chatDelta.Role = "assistant";
            chatDelta.Content = "";
            await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            chatDelta.Role = null;
        }
        // The chunk's bytes around its text, serialised once: per token only the text is written.
        DeltaFrame? frame;
        if (chat)
        {
            chatDelta.Content = SseWriter.TextPlaceholder;
            frame = SseWriter.CreateFrame(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk);
        }
        else
        {
            textChoice.Text = SseWriter.TextPlaceholder;
            frame = SseWriter.CreateFrame(textChunk, OpenAiJsonContext.Default.TextCompletion);
        }
        await foreach (var delta in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (delta.Chars.IsEmpty)
            {
                continue;
            }
            if (frame is not null)
            {
                await sse.WriteDeltaAsync(frame, delta.Chars, cancellationToken).ConfigureAwait(false);
            }
            else if (chat)
            {
                chatDelta.Content = delta.Text;
                await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                textChoice.Text = delta.Text;
                await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            }
        }
        var finish = FinishReasonText(stream.FinishReason);
        if (chat)
        {
            chatDelta.Content = null;
            chatChoice.FinishReason = finish;
            await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            if (includeUsage)
            {
                chatChunk.Choices = [];
                chatChunk.Usage = ToUsage(stream);
                await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            textChoice.Text = "";
            textChoice.FinishReason = finish;
            await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            if (includeUsage)
            {
                textChunk.Choices = [];
                textChunk.Usage = ToUsage(stream);
                await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            }
        }
        // [DONE] is flushed before the stream's bookkeeping (Triton's close, quota, metrics) runs at dispose.
        await sse.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    private static ChatChoice ChatAnswer(GenerationRequest request, string text, GenerationStream stream)
    {
        var (content, calls, finish) = ToolAnswers.Shape(request, text, stream.FinishReason, stream.ToolCallParser, stream.Id);
        return new ChatChoice { Index = 0, Message = new AssistantMessage { Content = content, ToolCalls = calls }, FinishReason = finish };
    }

    /// <summary>
    /// A chat stream with tools: content deltas as usual; tool calls as <c>delta.tool_calls</c>
    /// (the first piece of a call with its index, id, type and name, then its arguments). A named
    /// choice streams the constrained arguments token by token; a required choice and the model's
    /// own (auto) calls are read by the parser and sent as each call's JSON completes.
    /// </summary>
    private static async Task WriteToolEventsAsync(SseResponse sse, GenerationStream stream, GenerationRequest request, bool includeUsage, CancellationToken cancellationToken)
    {
        await sse.StartAsync(stream.Id, Milliseconds(stream.Overhead), cancellationToken).ConfigureAwait(false);
        var tools = request.Tools!;
        var delta = new ChunkDelta { Role = "assistant" };
        var choice = new ChunkChoice { Index = 0, Delta = delta };
        var chunk = new ChatCompletionChunk { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [choice] };
        var calls = 0;
        if (tools.Mode == Structured.ToolChoiceMode.Named)
        {
            delta.ToolCalls = [new ToolCallDeltaJson { Index = 0, Id = ToolAnswers.CallId(stream.Id, 0), Type = "function", Function = new FunctionDeltaJson { Name = tools.Function, Arguments = "" } }];
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            delta.Role = null;
            // Per token only the argument text is written into a frame serialised once.
            delta.ToolCalls = [new ToolCallDeltaJson { Index = 0, Function = new FunctionDeltaJson { Arguments = SseWriter.TextPlaceholder } }];
            var frame = SseWriter.CreateFrame(chunk, OpenAiJsonContext.Default.ChatCompletionChunk)
                ?? throw new InvalidOperationException("the tool-call delta frame has no single placeholder");
            await foreach (var piece in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!piece.Chars.IsEmpty)
                {
                    await sse.WriteDeltaAsync(frame, piece.Chars, cancellationToken).ConfigureAwait(false);
                }
            }
            delta.ToolCalls = null;
            choice.FinishReason = stream.FinishReason == FinishReason.Length ? "length" : "stop";
        }
        else
        {
            delta.Content = "";
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            delta.Role = null;
            var parser = tools.Mode == Structured.ToolChoiceMode.Required
                ? new Structured.ToolCallStreamParser(Structured.ToolCallParsers.Mistral, startInCalls: true)
                : new Structured.ToolCallStreamParser(stream.ToolCallParser);
            var events = new List<Structured.ToolCallEvent>();
            await foreach (var piece in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                parser.Push(piece.Chars.Span, events);
                calls = await WriteToolEventsAsync(sse, chunk, events, calls, cancellationToken).ConfigureAwait(false);
            }
            parser.Finish(events);
            calls = await WriteToolEventsAsync(sse, chunk, events, calls, cancellationToken).ConfigureAwait(false);
            delta.Content = null;
            delta.ToolCalls = null;
            choice.FinishReason = stream.FinishReason == FinishReason.Length ? "length" : calls > 0 ? "tool_calls" : "stop";
        }
        await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
        if (includeUsage)
        {
            chunk.Choices = [];
            chunk.Usage = ToUsage(stream);
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
        }
        await sse.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the parser's events: content as content deltas, each call as its header then its arguments.</summary>
    private static async Task<int> WriteToolEventsAsync(SseResponse sse, ChatCompletionChunk chunk, List<Structured.ToolCallEvent> events, int calls, CancellationToken cancellationToken)
    {
        var delta = chunk.Choices[0].Delta;
        foreach (var e in events)
        {
            if (e.Call is { } call)
            {
                delta.Content = null;
                delta.ToolCalls = [new ToolCallDeltaJson { Index = calls, Id = ToolAnswers.CallId(chunk.Id, calls), Type = "function", Function = new FunctionDeltaJson { Name = call.Name, Arguments = "" } }];
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
                delta.ToolCalls = [new ToolCallDeltaJson { Index = calls, Function = new FunctionDeltaJson { Arguments = call.Arguments } }];
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
                calls++;
            }
            else if (!string.IsNullOrEmpty(e.Content))
            {
                delta.ToolCalls = null;
                delta.Content = e.Content;
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
        }
        events.Clear();
        delta.ToolCalls = null;
        delta.Content = null;
        return calls;
    }

    private static Usage ToUsage(GenerationStream stream)
    {
        var usage = stream.Usage;
        return new Usage { PromptTokens = usage.PromptTokens, CompletionTokens = usage.CompletionTokens, TotalTokens = usage.TotalTokens };
    }

    private static string FinishReasonText(FinishReason? reason) => reason == Generation.FinishReason.Length ? "length" : "stop";
}
