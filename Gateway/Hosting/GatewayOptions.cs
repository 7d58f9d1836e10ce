using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>Listening and request limits of the gateway (section <c>Gateway</c>).</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary><c>Gateway:RestPort</c>: OpenAI-compatible REST + SSE, HTTP/1.1 and HTTP/2. 0 = any free port.</summary>
    public int RestPort { get; set; } = 5080;

    /// <summary><c>Gateway:GrpcPort</c>: the gRPC face, HTTP/2 only (h2c). 0 = any free port.</summary>
    public int GrpcPort { get; set; } = 5081;

    /// <summary><c>Gateway:ListenOnLoopbackOnly</c>: bind 127.0.0.1 instead of every interface.</summary>
    public bool ListenOnLoopbackOnly { get; set; }

    /// <summary><c>Gateway:MaxRequestBodyBytes</c>: larger bodies get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;
}

internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var failures = new List<string>();
        if (options.RestPort is < 0 or > 65535)
        {
            failures.Add($"Gateway:RestPort must be 0..65535 (was {options.RestPort}).");
        }
        if (options.GrpcPort is < 0 or > 65535)
        {
            failures.Add($"Gateway:GrpcPort must be 0..65535 (was {options.GrpcPort}).");
        }
        if (options.RestPort != 0 && options.RestPort == options.GrpcPort)
        {
            failures.Add("Gateway:RestPort and Gateway:GrpcPort must differ.");
        }
        if (options.MaxRequestBodyBytes <= 0)
        {
            failures.Add("Gateway:MaxRequestBodyBytes must be positive.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
