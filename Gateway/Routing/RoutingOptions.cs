using Microsoft.Extensions.Options;

namespace Gateway.Routing;

/// <summary>
/// Load-aware routing over the Triton replicas (section <c>Gateway:Routing</c>): health probing,
/// metrics scraping, the load score, saturation and the admission queue. See Gateway/README.md.
/// </summary>
public sealed class RoutingOptions
{
    public const string SectionName = "Gateway:Routing";

    /// <summary>How often every replica is probed (ServerReady + ModelReady) and its metrics scraped.</summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A probe or scrape that takes longer fails.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromMilliseconds(800);

    /// <summary>An ejected replica comes back on the first successful probe after at least this long.</summary>
    public TimeSpan MinEjection { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Scraped metrics older than this are ignored (only the gateway's own counts are used).</summary>
    public TimeSpan MetricsMaxAge { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A replica is saturated when its own in-flight requests plus Triton's queued requests reach this.</summary>
    public int SaturationThreshold { get; set; } = 128;

    /// <summary>In-flight tokens (prompt + still to generate) that weigh as much as one request in the score.</summary>
    public int TokensPerLoadUnit { get; set; } = 1024;

    /// <summary>Average Triton queue time per request that weighs as much as one request in the score.</summary>
    public TimeSpan QueueTimePerLoadUnit { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Requests that may wait for a replica when every one is saturated (high and normal priority).</summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>Longest wait in that queue before a 503.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The <c>Retry-After</c> given with a 503 for shed or unroutable requests.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Largest metrics body read from a replica; a larger one is abandoned (its previous load is kept until it goes stale).</summary>
    public int MaxMetricsBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>The Triton <c>priority</c> sent for <c>x-priority: low</c> (1 is the highest level).</summary>
    public int LowPriorityLevel { get; set; } = 2;
}

internal sealed class RoutingOptionsValidator : IValidateOptions<RoutingOptions>
{
    public ValidateOptionsResult Validate(string? name, RoutingOptions options)
    {
        var failures = new List<string>();
        Positive(options.ProbeInterval, "ProbeInterval");
        Positive(options.ProbeTimeout, "ProbeTimeout");
        Positive(options.MetricsMaxAge, "MetricsMaxAge");
        Positive(options.QueueTimeout, "QueueTimeout");
        Positive(options.RetryAfter, "RetryAfter");
        Positive(options.QueueTimePerLoadUnit, "QueueTimePerLoadUnit");
        if (options.MinEjection < TimeSpan.Zero)
        {
            failures.Add("Gateway:Routing:MinEjection must not be negative.");
        }
        if (options.SaturationThreshold < 1)
        {
            failures.Add("Gateway:Routing:SaturationThreshold must be at least 1.");
        }
        if (options.TokensPerLoadUnit < 1)
        {
            failures.Add("Gateway:Routing:TokensPerLoadUnit must be at least 1.");
        }
        if (options.MaxQueuedRequests < 0)
        {
            failures.Add("Gateway:Routing:MaxQueuedRequests must not be negative.");
        }
        if (options.MaxMetricsBytes < 1024)
        {
            failures.Add("Gateway:Routing:MaxMetricsBytes must be at least 1024.");
        }
        if (options.LowPriorityLevel < 1)
        {
            failures.Add("Gateway:Routing:LowPriorityLevel must be at least 1.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Positive(TimeSpan value, string key)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"Gateway:Routing:{key} must be positive.");
            }
        }
    }
}
