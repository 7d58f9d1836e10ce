using System.Globalization;
using System.Text.RegularExpressions;
using Grpc.Core;

namespace Web.Chat;

/// <summary>What kind of failure the user sees.</summary>
public enum ChatErrorKind
{
    RateLimited,
    NoBackend,
    ContextTooLong,
    InvalidRequest,
    ModelNotFound,
    NotAllowed,
    BadApiKey,
    Timeout,
    Unexpected,
}

/// <summary>A gateway failure in words a person understands.</summary>
public sealed record ChatError(ChatErrorKind Kind, string Title, string Detail, TimeSpan? RetryAfter = null, string? GatewayMessage = null);

/// <summary>A chat failure carrying its <see cref="ChatError"/>.</summary>
public sealed class ChatException(ChatError error, Exception? inner = null) : Exception(error.Title, inner)
{
    public ChatError Error { get; } = error;
}

/// <summary>Turns gRPC status codes and the gateway's trailers into <see cref="ChatError"/>s.</summary>
public static partial class ChatErrors
{
    /// <summary>Trailer the gateway sends with rate-limit errors: whole seconds to wait.</summary>
    public const string RetryAfterTrailer = "retry-after";

    /// <summary>Trailer with a machine-readable error code, e.g. <c>context_length_exceeded</c>.</summary>
    public const string ErrorCodeTrailer = "error-code";

    public static ChatError FromRpc(RpcException exception)
    {
        var message = exception.Status.Detail;
        var code = exception.Trailers.GetValue(ErrorCodeTrailer);
        switch (exception.StatusCode)
        {
            case StatusCode.ResourceExhausted:
                var retryAfter = RetryAfter(exception.Trailers, message);
                if (retryAfter is { } wait)
                {
                    return RateLimited(wait, message);
                }
                return TooLarge(message);
            case StatusCode.Unavailable when exception.Status.DebugException is HttpRequestException:
                return GatewayUnreachable(message);
            case StatusCode.Unavailable:
                return NoModelServer(message);
            case StatusCode.InvalidArgument when code == "context_length_exceeded" || LooksLikeContextLength(message):
                return ContextTooLong(message);
            case StatusCode.InvalidArgument:
                return new ChatError(ChatErrorKind.InvalidRequest, "The gateway rejected the request",
                    "Check the settings and try again.", null, message);
            case StatusCode.NotFound:
                return ModelNotFound(message);
            case StatusCode.PermissionDenied:
                return NotAllowed(message);
            case StatusCode.Unauthenticated:
                return BadApiKey(message);
            case StatusCode.DeadlineExceeded:
                return TimedOut(message);
            default:
                return new ChatError(ChatErrorKind.Unexpected, "Something went wrong",
                    $"The gateway answered with status {exception.StatusCode}. Try again.", null, message);
        }
    }

    // One wording per failure, whichever face (gRPC status or REST status) reported it.
    private static ChatError RateLimited(TimeSpan wait, string? message) => new(ChatErrorKind.RateLimited, "Too many requests",
        $"The gateway's rate limit for this app was reached. Try again in {Seconds(wait)}. Your message is still in the box.", wait, message);

    private static ChatError TooLarge(string? message) => new(ChatErrorKind.InvalidRequest, "The request is too large",
        "Shorten the message or start a new chat.", null, message);

    private static ChatError GatewayUnreachable(string? message) => new(ChatErrorKind.NoBackend, "Cannot reach the gateway",
        "The web app could not connect to the gateway. Try again in a moment; your message is still in the box.", null, message);

    private static ChatError NoModelServer(string? message) => new(ChatErrorKind.NoBackend, "No model server is available",
        "The gateway could not reach a model server right now. Try again in a moment; your message is still in the box.", null, message);

    private static ChatError ContextTooLong(string? message) => new(ChatErrorKind.ContextTooLong, "The conversation is too long for this model",
        "The prompt plus the answer would not fit in the model's context window. Lower Max tokens, shorten the message, or start a new chat.", null, message);

    private static ChatError ModelNotFound(string? message) => new(ChatErrorKind.ModelNotFound, "That model is not available",
        "Pick another model from the list.", null, message);

    private static ChatError NotAllowed(string? message) => new(ChatErrorKind.NotAllowed, "This app may not use that model",
        "Pick another model from the list.", null, message);

    private static ChatError BadApiKey(string? message) => new(ChatErrorKind.BadApiKey, "The gateway rejected this app's API key",
        "The web app's key (AppHost parameter 'web-api-key') is missing or not registered with the gateway.", null, message);

    private static ChatError TimedOut(string? message) => new(ChatErrorKind.Timeout, "The model took too long to answer",
        "The model server stopped sending tokens. Try again; your message is still in the box.", null, message);

    private static TimeSpan? RetryAfter(Metadata trailers, string message)
    {
        if (trailers.GetValue(RetryAfterTrailer) is { } header
            && double.TryParse(header, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
        {
            return TimeSpan.FromSeconds(seconds);
        }
        var match = RetryInMessage().Match(message);
        return match.Success && double.TryParse(match.Groups["s"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)
            ? TimeSpan.FromSeconds(parsed)
            : null;
    }

    private static bool LooksLikeContextLength(string message) =>
        message.Contains("context", StringComparison.OrdinalIgnoreCase)
        && (message.Contains("length", StringComparison.OrdinalIgnoreCase) || message.Contains("window", StringComparison.OrdinalIgnoreCase));

    internal static string Seconds(TimeSpan wait)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
        return seconds == 1 ? "1 second" : $"{seconds.ToString(CultureInfo.InvariantCulture)} seconds";
    }

    [GeneratedRegex(@"retry (?:after|in) (?<s>\d+(?:\.\d+)?) ?s", RegexOptions.IgnoreCase)]
    private static partial Regex RetryInMessage();
}
