using Microsoft.Extensions.Options;

namespace Gateway.Lifecycle;

/// <summary>
/// Graceful drain on SIGTERM (section <c>Gateway:Shutdown</c>): readiness turns false at once, new
/// requests are still accepted for <see cref="AcceptWindow"/> (endpoints propagate late), then
/// refused with 503 + <c>Retry-After</c>; open streams and calls may finish until
/// <see cref="DrainTimeout"/> after the signal, and what is still open then ends with a
/// <c>server_shutting_down</c> error (SSE event + <c>[DONE]</c>, gRPC <c>UNAVAILABLE</c>).
/// </summary>
public sealed class ShutdownOptions
{
    public const string SectionName = "Gateway:Shutdown";

    /// <summary>How long new requests are still served after the signal.</summary>
    public TimeSpan AcceptWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>From the signal: the deadline for open requests (keep terminationGracePeriodSeconds above it).</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>After the deadline: how long the cut requests get to write their final error before the server stops.</summary>
    public TimeSpan FinalWriteTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The <c>Retry-After</c> of a refused request.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class ShutdownOptionsValidator : IValidateOptions<ShutdownOptions>
{
    public ValidateOptionsResult Validate(string? name, ShutdownOptions options)
    {
        var failures = new List<string>();
        if (options.AcceptWindow < TimeSpan.Zero)
        {
            failures.Add($"Gateway:Shutdown:AcceptWindow must not be negative (was {options.AcceptWindow}).");
        }
        if (options.DrainTimeout < options.AcceptWindow)
        {
            failures.Add($"Gateway:Shutdown:DrainTimeout ({options.DrainTimeout}) must be at least Gateway:Shutdown:AcceptWindow ({options.AcceptWindow}).");
        }
        if (options.FinalWriteTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Shutdown:FinalWriteTimeout must be positive.");
        }
        if (options.RetryAfter <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Shutdown:RetryAfter must be positive.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
