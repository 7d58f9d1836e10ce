using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Gateway.Auth;

/// <summary>Who is calling: the key's name (safe to log), tenant, allowed models and limits.</summary>
public sealed record Caller(string KeyName, string Tenant, IReadOnlySet<string> AllowedModels, int RequestsPerMinute, int TokensPerMinute)
{
    public bool MayUse(string modelId) => AllowedModels.Contains("*") || AllowedModels.Contains(modelId);

    /// <summary>The ledger's key id: a managed key's id, or <c>static:{name}</c> for a <c>Gateway:ApiKeys</c> entry.</summary>
    public string LedgerKeyId { get; init; } = "static:" + KeyName;

    /// <summary>The key's human name in the ledger (a managed key's <see cref="KeyName"/> is its id, unique for quotas).</summary>
    public string LedgerKeyName { get; init; } = KeyName;

    /// <summary>A key made through the admin API: a model outside its allow-list is answered like an unknown one (404).</summary>
    public bool IsManaged { get; init; }

    /// <summary>Tokens per UTC month; 0 = no budget.</summary>
    public long MonthlyTokenBudget { get; init; }
}

/// <summary>Resolves a bearer token to a caller.</summary>
public interface IApiKeyAuthenticator
{
    /// <summary>The caller for <paramref name="authorizationHeader"/> (<c>Bearer &lt;key&gt;</c>), or null.</summary>
    Caller? Authenticate(string? authorizationHeader);
}

internal sealed class ApiKeyAuthenticator : IApiKeyAuthenticator
{
    private readonly (byte[] Hash, Caller Caller)[] _keys;

    public ApiKeyAuthenticator(IOptions<ApiKeyOptions> options)
    {
        _keys = [.. options.Value.ApiKeys.Select(pair => (
            Convert.FromHexString(pair.Value.Sha256),
            new Caller(
                pair.Key,
                pair.Value.Tenant,
                new HashSet<string>(pair.Value.AllowedModels, StringComparer.Ordinal),
                pair.Value.RequestsPerMinute,
                pair.Value.TokensPerMinute)))];
    }

    public Caller? Authenticate(string? authorizationHeader)
    {
        const string scheme = "Bearer ";
        if (authorizationHeader is null
            || authorizationHeader.Length <= scheme.Length
            || !authorizationHeader.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        var token = authorizationHeader.AsSpan(scheme.Length).Trim();
        if (token.IsEmpty)
        {
            return null;
        }
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var byteCount = Encoding.UTF8.GetByteCount(token);
        var bytes = byteCount <= 512 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(token, bytes);
        SHA256.HashData(bytes, hash);

        // Compare against every key in constant time, so timing reveals neither which key nor how much matched.
        Caller? found = null;
        foreach (var (expected, caller) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, expected))
            {
                found = caller;
            }
        }
        return found;
    }
}
