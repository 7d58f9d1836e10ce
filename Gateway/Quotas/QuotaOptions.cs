using Microsoft.Extensions.Options;

namespace Gateway.Quotas;

/// <summary>
/// Where the per-key quotas live (section <c>Gateway:Quotas</c>). Without a Redis connection
/// string every gateway replica counts on its own (in memory); with one, every replica shares
/// one sliding window per key in Redis.
/// </summary>
public sealed class QuotaOptions
{
    public const string SectionName = "Gateway:Quotas";

    /// <summary>
    /// <c>Gateway:Quotas:Redis</c>: a StackExchange.Redis connection string (<c>host:port[,password=…]</c>).
    /// When empty, <c>ConnectionStrings:redis</c> (what Aspire's <c>WithReference(redis)</c> sets) is used;
    /// when both are empty, quotas are in memory.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary><c>Gateway:Quotas:KeyPrefix</c>: namespace of the Redis keys (<c>{prefix}{{key name}}</c>).</summary>
    public string KeyPrefix { get; set; } = "llm-gateway:quota:";

    /// <summary>
    /// <c>Gateway:Quotas:RedisTimeout</c>: how long a reservation waits on Redis before the gateway
    /// falls back to its local quota for that request.
    /// </summary>
    public TimeSpan RedisTimeout { get; set; } = TimeSpan.FromMilliseconds(250);
}

internal sealed class QuotaOptionsValidator : IValidateOptions<QuotaOptions>
{
    public ValidateOptionsResult Validate(string? name, QuotaOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.KeyPrefix))
        {
            failures.Add("Gateway:Quotas:KeyPrefix must not be empty.");
        }
        if (options.RedisTimeout <= TimeSpan.Zero || options.RedisTimeout > TimeSpan.FromSeconds(30))
        {
            failures.Add($"Gateway:Quotas:RedisTimeout must be between 0 and 30 s (was {options.RedisTimeout}).");
        }
        if (!string.IsNullOrWhiteSpace(options.Redis))
        {
            try
            {
                StackExchange.Redis.ConfigurationOptions.Parse(options.Redis);
            }
            catch (ArgumentException ex)
            {
                failures.Add($"Gateway:Quotas:Redis is not a valid Redis connection string: {ex.Message}");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
