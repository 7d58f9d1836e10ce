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

    /// <summary>
    /// <c>RoundRobin</c>: ignore every scorer and take the ready, unsaturated replicas in turn (a
    /// baseline for benchmarks and debugging). Default false: the scorers decide.
    /// </summary>
    public bool RoundRobin { get; set; }

    /// <summary>The scorers that rank replicas and their weights (<c>Gateway:Routing:Scorers</c>).</summary>
    public RoutingScorerOptions Scorers { get; set; } = new();

    /// <summary>Within one priority band the admission queue serves tenants round robin (false: arrival order).</summary>
    public bool TenantFairness { get; set; } = true;

    /// <summary>
    /// A request header (gRPC metadata) that splits an API key's tenant into sub-tenants for fairness
    /// (the web app's users behind one key, say): the tenant is then <c>{key's tenant}/{header}</c>.
    /// Empty (the default): the API key's tenant alone.
    /// </summary>
    public string? TenantHeader { get; set; }
}

/// <summary>
/// The replica score (lower wins): <c>InFlightWeight × (inFlight + inFlightTokens / TokensPerLoadUnit)
/// + QueueWeight × (pending + avgQueueTime / QueueTimePerLoadUnit + batchUtilization)
/// + KvCacheWeight × kvUtilization − PrefixWeight × matchedPrefixFraction</c>, where the prefix credit
/// applies only to a replica inside the load gate. A weight of 0 switches that scorer off.
/// </summary>
public sealed class RoutingScorerOptions
{
    /// <summary>Weight of this gateway's own in-flight requests and tokens on the replica.</summary>
    public double InFlightWeight { get; set; } = 1;

    /// <summary>Weight of Triton's queue: pending requests, average queue time, batch slots in use.</summary>
    public double QueueWeight { get; set; } = 1;

    /// <summary>Weight of the engine's KV-cache utilisation (0..1, from its own metrics).</summary>
    public double KvCacheWeight { get; set; } = 1;

    /// <summary>
    /// Load units a full prefix match is worth: a replica that probably holds the whole prompt prefix
    /// in its KV cache scores this much lower (in proportion to the matched share). 0 = no prefix affinity.
    /// </summary>
    public double PrefixWeight { get; set; } = 16;

    /// <summary>Tokens per block the prompt is hashed in: the engine's <c>tokens_per_block</c> (TensorRT-LLM 64, vLLM 16).</summary>
    public int PrefixBlockSize { get; set; } = 64;

    /// <summary>
    /// Block keys remembered per replica (a fixed-size LRU, ~40 bytes each). Size it like the engine's
    /// KV pool in blocks (TensorRT-LLM: max_tokens_in_paged_kv_cache / tokens_per_block), so the gateway
    /// forgets a prefix about when the engine evicts it.
    /// </summary>
    public int PrefixBlocksPerReplica { get; set; } = 4096;

    /// <summary>
    /// The load gate: a replica gets prefix credit only while its load score is at most
    /// <c>(1 + LoadGate) × the least loaded candidate's + the request's own load</c> (1 + its prompt and
    /// max tokens / TokensPerLoadUnit), so affinity never piles work on a busy replica.
    /// </summary>
    public double LoadGate { get; set; } = 1.0;
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
        var scorers = options.Scorers;
        if (scorers is null)
        {
            failures.Add("Gateway:Routing:Scorers must not be empty.");
        }
        else
        {
            Weight(scorers.InFlightWeight, "InFlightWeight");
            Weight(scorers.QueueWeight, "QueueWeight");
            Weight(scorers.KvCacheWeight, "KvCacheWeight");
            Weight(scorers.PrefixWeight, "PrefixWeight");
            Weight(scorers.LoadGate, "LoadGate");
            if (scorers.PrefixBlockSize is < 1 or > 4096)
            {
                failures.Add("Gateway:Routing:Scorers:PrefixBlockSize must be between 1 and 4096.");
            }
            if (scorers.PrefixBlocksPerReplica is < 1 or > 16_777_216)
            {
                failures.Add("Gateway:Routing:Scorers:PrefixBlocksPerReplica must be between 1 and 16777216.");
            }
        }
        if (options.TenantHeader is { Length: > 0 } header && (header.Trim() != header || header.Any(static c => c <= ' ' || c >= 127 || c == ':')))
        {
            failures.Add("Gateway:Routing:TenantHeader must be a header name (visible ASCII, no ':' or spaces).");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Weight(double value, string key)
        {
            if (!double.IsFinite(value) || value < 0)
            {
                failures.Add($"Gateway:Routing:Scorers:{key} must be a finite number >= 0.");
            }
        }

        void Positive(TimeSpan value, string key)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"Gateway:Routing:{key} must be positive.");
            }
        }
    }
}
