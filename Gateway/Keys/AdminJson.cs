using System.Text.Json.Serialization;

namespace Gateway.Keys;

/// <summary><c>POST /admin/v1/keys</c> and <c>PATCH /admin/v1/keys/{id}</c>; every field but name optional.</summary>
internal sealed class KeyRequest
{
    public string? Name { get; set; }
    public string? Tenant { get; set; }
    public List<string>? AllowedModels { get; set; }
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    public long? MonthlyTokenBudget { get; set; }

    /// <summary>Unix seconds; null = never.</summary>
    public long? ExpiresAt { get; set; }
}

/// <summary>A key as the admin API shows it; <see cref="Key"/> (the secret) only in the answer to its creation.</summary>
internal sealed class KeyObject
{
    public string Object { get; set; } = "api_key";
    public required string Id { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Key { get; set; }

    public required string RedactedKey { get; set; }
    public required string Name { get; set; }
    public required string Tenant { get; set; }
    public required IReadOnlyList<string> AllowedModels { get; set; }
    public int RequestsPerMinute { get; set; }
    public int TokensPerMinute { get; set; }
    public long MonthlyTokenBudget { get; set; }

    /// <summary>Tokens billed this UTC month.</summary>
    public long MonthTokensUsed { get; set; }

    public long? ExpiresAt { get; set; }
    public long CreatedAt { get; set; }
    public long? RevokedAt { get; set; }
}

internal sealed class KeyList
{
    public string Object { get; set; } = "list";
    public required List<KeyObject> Data { get; set; }
}

internal sealed class UsageItem
{
    public string? KeyId { get; set; }
    public string? Tenant { get; set; }
    public string? Model { get; set; }

    /// <summary>The day (<c>yyyy-MM-dd</c>, UTC) when grouped by day.</summary>
    public string? Period { get; set; }

    public long Requests { get; set; }
    public long PromptTokens { get; set; }
    public long CompletionTokens { get; set; }
    public long Cancelled { get; set; }
    public long Failed { get; set; }
    public long Refused { get; set; }
}

internal sealed class UsageList
{
    public string Object { get; set; } = "list";
    public required List<UsageItem> Data { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(KeyRequest))]
[JsonSerializable(typeof(KeyObject))]
[JsonSerializable(typeof(KeyList))]
[JsonSerializable(typeof(UsageList))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
