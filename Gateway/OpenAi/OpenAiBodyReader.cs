using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Gateway.Errors;

namespace Gateway.OpenAi;

/// <summary>Reads a request body as one JSON object, with OpenAI's 400s and 413 for what is not one.</summary>
internal static class OpenAiBodyReader
{
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo, long limit, CancellationToken cancellationToken) where T : class
    {
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
}
