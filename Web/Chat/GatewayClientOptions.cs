using Microsoft.Extensions.Options;

namespace Web.Chat;

/// <summary>
/// How the web app reaches the gateway's gRPC face (section <c>GatewayClient</c>). The address
/// defaults to the Aspire service-discovery entry <c>services:gateway:grpc:0</c>.
/// </summary>
public sealed class GatewayClientOptions
{
    public const string SectionName = "GatewayClient";

    /// <summary>The service-discovery key Aspire sets for the gateway's <c>grpc</c> endpoint.</summary>
    public const string DiscoveryKey = "services:gateway:grpc:0";

    /// <summary>The service-discovery key Aspire sets for the gateway's <c>http</c> (REST) endpoint.</summary>
    public const string RestDiscoveryKey = "services:gateway:http:0";

    /// <summary>
    /// The gateway's REST (OpenAI-compatible) address, e.g. <c>http://localhost:5080</c>: requests with a
    /// response format or tools go there, because the gRPC face carries neither. Optional; without
    /// it such requests fail with a message that names this key.
    /// </summary>
    public string RestAddress { get; set; } = "";

    /// <summary>The gateway's gRPC (h2c or TLS) address, e.g. <c>http://localhost:5081</c>.</summary>
    public string Address { get; set; } = "";

    /// <summary>The web app's own gateway API key, sent as <c>authorization: Bearer &lt;key&gt;</c>.</summary>
    public string ApiKey { get; set; } = "";
}

internal sealed class GatewayClientOptionsValidator : IValidateOptions<GatewayClientOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayClientOptions options)
    {
        var failures = new List<string>();
        if (!Uri.TryCreate(options.Address, UriKind.Absolute, out var address)
            || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            failures.Add($"{GatewayClientOptions.SectionName}:Address must be an absolute http(s) URL of the gateway's gRPC endpoint (or set {GatewayClientOptions.DiscoveryKey}); got '{options.Address}'.");
        }
        if (!string.IsNullOrWhiteSpace(options.RestAddress)
            && (!Uri.TryCreate(options.RestAddress, UriKind.Absolute, out var rest) || (rest.Scheme != Uri.UriSchemeHttp && rest.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add($"{GatewayClientOptions.SectionName}:RestAddress must be an absolute http(s) URL of the gateway's REST endpoint (or set {GatewayClientOptions.RestDiscoveryKey}); got '{options.RestAddress}'.");
        }
        if (string.IsNullOrWhiteSpace(options.ApiKey))
        {
            failures.Add($"{GatewayClientOptions.SectionName}:ApiKey is required (the web app's gateway API key; AppHost parameter 'web-api-key').");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
