using Gateway.Auth;
using Gateway.Errors;
using Gateway.Generation;
using Gateway.Hosting;
using Gateway.Lifecycle;
using Gateway.Routing;
using Microsoft.Extensions.Options;

namespace Gateway.OpenAi;

/// <summary>
/// <c>/v1/chat/completions</c> and <c>/v1/completions</c>: authenticates, reads and maps the body
/// into one <see cref="GenerationRequest"/>, then hands it to the unary or the SSE handler.
/// </summary>
internal sealed class OpenAiCompletionsHandler(
    IApiKeyAuthenticator authenticator,
    IOptions<GatewayOptions> options,
    IOptions<RoutingOptions> routing,
    GatewayDrain drain,
    OpenAiUnaryHandler unary,
    OpenAiStreamHandler stream,
    OpenAiInterruptions interruptions)
{
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
            caller = authenticator.AuthenticateRequest(context);
            var limit = options.Value.MaxRequestBodyBytes;
            if (chat)
            {
                var body = await OpenAiBodyReader.ReadAsync(context, OpenAiJsonContext.Default.ChatCompletionRequest, limit, cancellationToken).ConfigureAwait(false);
                request = OpenAiRequestMapper.MapChat(body);
                (streaming, includeUsage) = (body.Stream == true, body.StreamOptions?.IncludeUsage == true);
            }
            else
            {
                var body = await OpenAiBodyReader.ReadAsync(context, OpenAiJsonContext.Default.CompletionRequest, limit, cancellationToken).ConfigureAwait(false);
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
            await interruptions.EndUnaryAsync(context, null).ConfigureAwait(false);
            return;
        }

        if (streaming)
        {
            await stream.StreamAsync(context, request, caller, chat, includeUsage, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await unary.CompleteAsync(context, request, caller, chat, cancellationToken).ConfigureAwait(false);
        }
    }
}
