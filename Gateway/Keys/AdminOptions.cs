using Microsoft.Extensions.Options;

namespace Gateway.Keys;

/// <summary>
/// The admin API's key (section <c>Gateway:Admin</c>): only its SHA-256 hash, like user keys, e.g.
/// <c>Gateway:Admin:ApiKeySha256=&lt;hex&gt;</c> (from a Secret on GKE). Without it nobody is admin.
/// </summary>
public sealed class AdminOptions
{
    public const string SectionName = "Gateway:Admin";

    /// <summary>Hex SHA-256 of the UTF-8 admin key (64 characters).</summary>
    public string? ApiKeySha256 { get; set; }
}

internal sealed class AdminOptionsValidator : IValidateOptions<AdminOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminOptions options) =>
        string.IsNullOrEmpty(options.ApiKeySha256) || (options.ApiKeySha256.Length == 64 && options.ApiKeySha256.All(Uri.IsHexDigit))
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail("Gateway:Admin:ApiKeySha256 must be 64 hex characters (the SHA-256 of the admin key, never the key itself).");
}
