namespace Gateway.Errors;

/// <summary>What went wrong, independent of the face that reports it.</summary>
public enum GatewayError
{
    InvalidRequest,
    ContextLengthExceeded,
    Unsupported,
    Unauthenticated,
    PermissionDenied,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    BackendUnavailable,
    FirstTokenTimeout,
    IdleTimeout,
    BackendFailed,
    /// <summary>The gateway is draining: refused in the refusal phase, or cut at the drain deadline.</summary>
    ShuttingDown,
    Internal,
}

/// <summary>A failure with a message fit for the client (never prompt text).</summary>
public sealed class GatewayException(GatewayError error, string message, string? param = null, string? code = null, TimeSpan? retryAfter = null, Exception? inner = null, string? type = null)
    : Exception(message, inner)
{
    public GatewayError Error { get; } = error;

    /// <summary>The request parameter at fault, as the client named it.</summary>
    public string? Param { get; } = param;

    /// <summary>A machine-readable code (OpenAI's <c>code</c>).</summary>
    public string? Code { get; } = code;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>Overrides OpenAI's error <c>type</c> (e.g. <c>tokens</c> / <c>requests</c> for rate limits).</summary>
    public string? Type { get; } = type;

    /// <summary>The outcome label for metrics.</summary>
    public string Outcome => Error switch
    {
        GatewayError.InvalidRequest or GatewayError.ContextLengthExceeded or GatewayError.Unsupported or GatewayError.PayloadTooLarge => "invalid_request",
        GatewayError.Unauthenticated => "unauthenticated",
        GatewayError.PermissionDenied => "permission_denied",
        GatewayError.ModelNotFound => "model_not_found",
        GatewayError.RateLimited => "rate_limited",
        GatewayError.BackendUnavailable => "backend_unavailable",
        GatewayError.FirstTokenTimeout or GatewayError.IdleTimeout => "timeout",
        GatewayError.BackendFailed => "backend_error",
        GatewayError.ShuttingDown => "shutdown",
        _ => "error",
    };
}
