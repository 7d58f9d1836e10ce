using System.Globalization;
using Gateway.Auth;
using Gateway.Errors;
using Gateway.Generation;
using Gateway.Lifecycle;
using Gateway.Models;
using Gateway.Routing;
using Grpc.Core;
using Llm.Gateway.V1;
using Microsoft.Extensions.Options;

namespace Gateway.Grpc;

/// <summary>
/// The gRPC face (<c>llm.gateway.v1.LlmGateway</c>, h2c on Gateway:GrpcPort). Same pipeline as the
/// REST face; auth from <c>authorization: Bearer</c> metadata; failures are status codes with
/// messages; the call's deadline and cancellation cancel the Triton call.
/// </summary>
internal sealed class LlmGatewayService(
    IApiKeyAuthenticator authenticator,
    IGenerationService generation,
    IModelCatalog catalog,
    IOptions<RoutingOptions> routing,
    GatewayDrain drain) : LlmGateway.LlmGatewayBase
{
    public override Task StreamChat(ChatRequest request, IServerStreamWriter<GenerateEvent> responseStream, ServerCallContext context)
    {
        return RunAsync(() => GrpcRequestMapper.MapChat(request), chat: true, responseStream, context);
    }

    public override Task StreamCompletion(CompletionRequest request, IServerStreamWriter<GenerateEvent> responseStream, ServerCallContext context)
    {
        return RunAsync(() => GrpcRequestMapper.MapCompletion(request), chat: false, responseStream, context);
    }

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var caller = Authenticate(context);
        var response = new ListModelsResponse();
        foreach (var model in catalog.Models)
        {
            if (caller.MayUse(model.Id))
            {
                response.Models.Add(new ModelInfo
                {
                    Id = model.Id,
                    OwnedBy = model.Options.OwnedBy,
                    ContextWindow = (uint)model.Options.ContextWindow,
                    MaxOutputTokens = (uint)model.Options.MaxOutputTokens,
                });
            }
        }
        return Task.FromResult(response);
    }

    private async Task RunAsync(Func<GenerationRequest> map, bool chat, IServerStreamWriter<GenerateEvent> responseStream, ServerCallContext context)
    {
        // The client's cancel or deadline, or the drain deadline; never the host's stopping signal itself.
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, drain.Deadline);
        var cancellationToken = linked.Token;
        GenerationStream? stream = null;
        try
        {
            var caller = Authenticate(context);
            var request = PriorityHeader.Apply(map(), context.RequestHeaders.GetValue(PriorityHeader.Name), routing.Value.LowPriorityLevel);
            request = TenantHeader.Apply(request, routing.Value, name => context.RequestHeaders.GetValue(name.ToLowerInvariant()));
            stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
            await WriteEventsAsync(stream, chat, responseStream, cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            throw ToRpcException(ex);
        }
        catch (OperationCanceledException) when (drain.Deadline.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // Cut at the drain deadline: UNAVAILABLE tells the client to retry elsewhere.
            var shutdown = drain.ShuttingDown(refused: false);
            stream?.EndedWith(shutdown);
            throw ToRpcException(shutdown);
        }
        finally
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task WriteEventsAsync(GenerationStream stream, bool chat, IServerStreamWriter<GenerateEvent> responseStream, CancellationToken cancellationToken)
    {
        if (chat)
        {
            await responseStream.WriteAsync(new GenerateEvent { Delta = new Delta { Role = "assistant" } }, cancellationToken).ConfigureAwait(false);
        }
        // One event per stream, mutated per delta: WriteAsync has serialised it by the time it completes.
        var deltaMessage = new Delta();
        var deltaEvent = new GenerateEvent { Delta = deltaMessage };
        await foreach (var delta in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            deltaMessage.Text = delta.Text;
            deltaMessage.TokenCount = (uint)delta.TokenCount;
            await responseStream.WriteAsync(deltaEvent, cancellationToken).ConfigureAwait(false);
        }
        var usage = stream.Usage;
        await responseStream.WriteAsync(new GenerateEvent
        {
            Final = new Final
            {
                FinishReason = stream.FinishReason == Triton.Contracts.FinishReason.Length ? Llm.Gateway.V1.FinishReason.Length : Llm.Gateway.V1.FinishReason.Stop,
                Usage = new Usage
                {
                    PromptTokens = (uint)usage.PromptTokens,
                    CompletionTokens = (uint)usage.CompletionTokens,
                    TotalTokens = (uint)usage.TotalTokens,
                },
                Id = stream.Id,
                Model = stream.Model,
                TimeToFirstTokenMs = stream.TimeToFirstToken.TotalMilliseconds,
            },
        }, cancellationToken).ConfigureAwait(false);
    }

    private Caller Authenticate(ServerCallContext context) =>
        authenticator.Authenticate(context.RequestHeaders.GetValue("authorization"))
        ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "Missing or incorrect API key: send metadata 'authorization: Bearer <key>'."));

    internal static RpcException ToRpcException(GatewayException exception)
    {
        var code = exception.Error switch
        {
            GatewayError.InvalidRequest or GatewayError.ContextLengthExceeded or GatewayError.Unsupported => StatusCode.InvalidArgument,
            GatewayError.Unauthenticated => StatusCode.Unauthenticated,
            GatewayError.PermissionDenied => StatusCode.PermissionDenied,
            GatewayError.ModelNotFound => StatusCode.NotFound,
            GatewayError.PayloadTooLarge or GatewayError.RateLimited => StatusCode.ResourceExhausted,
            GatewayError.BackendUnavailable or GatewayError.BackendFailed or GatewayError.ShuttingDown => StatusCode.Unavailable,
            GatewayError.FirstTokenTimeout or GatewayError.IdleTimeout => StatusCode.DeadlineExceeded,
            _ => StatusCode.Internal,
        };
        var trailers = new Metadata();
        if (exception.Code is { } errorCode)
        {
            trailers.Add("error-code", errorCode);
        }
        if (exception.Param is { } param)
        {
            trailers.Add("error-param", param);
        }
        if (exception.RetryAfter is { } retryAfter)
        {
            trailers.Add("retry-after", Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
        }
        return new RpcException(new Status(code, exception.Message), trailers);
    }
}
