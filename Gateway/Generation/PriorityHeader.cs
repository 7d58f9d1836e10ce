using System.Globalization;
using Gateway.Errors;
using Gateway.Routing;

namespace Gateway.Generation;

/// <summary>
/// The <c>x-priority</c> request header (REST) or metadata entry (gRPC): <c>high</c> (Triton
/// priority 1), <c>normal</c> / <c>default</c> (0, the model's default level), <c>low</c>
/// (<see cref="RoutingOptions.LowPriorityLevel"/>, shed first when every replica is saturated), or a
/// Triton level as a number. When present it overrides the body's <c>priority</c>.
/// </summary>
internal static class PriorityHeader
{
    public const string Name = "x-priority";

    /// <summary>The request with the header's priority applied; a malformed header is a 400 naming it.</summary>
    public static GenerationRequest Apply(GenerationRequest request, string? header, int lowPriorityLevel)
    {
        if (string.IsNullOrWhiteSpace(header))
        {
            return request;
        }
        var value = header.Trim();
        int priority;
        if (value.Equals("high", StringComparison.OrdinalIgnoreCase))
        {
            priority = 1;
        }
        else if (value.Equals("low", StringComparison.OrdinalIgnoreCase))
        {
            priority = lowPriorityLevel;
        }
        else if (value.Equals("normal", StringComparison.OrdinalIgnoreCase) || value.Equals("default", StringComparison.OrdinalIgnoreCase))
        {
            priority = 0;
        }
        else if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out priority))
        {
            throw new GatewayException(GatewayError.InvalidRequest,
                $"Invalid '{Name}' header: '{value}'. Expected high, normal, low or a priority level >= 0 (1 = highest).", Name, "invalid_value");
        }
        return request with { Priority = priority };
    }
}
