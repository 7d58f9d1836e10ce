using Microsoft.Extensions.Options;

namespace Gateway.Triton;

/// <summary>
/// The Triton backend (section <c>Gateway:Triton</c>). Endpoints come from
/// <c>Gateway:Triton:Endpoints</c>, or else from Aspire service discovery
/// (<c>services:triton:grpc:0</c>, set by the AppHost as <c>services__triton__grpc__0</c>).
/// </summary>
public sealed class TritonOptions
{
    public const string SectionName = "Gateway:Triton";

    /// <summary>gRPC base addresses, e.g. <c>http://localhost:8001</c>.</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>The service-discovery name used when <see cref="Endpoints"/> is empty.</summary>
    public string ServiceName { get; set; } = "triton";

    /// <summary>Longest wait for the first generated token (then 504 / DeadlineExceeded).</summary>
    public TimeSpan FirstTokenTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait between two responses once tokens flow. There is no total timeout.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Attempts before the first token (connect failures, backend errors); never after.</summary>
    public int MaxAttempts { get; set; } = 2;

    /// <summary>gRPC receive limit (the 4 MB default is too small for large outputs).</summary>
    public int MaxReceiveMessageSize { get; set; } = 64 * 1024 * 1024;

    internal IReadOnlyList<Uri> ParsedEndpoints { get; set; } = [];
}

internal sealed class TritonOptionsSetup(IConfiguration configuration) : IPostConfigureOptions<TritonOptions>
{
    public void PostConfigure(string? name, TritonOptions options)
    {
        var endpoints = options.Endpoints.Where(e => !string.IsNullOrWhiteSpace(e)).ToList();
        if (endpoints.Count == 0)
        {
            // Aspire injects services__{name}__{endpoint}__{index}; prefer the grpc endpoint.
            var service = configuration.GetSection($"services:{options.ServiceName}");
            foreach (var endpointName in new[] { "grpc", "http2" })
            {
                foreach (var child in service.GetSection(endpointName).GetChildren())
                {
                    if (!string.IsNullOrWhiteSpace(child.Value))
                    {
                        endpoints.Add(child.Value);
                    }
                }
                if (endpoints.Count > 0)
                {
                    break;
                }
            }
        }
        var parsed = new List<Uri>();
        foreach (var endpoint in endpoints)
        {
            if (Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
            {
                parsed.Add(uri);
            }
        }
        options.Endpoints = endpoints;
        options.ParsedEndpoints = parsed;
    }
}

internal sealed class TritonOptionsValidator : IValidateOptions<TritonOptions>
{
    public ValidateOptionsResult Validate(string? name, TritonOptions options)
    {
        var failures = new List<string>();
        if (options.Endpoints.Count == 0)
        {
            failures.Add($"Gateway:Triton:Endpoints is empty and no service discovery entry services:{options.ServiceName}:grpc:0 was found.");
        }
        else if (options.ParsedEndpoints.Count != options.Endpoints.Count)
        {
            failures.Add($"Gateway:Triton:Endpoints must be absolute http(s) URIs (was: {string.Join(", ", options.Endpoints)}).");
        }
        if (options.FirstTokenTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Triton:FirstTokenTimeout must be positive.");
        }
        if (options.IdleTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Triton:IdleTimeout must be positive.");
        }
        if (options.MaxAttempts < 1)
        {
            failures.Add("Gateway:Triton:MaxAttempts must be at least 1.");
        }
        if (options.MaxReceiveMessageSize < 4 * 1024 * 1024)
        {
            failures.Add("Gateway:Triton:MaxReceiveMessageSize must be at least 4194304.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
