using Gateway.Auth;
using Gateway.Errors;

namespace Gateway.OpenAi;

internal static class OpenAiAuthentication
{
    /// <summary>The caller of the request's bearer key; a 401 in OpenAI's words when it has none or an unknown one.</summary>
    public static Caller AuthenticateRequest(this IApiKeyAuthenticator authenticator, HttpContext context) =>
        authenticator.Authenticate(context.Request.Headers.Authorization.ToString()) ?? throw new GatewayException(
            GatewayError.Unauthenticated,
            context.Request.Headers.Authorization.Count == 0
                ? "You did not provide an API key. Send it as the header Authorization: Bearer YOUR_KEY."
                : "Incorrect API key provided.",
            null,
            "invalid_api_key");
}
