using Microsoft.Extensions.Options;

namespace Gateway.Triton;

/// <summary>
/// The Triton backend (section <c>Gateway:Triton</c>). The replicas come from, in this order:
/// <c>Gateway:Triton:HeadlessService</c> (a DNS name resolved periodically to every address, as a
/// Kubernetes headless Service gives), <c>Gateway:Triton:Endpoints:N</c> (with
/// <c>MetricsEndpoints:N</c> paired by index), or Aspire service discovery
/// (<c>services:triton:grpc:N</c> with <c>services:triton:metrics:N</c>, set by the AppHost as
/// <c>services__triton__grpc__N</c>).
/// </summary>
public sealed class TritonOptions
{
    public const string SectionName = "Gateway:Triton";

    /// <summary>gRPC base addresses, e.g. <c>http://localhost:8001</c>.</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>Prometheus metrics base addresses paired with <see cref="Endpoints"/> by index, e.g. <c>http://localhost:8002</c>.</summary>
    public List<string> MetricsEndpoints { get; set; } = [];

    /// <summary>
    /// <c>host:port</c> of a headless Service (e.g. <c>triton-headless:8001</c>): every A/AAAA
    /// record is a replica's gRPC address, re-resolved every <see cref="DiscoveryInterval"/>.
    /// </summary>
    public string? HeadlessService { get; set; }

    /// <summary>The metrics port of every replica found through <see cref="HeadlessService"/> (0 = no scraping).</summary>
    public int HeadlessMetricsPort { get; set; } = 8002;

    /// <summary>How often <see cref="HeadlessService"/> is resolved again.</summary>
    public TimeSpan DiscoveryInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The service-discovery name used when <see cref="Endpoints"/> is empty.</summary>
    public string ServiceName { get; set; } = "triton";

    /// <summary>Longest wait for the first generated token (then 504 / DeadlineExceeded).</summary>
    public TimeSpan FirstTokenTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait between two responses once tokens flow. There is no total timeout.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Attempts before the first token on transport failures (connect, reset, UNAVAILABLE), each on another replica when there is one; never after it, never on a deterministic rejection.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>gRPC receive limit (the 4 MB default is too small for large outputs).</summary>
    public int MaxReceiveMessageSize { get; set; } = 64 * 1024 * 1024;

    internal IReadOnlyList<Uri> ParsedEndpoints { get; set; } = [];

    internal IReadOnlyList<Uri?> ParsedMetricsEndpoints { get; set; } = [];

    /// <summary>The parsed <see cref="HeadlessService"/> (host, gRPC port), or null.</summary>
    internal (string Host, int Port)? ParsedHeadlessService { get; set; }
}

internal sealed class TritonOptionsSetup(IConfiguration configuration) : IPostConfigureOptions<TritonOptions>
{
    public void PostConfigure(string? name, TritonOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.HeadlessService))
        {
            var text = options.HeadlessService.Trim();
            var colon = text.LastIndexOf(':');
            if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
                && port is > 0 and <= 65535 && Uri.CheckHostName(text[..colon]) != UriHostNameType.Unknown)
            {
                options.ParsedHeadlessService = (text[..colon], port);
            }
        }
        var endpoints = options.Endpoints.Where(e => !string.IsNullOrWhiteSpace(e)).ToList();
        var metrics = options.MetricsEndpoints.ToList();
        if (endpoints.Count == 0)
        {
            metrics = [];
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
            // services:triton:metrics:N belongs to the replica at services:triton:grpc:N.
            var metricsSection = service.GetSection("metrics");
            for (var i = 0; i < endpoints.Count; i++)
            {
                metrics.Add(metricsSection[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] ?? "");
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
        var parsedMetrics = new List<Uri?>();
        for (var i = 0; i < parsed.Count; i++)
        {
            parsedMetrics.Add(i < metrics.Count && Uri.TryCreate(metrics[i], UriKind.Absolute, out var uri)
                && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) ? uri : null);
        }
        options.Endpoints = endpoints;
        options.ParsedEndpoints = parsed;
        options.ParsedMetricsEndpoints = parsedMetrics;
    }
}

internal sealed class TritonOptionsValidator : IValidateOptions<TritonOptions>
{
    public ValidateOptionsResult Validate(string? name, TritonOptions options)
    {
        var failures = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.HeadlessService))
        {
            if (options.ParsedHeadlessService is null)
            {
                failures.Add($"Gateway:Triton:HeadlessService must be host:port, e.g. triton-headless:8001 (was: {options.HeadlessService}).");
            }
            if (options.HeadlessMetricsPort is < 0 or > 65535)
            {
                failures.Add($"Gateway:Triton:HeadlessMetricsPort must be 0..65535 (was {options.HeadlessMetricsPort}).");
            }
            if (options.DiscoveryInterval <= TimeSpan.Zero)
            {
                failures.Add("Gateway:Triton:DiscoveryInterval must be positive.");
            }
        }
        else if (options.Endpoints.Count == 0)
        {
            failures.Add($"Gateway:Triton:Endpoints is empty, Gateway:Triton:HeadlessService is not set and no service discovery entry services:{options.ServiceName}:grpc:0 was found.");
        }
        else if (options.ParsedEndpoints.Count != options.Endpoints.Count)
        {
            failures.Add($"Gateway:Triton:Endpoints must be absolute http(s) URIs (was: {string.Join(", ", options.Endpoints)}).");
        }
        else
        {
            for (var i = 0; i < options.MetricsEndpoints.Count && i < options.ParsedMetricsEndpoints.Count; i++)
            {
                if (!string.IsNullOrWhiteSpace(options.MetricsEndpoints[i]) && options.ParsedMetricsEndpoints[i] is null)
                {
                    failures.Add($"Gateway:Triton:MetricsEndpoints:{i} must be an absolute http(s) URI (was: {options.MetricsEndpoints[i]}).");
                }
            }
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
