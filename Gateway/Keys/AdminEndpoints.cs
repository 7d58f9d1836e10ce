using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Gateway.Auth;
using Gateway.Errors;
using Gateway.Ledger;
using Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace Gateway.Keys;

public static class AdminEndpoints
{
    /// <summary>Maps <c>/admin/v1/keys</c> (POST, GET, GET/PATCH/DELETE by id) and <c>/admin/v1/usage</c>.</summary>
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("/admin/v1").WithTags("Admin");
        admin.MapPost("/keys", (HttpContext context, AdminHandler handler) => handler.RunAsync(context, handler.CreateKeyAsync)).WithName("CreateKey");
        admin.MapGet("/keys", (HttpContext context, AdminHandler handler) => handler.RunAsync(context, handler.ListKeysAsync)).WithName("ListKeys");
        admin.MapGet("/keys/{id}", (HttpContext context, string id, AdminHandler handler) => handler.RunAsync(context, c => handler.GetKeyAsync(c, id))).WithName("GetKey");
        admin.MapMethods("/keys/{id}", ["PATCH"], (HttpContext context, string id, AdminHandler handler) => handler.RunAsync(context, c => handler.UpdateKeyAsync(c, id))).WithName("UpdateKey");
        admin.MapDelete("/keys/{id}", (HttpContext context, string id, AdminHandler handler) => handler.RunAsync(context, c => handler.RevokeKeyAsync(c, id))).WithName("RevokeKey");
        admin.MapGet("/usage", (HttpContext context, AdminHandler handler) => handler.RunAsync(context, handler.UsageAsync)).WithName("GetUsage");
        return endpoints;
    }
}

/// <summary>The admin API: keys (stored hashed, the secret shown once) and usage from the ledger.</summary>
internal sealed partial class AdminHandler(
    IOptions<AdminOptions> adminOptions,
    IOptions<LedgerOptions> ledgerOptions,
    IApiKeyAuthenticator userKeys,
    LedgerStore store,
    ManagedKeyCache cache,
    TimeProvider time,
    ILogger<AdminHandler> logger)
{
    /// <summary>Prefix of every managed key's secret.</summary>
    public const string SecretPrefix = "sk-gw-";

    private readonly byte[]? _adminHash = string.IsNullOrEmpty(adminOptions.Value.ApiKeySha256) ? null : Convert.FromHexString(adminOptions.Value.ApiKeySha256);

    public async Task RunAsync(HttpContext context, Func<HttpContext, Task> action)
    {
        try
        {
            Authorize(context);
            if (!ledgerOptions.Value.Enabled)
            {
                throw new GatewayException(GatewayError.BackendUnavailable,
                    "The admin API needs the key and usage database: set Gateway:Ledger:ConnectionString (or ConnectionStrings:ledger).", null, "ledger_not_configured");
            }
            await action(context).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException or InvalidOperationException && !context.RequestAborted.IsCancellationRequested)
        {
            LogDatabaseFailed(logger, ex, context.Request.Path);
            await OpenAiErrors.WriteAsync(context, new GatewayException(GatewayError.BackendUnavailable,
                "The key and usage database did not answer: " + ex.Message, null, "database_unavailable", TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        }
    }

    private void Authorize(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (_adminHash is not null && header.Length > scheme.Length && header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            var presented = Convert.FromHexString(ManagedKeyCache.Hash(header.AsSpan(scheme.Length).Trim()));
            if (CryptographicOperations.FixedTimeEquals(presented, _adminHash))
            {
                return;
            }
        }
        if (header.Length > 0 && userKeys.Authenticate(header) is not null)
        {
            throw new GatewayException(GatewayError.PermissionDenied,
                "This is a user API key; the admin API needs the admin key.", null, "admin_key_required");
        }
        throw new GatewayException(GatewayError.Unauthenticated,
            header.Length == 0
                ? "You did not provide an admin key. Send it as the header Authorization: Bearer YOUR_ADMIN_KEY."
                : "Incorrect admin key provided.",
            null, "invalid_api_key");
    }

    public async Task CreateKeyAsync(HttpContext context)
    {
        var body = await ReadAsync(context, AdminJsonContext.Default.KeyRequest).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(body.Name))
        {
            throw Invalid("name", "name is required.");
        }
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var secret = SecretPrefix + Base64Url(RandomNumberGenerator.GetBytes(32));
        var key = Validate(body, new ManagedKey
        {
            Id = "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)),
            Name = body.Name.Trim(),
            Tenant = "default",
            SecretSha256 = ManagedKeyCache.Hash(secret),
            SecretPrefix = secret[..(SecretPrefix.Length + 4)],
            AllowedModels = ["*"],
            CreatedAtMs = now,
            UpdatedAtMs = now,
        });
        await store.InsertKeyAsync(key, context.RequestAborted).ConfigureAwait(false);
        await cache.RefreshAsync(context.RequestAborted).ConfigureAwait(false);
        LogKeyCreated(logger, key.Id, key.Name, key.Tenant);
        var shown = ToObject(key, 0);
        shown.Key = secret;
        context.Response.StatusCode = StatusCodes.Status201Created;
        context.Response.Headers.Location = $"/admin/v1/keys/{key.Id}";
        await context.Response.WriteAsJsonAsync(shown, AdminJsonContext.Default.KeyObject, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task ListKeysAsync(HttpContext context)
    {
        var (keys, totals) = await store.LoadAsync(ManagedKeyCache.CurrentMonth(time.GetUtcNow()), context.RequestAborted).ConfigureAwait(false);
        var list = new KeyList { Data = [.. keys.Select(k => ToObject(k, totals.GetValueOrDefault(k.Id)))] };
        await context.Response.WriteAsJsonAsync(list, AdminJsonContext.Default.KeyList, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task GetKeyAsync(HttpContext context, string id)
    {
        var (key, used) = await FindAsync(id, context.RequestAborted).ConfigureAwait(false);
        await context.Response.WriteAsJsonAsync(ToObject(key, used), AdminJsonContext.Default.KeyObject, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task UpdateKeyAsync(HttpContext context, string id)
    {
        var body = await ReadAsync(context, AdminJsonContext.Default.KeyRequest).ConfigureAwait(false);
        var (existing, used) = await FindAsync(id, context.RequestAborted).ConfigureAwait(false);
        if (body.Name is { } name && string.IsNullOrWhiteSpace(name))
        {
            throw Invalid("name", "name must not be empty.");
        }
        var key = Validate(body, existing with { Name = body.Name?.Trim() ?? existing.Name, UpdatedAtMs = time.GetUtcNow().ToUnixTimeMilliseconds() });
        await store.UpdateKeyAsync(key, context.RequestAborted).ConfigureAwait(false);
        await cache.RefreshAsync(context.RequestAborted).ConfigureAwait(false);
        await context.Response.WriteAsJsonAsync(ToObject(key, used), AdminJsonContext.Default.KeyObject, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task RevokeKeyAsync(HttpContext context, string id)
    {
        if (!await store.RevokeKeyAsync(id, time.GetUtcNow().ToUnixTimeMilliseconds(), context.RequestAborted).ConfigureAwait(false))
        {
            throw NoSuchKey(id);
        }
        await cache.RefreshAsync(context.RequestAborted).ConfigureAwait(false);
        LogKeyRevoked(logger, id);
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    public async Task UsageAsync(HttpContext context)
    {
        var query = context.Request.Query;
        static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
        var byDay = false;
        var byModel = false;
        var byKey = false;
        foreach (var part in (query["group_by"].ToString()).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            switch (part)
            {
                case "day": byDay = true; break;
                case "model": byModel = true; break;
                case "key": byKey = true; break;
                default: throw Invalid("group_by", $"group_by '{part}' is not one of day, model, key (comma-separated for several).");
            }
        }
        var usage = new UsageQuery
        {
            KeyId = Text(query["key_id"]),
            Tenant = Text(query["tenant"]),
            Model = Text(query["model"]),
            FromMs = ParseTime(query["from"], "from"),
            ToMs = ParseTime(query["to"], "to"),
            ByDay = byDay,
            ByModel = byModel,
            ByKey = byKey,
        };
        var rows = await store.QueryUsageAsync(usage, context.RequestAborted).ConfigureAwait(false);
        var list = new UsageList
        {
            Data = [.. rows.Select(r => new UsageItem
            {
                KeyId = r.KeyId,
                Tenant = r.Tenant,
                Model = r.Model,
                Period = r.Period,
                Requests = r.Requests,
                PromptTokens = r.PromptTokens,
                CompletionTokens = r.CompletionTokens,
                Cancelled = r.Cancelled,
                Failed = r.Failed,
                Refused = r.Refused,
            })],
        };
        await context.Response.WriteAsJsonAsync(list, AdminJsonContext.Default.UsageList, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>ISO 8601 (a date is its UTC midnight) or Unix seconds.</summary>
    private static long? ParseTime(string? value, string param)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        if (long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return seconds * 1000;
        }
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
        {
            return time.ToUnixTimeMilliseconds();
        }
        throw Invalid(param, $"{param} must be an ISO 8601 date or time, or Unix seconds.");
    }

    private async Task<(ManagedKey Key, long Used)> FindAsync(string id, CancellationToken cancellationToken)
    {
        var (keys, totals) = await store.LoadAsync(ManagedKeyCache.CurrentMonth(time.GetUtcNow()), cancellationToken).ConfigureAwait(false);
        var key = keys.Find(k => k.Id == id) ?? throw NoSuchKey(id);
        return (key, totals.GetValueOrDefault(id));
    }

    private static ManagedKey Validate(KeyRequest body, ManagedKey key)
    {
        if (body.Tenant is { } tenant)
        {
            key = string.IsNullOrWhiteSpace(tenant) ? throw Invalid("tenant", "tenant must not be empty.") : key with { Tenant = tenant.Trim() };
        }
        if (body.AllowedModels is { } models)
        {
            key = models.Count == 0 || models.Any(string.IsNullOrWhiteSpace)
                ? throw Invalid("allowed_models", "allowed_models must list model ids, or [\"*\"] for every model.")
                : key with { AllowedModels = [.. models.Select(m => m.Trim())] };
        }
        if (body.RequestsPerMinute is { } rpm)
        {
            key = rpm < 0 ? throw Invalid("requests_per_minute", "requests_per_minute must not be negative (0 = unlimited).") : key with { RequestsPerMinute = rpm };
        }
        if (body.TokensPerMinute is { } tpm)
        {
            key = tpm < 0 ? throw Invalid("tokens_per_minute", "tokens_per_minute must not be negative (0 = unlimited).") : key with { TokensPerMinute = tpm };
        }
        if (body.MonthlyTokenBudget is { } budget)
        {
            key = budget < 0 ? throw Invalid("monthly_token_budget", "monthly_token_budget must not be negative (0 = no budget).") : key with { MonthlyTokenBudget = budget };
        }
        if (body.ExpiresAt is { } expires)
        {
            key = expires <= 0 ? throw Invalid("expires_at", "expires_at must be Unix seconds.") : key with { ExpiresAtMs = expires * 1000 };
        }
        return key;
    }

    private static KeyObject ToObject(ManagedKey key, long used) => new()
    {
        Id = key.Id,
        RedactedKey = key.SecretPrefix + "…",
        Name = key.Name,
        Tenant = key.Tenant,
        AllowedModels = key.AllowedModels,
        RequestsPerMinute = key.RequestsPerMinute,
        TokensPerMinute = key.TokensPerMinute,
        MonthlyTokenBudget = key.MonthlyTokenBudget,
        MonthTokensUsed = used,
        ExpiresAt = key.ExpiresAtMs / 1000,
        CreatedAt = key.CreatedAtMs / 1000,
        RevokedAt = key.RevokedAtMs / 1000,
    };

    private static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo) where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(context.Request.Body, typeInfo, context.RequestAborted).ConfigureAwait(false)
                ?? throw Invalid(null, "The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            var param = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
            throw Invalid(param, param is null ? "We could not parse the JSON body of your request." : $"Invalid value or unknown field '{param}'.");
        }
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static GatewayException Invalid(string? param, string message) => new(GatewayError.InvalidRequest, message, param, "invalid_value");

    private static GatewayException NoSuchKey(string id) => new(GatewayError.ModelNotFound, $"No API key with id '{id}'.", "id", "key_not_found");

    [LoggerMessage(Level = LogLevel.Information, Message = "API key {KeyId} ({Name}, tenant {Tenant}) created")]
    private static partial void LogKeyCreated(ILogger logger, string keyId, string name, string tenant);

    [LoggerMessage(Level = LogLevel.Information, Message = "API key {KeyId} revoked")]
    private static partial void LogKeyRevoked(ILogger logger, string keyId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Admin API: the database failed on {Path}")]
    private static partial void LogDatabaseFailed(ILogger logger, Exception exception, string path);
}
