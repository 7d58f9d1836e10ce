using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Gateway.Auth;

/// <summary>
/// API keys (section <c>Gateway:ApiKeys</c>), keyed by a key name that is safe to log, e.g.
/// <c>Gateway:ApiKeys:team-a:Sha256=&lt;hex&gt;</c>. Only the SHA-256 hash of a key is stored.
/// </summary>
public sealed class ApiKeyOptions
{
    public const string SectionName = "Gateway";

    public Dictionary<string, ApiKeyEntry> ApiKeys { get; } = new(StringComparer.Ordinal);
}

public sealed class ApiKeyEntry
{
    /// <summary>Lower- or upper-case hex SHA-256 of the UTF-8 key (64 characters).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>The tenant the key belongs to (a metric and trace label).</summary>
    public string Tenant { get; set; } = "";

    /// <summary>Public model ids the key may use; <c>*</c> = every model.</summary>
    public List<string> AllowedModels { get; set; } = [];

    /// <summary>Requests per minute; 0 = unlimited.</summary>
    public int RequestsPerMinute { get; set; }

    /// <summary>Tokens (prompt + completion) per minute; 0 = unlimited.</summary>
    public int TokensPerMinute { get; set; }
}

public static class ApiKeyHash
{
    /// <summary>The hex SHA-256 of a key as it goes into configuration.</summary>
    public static string ToHex(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));
}

internal sealed class ApiKeyOptionsValidator : IValidateOptions<ApiKeyOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiKeyOptions options)
    {
        var failures = new List<string>();
        foreach (var (keyName, entry) in options.ApiKeys)
        {
            var key = $"Gateway:ApiKeys:{keyName}";
            if (entry.Sha256.Length != 64 || !entry.Sha256.All(Uri.IsHexDigit))
            {
                failures.Add($"{key}:Sha256 must be 64 hex characters (the SHA-256 of the key, never the key itself).");
            }
            if (string.IsNullOrWhiteSpace(entry.Tenant))
            {
                failures.Add($"{key}:Tenant is required.");
            }
            if (entry.AllowedModels.Count == 0)
            {
                failures.Add($"{key}:AllowedModels must list model ids or '*'.");
            }
            if (entry.RequestsPerMinute < 0)
            {
                failures.Add($"{key}:RequestsPerMinute must not be negative.");
            }
            if (entry.TokensPerMinute < 0)
            {
                failures.Add($"{key}:TokensPerMinute must not be negative.");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
