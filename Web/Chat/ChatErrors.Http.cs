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
                return new ChatError(ChatErrorKind.ContextTooLong, "The conversation is too long for this model",
                    "The prompt plus the answer would not fit in the model's context window. Lower Max tokens, shorten the message, or start a new chat.", null, message);
            case HttpStatusCode.BadRequest:
                return new ChatError(ChatErrorKind.InvalidRequest, "The gateway rejected the request",
                    body?.Param is { Length: > 0 } param ? $"Check the settings ('{param}') and try again." : "Check the settings and try again.", null, message);
            case HttpStatusCode.RequestEntityTooLarge:
                return new ChatError(ChatErrorKind.InvalidRequest, "The request is too large",
                    "Shorten the message or start a new chat.", null, message);
            case HttpStatusCode.TooManyRequests:
                var wait = retryAfter ?? TimeSpan.FromSeconds(1);
                return new ChatError(ChatErrorKind.RateLimited, "Too many requests",
                    $"The gateway's rate limit for this app was reached. Try again in {Seconds(wait)}. Your message is still in the box.", wait, message);
            case HttpStatusCode.Unauthorized:
                return new ChatError(ChatErrorKind.BadApiKey, "The gateway rejected this app's API key",
                    "The web app's key (AppHost parameter 'web-api-key') is missing or not registered with the gateway.", null, message);
            case HttpStatusCode.Forbidden:
                return new ChatError(ChatErrorKind.NotAllowed, "This app may not use that model",
                    "Pick another model from the list.", null, message);
            case HttpStatusCode.NotFound:
                return new ChatError(ChatErrorKind.ModelNotFound, "That model is not available",
                    "Pick another model from the list.", null, message);
            case HttpStatusCode.ServiceUnavailable:
                return new ChatError(ChatErrorKind.NoBackend, "No model server is available",
                    "The gateway could not reach a model server right now. Try again in a moment; your message is still in the box.", null, message);
            case HttpStatusCode.GatewayTimeout:
                return new ChatError(ChatErrorKind.Timeout, "The model took too long to answer",
                    "The model server stopped sending tokens. Try again; your message is still in the box.", null, message);
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
    public static ChatError Unreachable(Exception exception) =>
        new(ChatErrorKind.NoBackend, "Cannot reach the gateway",
            "The web app could not connect to the gateway. Try again in a moment; your message is still in the box.", null, exception.Message);

    private static string Setting(string? param) => param switch
    {
        null or "" => "that setting",
        _ when param.StartsWith("response_format", StringComparison.Ordinal) => "Response format (structured output)",
        _ when param.StartsWith("tool", StringComparison.Ordinal) => "these tool settings ('" + param + "')",
        _ => "'" + param + "'",
    };
}
