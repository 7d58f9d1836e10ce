using System.Net;

namespace Web.Chat;

/// <summary>An OpenAI error body (<c>{"error":{...}}</c>) as the gateway's REST face sends it.</summary>
public sealed record GatewayErrorBody(string? Message, string? Type, string? Param, string? Code);

public static partial class ChatErrors
{
    /// <summary>The gateway's REST face refused the request before streaming: its status and error body.</summary>
    public static ChatError FromHttp(HttpStatusCode status, GatewayErrorBody? body, TimeSpan? retryAfter)
    {
        var message = body?.Message is { Length: > 0 } text ? text : null;
        var code = body?.Code;
        switch (status)
        {
            case HttpStatusCode.BadRequest when code == "unsupported_parameter":
                return new ChatError(ChatErrorKind.InvalidRequest, "This model does not support " + Setting(body?.Param),
                    "Pick a model that supports it (the gateway's message names them), or set Response format back to Text and clear Tools in Settings.", null, message);
            case HttpStatusCode.BadRequest when code == "context_length_exceeded" || (message is not null && LooksLikeContextLength(message)):
                return ContextTooLong(message);
            case HttpStatusCode.BadRequest:
                return new ChatError(ChatErrorKind.InvalidRequest, "The gateway rejected the request",
                    body?.Param is { Length: > 0 } param ? $"Check the settings ('{param}') and try again." : "Check the settings and try again.", null, message);
            case HttpStatusCode.RequestEntityTooLarge:
                return TooLarge(message);
            case HttpStatusCode.TooManyRequests:
                var wait = retryAfter ?? TimeSpan.FromSeconds(1);
                return RateLimited(wait, message);
            case HttpStatusCode.Unauthorized:
                return BadApiKey(message);
            case HttpStatusCode.Forbidden:
                return NotAllowed(message);
            case HttpStatusCode.NotFound:
                return ModelNotFound(message);
            case HttpStatusCode.ServiceUnavailable:
                return NoModelServer(message);
            case HttpStatusCode.GatewayTimeout:
                return TimedOut(message);
            default:
                return new ChatError(ChatErrorKind.Unexpected, "Something went wrong",
                    $"The gateway answered with HTTP {(int)status}. Try again.", null, message);
        }
    }

    /// <summary>An error event inside a stream that had begun (OpenAI's <c>data: {"error":...}</c>).</summary>
    public static ChatError FromStreamError(GatewayErrorBody body) => body.Type switch
    {
        "timeout_error" => FromHttp(HttpStatusCode.GatewayTimeout, body, null),
        "service_unavailable_error" or "server_shutting_down" => FromHttp(HttpStatusCode.ServiceUnavailable, body, null),
        "rate_limit_error" => FromHttp(HttpStatusCode.TooManyRequests, body, null),
        "invalid_request_error" => FromHttp(HttpStatusCode.BadRequest, body, null),
        _ => new ChatError(ChatErrorKind.Unexpected, "The answer broke off",
            "The gateway ended the answer with an error. Try again.", null, body.Message),
    };

    /// <summary>The gateway could not be reached over HTTP.</summary>
    public static ChatError Unreachable(Exception exception) => GatewayUnreachable(exception.Message);

    private static string Setting(string? param) => param switch
    {
        null or "" => "that setting",
        _ when param.StartsWith("response_format", StringComparison.Ordinal) => "Response format (structured output)",
        _ when param.StartsWith("tool", StringComparison.Ordinal) => "these tool settings ('" + param + "')",
        _ => "'" + param + "'",
    };
}
