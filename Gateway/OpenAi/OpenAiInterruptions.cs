using Gateway.Errors;
using Gateway.Generation;
using Gateway.Lifecycle;

namespace Gateway.OpenAi;

/// <summary>
/// How a completion that did not run to its end is closed, the same for the unary and the SSE
/// handler: the drain deadline's 503, a client hang-up's 499, an unexpected failure's 500.
/// </summary>
internal sealed partial class OpenAiInterruptions(GatewayDrain drain, ILogger<OpenAiInterruptions> logger)
{
    /// <summary>nginx's "client closed request", the status logs and metrics show for a hang-up.</summary>
    private const int StatusCodeClientClosedRequest = 499;

    /// <summary>
    /// The drain deadline's error when that is what stopped the request; null when the client hung
    /// up (its own token fired first).
    /// </summary>
    public GatewayException? ShutdownCause(HttpContext context) =>
        drain.Deadline.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested ? drain.ShuttingDown(refused: false) : null;

    /// <summary>
    /// A unary request stopped by cancellation: at the drain deadline a 503 the client can retry;
    /// after a client hang-up nobody reads the answer, so it is logged and closed as 499, never an empty 200.
    /// </summary>
    public async Task EndUnaryAsync(HttpContext context, GenerationStream? stream)
    {
        if (ShutdownCause(context) is { } shutdown)
        {
            stream?.EndedWith(shutdown);
            await OpenAiErrors.WriteAsync(context, shutdown).ConfigureAwait(false);
            return;
        }
        ClientCancelled(context, stream?.Id, stream?.CompletionTokens ?? 0);
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = StatusCodeClientClosedRequest;
        }
    }

    public void ClientCancelled(HttpContext context, string? requestId, int completionTokens) =>
        LogClientCancelled(logger, context.Request.Path, requestId, completionTokens);

    /// <summary>Logs an exception nothing expected and returns the 500 the client gets for it.</summary>
    public GatewayException Unexpected(HttpContext context, Exception exception)
    {
        LogUnexpected(logger, exception, context.Request.Path);
        return new(GatewayError.Internal, "The gateway failed to process the request.", null, "internal_error", inner: exception);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unexpected failure on {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Client closed the request on {Path} ({RequestId}) after {CompletionTokens} completion tokens: cancelled")]
    private static partial void LogClientCancelled(ILogger logger, string path, string? requestId, int completionTokens);
}
