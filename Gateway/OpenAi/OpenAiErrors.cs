using System.Globalization;
using Gateway.Errors;

namespace Gateway.OpenAi;

/// <summary>Gateway errors in OpenAI's shape and status codes.</summary>
internal static class OpenAiErrors
{
    public static int StatusCode(GatewayError error) => error switch
    {
        GatewayError.InvalidRequest or GatewayError.ContextLengthExceeded or GatewayError.Unsupported => StatusCodes.Status400BadRequest,
        GatewayError.Unauthenticated => StatusCodes.Status401Unauthorized,
        GatewayError.PermissionDenied => StatusCodes.Status403Forbidden,
        GatewayError.ModelNotFound => StatusCodes.Status404NotFound,
        GatewayError.PayloadTooLarge => StatusCodes.Status413PayloadTooLarge,
        GatewayError.RateLimited => StatusCodes.Status429TooManyRequests,
        GatewayError.BackendUnavailable or GatewayError.ShuttingDown => StatusCodes.Status503ServiceUnavailable,
        GatewayError.FirstTokenTimeout or GatewayError.IdleTimeout => StatusCodes.Status504GatewayTimeout,
        GatewayError.BackendFailed => StatusCodes.Status502BadGateway,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static ErrorResponse ToBody(GatewayException exception) => new()
    {
        Error = new ErrorBody
        {
            Message = exception.Message,
            Type = exception.Type ?? exception.Error switch
            {
                GatewayError.InvalidRequest or GatewayError.ContextLengthExceeded or GatewayError.Unsupported
                    or GatewayError.Unauthenticated or GatewayError.ModelNotFound or GatewayError.PayloadTooLarge => "invalid_request_error",
                GatewayError.PermissionDenied => "permission_error",
                GatewayError.RateLimited => "rate_limit_error",
                GatewayError.BackendUnavailable => "service_unavailable_error",
                GatewayError.ShuttingDown => "server_shutting_down",
                GatewayError.FirstTokenTimeout or GatewayError.IdleTimeout => "timeout_error",
                _ => "server_error",
            },
            Param = exception.Param,
            Code = exception.Code,
        },
    };

    /// <summary>Writes the error as the whole response (nothing has been sent yet).</summary>
    public static async Task WriteAsync(HttpContext context, GatewayException exception)
    {
        var response = context.Response;
        response.StatusCode = StatusCode(exception.Error);
        if (exception.RetryAfter is { } retryAfter)
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
            response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            response.Headers["retry-after-ms"] = ((long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }
        if (exception.Error == GatewayError.Unauthenticated)
        {
            response.Headers.WWWAuthenticate = "Bearer";
        }
        await response.WriteAsJsonAsync(ToBody(exception), OpenAiJsonContext.Default.ErrorResponse, contentType: "application/json", context.RequestAborted).ConfigureAwait(false);
    }
}
