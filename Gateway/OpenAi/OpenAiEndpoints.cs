using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Gateway.Auth;
using Gateway.Generation;
using Gateway.Hosting;
using Gateway.Models;
using Gateway.Routing;
using Microsoft.AspNetCore.Http.Features;
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
    IHostApplicationLifetime lifetime,
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
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var cancellationToken = linked.Token;
        GenerationStream stream;
        bool streaming, includeUsage;
        try
        {
            var caller = Authenticate(context);
            GenerationRequest request;
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
            stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogUnexpected(logger, ex, context.Request.Path);
            await OpenAiErrors.WriteAsync(context, Internal(ex)).ConfigureAwait(false);
            return;
        }

        await using (stream.ConfigureAwait(false))
        {
            try
            {
                if (streaming)
                {
                    await StreamAsync(context, stream, chat, includeUsage, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await CompleteAsync(context, stream, chat, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException && !context.Response.HasStarted)
            {
                LogUnexpected(logger, ex, context.Request.Path);
                await OpenAiErrors.WriteAsync(context, Internal(ex)).ConfigureAwait(false);
            }
        }
    }

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
            if (!catalog.TryGet(id, out var model))
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

    private static async Task CompleteAsync(HttpContext context, GenerationStream stream, bool chat, CancellationToken cancellationToken)
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
                Choices = [new ChatChoice { Index = 0, Message = new AssistantMessage { Content = text.ToString() }, FinishReason = finish }],
                Usage = usage,
            };
            await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.ChatCompletion, cancellationToken: cancellationToken).ConfigureAwait(false);
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
            await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.TextCompletion, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task StreamAsync(HttpContext context, GenerationStream stream, bool chat, bool includeUsage, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.Headers["x-request-id"] = stream.Id;
        response.Headers[OpenAiEndpoints.OverheadHeader] = Milliseconds(stream.Overhead);
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var sse = new SseWriter(response.BodyWriter);
        // One chunk object per stream, mutated per event: no per-token object graphs.
        var chatDelta = new ChunkDelta();
        var chatChoice = new ChunkChoice { Index = 0, Delta = chatDelta };
        var chatChunk = new ChatCompletionChunk { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [chatChoice] };
        var textChoice = new TextChoice { Index = 0, Text = "" };
        var textChunk = new TextCompletion { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [textChoice] };
        try
        {
            await response.StartAsync(cancellationToken).ConfigureAwait(false);
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
                    await sse.WriteDeltaAsync(frame, delta.Chars.Span, cancellationToken).ConfigureAwait(false);
                }
                else if (chat)
                {
                    chatDelta.Content = delta.Text;
                    await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    textChoice.Text = delta.Text;
                    await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken: cancellationToken).ConfigureAwait(false);
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
                await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken: cancellationToken).ConfigureAwait(false);
                if (includeUsage)
                {
                    textChunk.Choices = [];
                    textChunk.Usage = ToUsage(stream);
                    await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken: cancellationToken).ConfigureAwait(false);
                }
            }
            await sse.WriteDoneAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            // The 200 is gone: the error is the final event (no [DONE] after it), as vLLM and the
            // OpenAI SDKs expect; the Node and Python SDKs raise it. The response then ends normally:
            // aborting instead would make TCP drop the unread event on the client.
            await sse.WriteAsync(OpenAiErrors.ToBody(ex), OpenAiJsonContext.Default.ErrorResponse, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not GatewayException && response.HasStarted)
        {
            await sse.WriteAsync(OpenAiErrors.ToBody(Internal(ex)), OpenAiJsonContext.Default.ErrorResponse, cancellationToken).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; disposing the stream cancels Triton.
        }
    }

    private static Usage ToUsage(GenerationStream stream)
    {
        var usage = stream.Usage;
        return new Usage { PromptTokens = usage.PromptTokens, CompletionTokens = usage.CompletionTokens, TotalTokens = usage.TotalTokens };
    }

    private static string FinishReasonText(FinishReason? reason) => reason == Generation.FinishReason.Length ? "length" : "stop";
}
