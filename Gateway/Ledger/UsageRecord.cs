using System.Text.Json.Serialization;

namespace Gateway.Ledger;

/// <summary>The ledger's statuses: what happened to a request that was authenticated as a key.</summary>
public static class UsageStatus
{
    /// <summary>Completed; billed with the counts its response reported.</summary>
    public const string Ok = "ok";

    /// <summary>The client went away; billed with the tokens generated until generation stopped.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>Reached generation and failed (backend, timeout, drain deadline).</summary>
    public const string Failed = "failed";

    /// <summary>Never reached generation: revoked or expired key, budget spent, rate limit.</summary>
    public const string Refused = "refused";
}

/// <summary>One row of the usage ledger: one request, billed once.</summary>
public sealed record UsageRecord
{
    public required string RequestId { get; init; }

    /// <summary>The managed key's id, or <c>static:{name}</c> for a <c>Gateway:ApiKeys</c> entry.</summary>
    public required string KeyId { get; init; }

    public required string KeyName { get; init; }

    public required string Tenant { get; init; }

    /// <summary>The public model id ("" when refused before the body was read).</summary>
    public required string Model { get; init; }

    /// <summary><c>chat</c>, <c>text_completion</c> or <c>auth</c>.</summary>
    public required string Operation { get; init; }

    /// <summary>The gateway replica that served it.</summary>
    public required string Gateway { get; init; }

    /// <summary>This process's <see cref="Gateway"/>: the host name, read once (each read of Environment.MachineName is a system call).</summary>
    public static string ThisGateway { get; } = Environment.MachineName;

    /// <summary>The Triton replica (<c>host:port</c>) that generated it, when one did.</summary>
    public string? Replica { get; init; }

    public required string Status { get; init; }

    /// <summary>Why it was refused or failed (<c>rate_limited</c>, <c>budget_exceeded</c>, <c>revoked</c>, <c>timeout</c>...).</summary>
    public string? Reason { get; init; }

    public int PromptTokens { get; init; }

    public int CompletionTokens { get; init; }

    public double? TtftMs { get; init; }

    public double DurationMs { get; init; }

    /// <summary>Unix milliseconds (UTC) when the request started.</summary>
    public long StartedAtMs { get; init; }

    /// <summary>Tokens that count against the key's monthly budget.</summary>
    [JsonIgnore]
    public long BilledTokens => Status == UsageStatus.Refused ? 0 : (long)PromptTokens + CompletionTokens;
}

/// <summary>Spill files are JSON lines of <see cref="UsageRecord"/>.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UsageRecord))]
internal sealed partial class LedgerJsonContext : JsonSerializerContext;
