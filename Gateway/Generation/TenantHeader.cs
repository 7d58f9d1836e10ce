using Gateway.Errors;
using Gateway.Routing;

namespace Gateway.Generation;

/// <summary>
/// The optional fairness header (<see cref="RoutingOptions.TenantHeader"/>): splits an API key's
/// tenant into sub-tenants that the admission queue serves round robin. Only the queue reads it;
/// quotas, usage and metrics stay on the key's tenant.
/// </summary>
internal static class TenantHeader
{
    public const int MaxLength = 128;

    /// <summary>The request with its sub-tenant; an over-long value is a 400 naming the header.</summary>
    public static GenerationRequest Apply(GenerationRequest request, RoutingOptions options, Func<string, string?> header)
    {
        if (options.TenantHeader is not { Length: > 0 } name || header(name) is not { } value || string.IsNullOrWhiteSpace(value))
        {
            return request;
        }
        value = value.Trim();
        if (value.Length > MaxLength)
        {
            throw new GatewayException(GatewayError.InvalidRequest,
                $"Invalid '{name}' header: longer than {MaxLength} characters.", name, "invalid_value");
        }
        return request with { SubTenant = value };
    }
}
