using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Web.Admin;

/// <summary>A key as the gateway's admin API lists it.</summary>
public sealed class AdminKey
{
    public string Id { get; set; } = "";
    public string? Key { get; set; }
    public string RedactedKey { get; set; } = "";
    public string Name { get; set; } = "";
    public string Tenant { get; set; } = "";
    public List<string> AllowedModels { get; set; } = [];
    public int RequestsPerMinute { get; set; }
    public int TokensPerMinute { get; set; }
    public long MonthlyTokenBudget { get; set; }
    public long MonthTokensUsed { get; set; }
    public long? ExpiresAt { get; set; }
    public long CreatedAt { get; set; }
    public long? RevokedAt { get; set; }
}

/// <summary>One usage row of <c>/admin/v1/usage</c>.</summary>
public sealed class AdminUsage
{
    public string? KeyId { get; set; }
    public string? Tenant { get; set; }
    public string? Model { get; set; }
    public string? Period { get; set; }
    public long Requests { get; set; }
    public long PromptTokens { get; set; }
    public long CompletionTokens { get; set; }
    public long Cancelled { get; set; }
    public long Failed { get; set; }
    public long Refused { get; set; }
}

internal sealed class AdminList<T>
{
    public List<T> Data { get; set; } = [];
}

internal sealed class AdminKeyRequest
{
    public required string Name { get; set; }
    public string? Tenant { get; set; }
    public long? MonthlyTokenBudget { get; set; }
}

/// <summary>The admin API refused or failed: its OpenAI-shaped message.</summary>
public sealed class AdminApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AdminKey))]
[JsonSerializable(typeof(AdminList<AdminKey>))]
[JsonSerializable(typeof(AdminList<AdminUsage>))]
[JsonSerializable(typeof(AdminKeyRequest))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;

/// <summary>
/// The gateway's REST admin API (<c>/admin/v1</c>) for the usage page. The admin key is the
/// signed-in admin's, passed per call from the page's circuit: the web app holds none of its own.
/// </summary>
public sealed class GatewayAdminClient(HttpClient http)
{
    public Task<List<AdminKey>> ListKeysAsync(string adminKey, CancellationToken cancellationToken) =>
        GetListAsync(adminKey, "/admin/v1/keys", AdminJsonContext.Default.AdminListAdminKey, cancellationToken);

    public Task<List<AdminUsage>> UsageAsync(string adminKey, string groupBy, CancellationToken cancellationToken) =>
        GetListAsync(adminKey, "/admin/v1/usage?group_by=" + Uri.EscapeDataString(groupBy), AdminJsonContext.Default.AdminListAdminUsage, cancellationToken);

    public async Task<AdminKey> CreateKeyAsync(string adminKey, string name, string? tenant, long? budget, CancellationToken cancellationToken)
    {
        using var request = Request(HttpMethod.Post, "/admin/v1/keys", adminKey);
        request.Content = JsonContent.Create(new AdminKeyRequest { Name = name, Tenant = string.IsNullOrWhiteSpace(tenant) ? null : tenant, MonthlyTokenBudget = budget },
            AdminJsonContext.Default.AdminKeyRequest);
        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, cancellationToken).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(AdminJsonContext.Default.AdminKey, cancellationToken).ConfigureAwait(false))!;
    }

    public async Task RevokeKeyAsync(string adminKey, string id, CancellationToken cancellationToken)
    {
        using var request = Request(HttpMethod.Delete, "/admin/v1/keys/" + Uri.EscapeDataString(id), adminKey);
        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private async Task<List<T>> GetListAsync<T>(string adminKey, string path, System.Text.Json.Serialization.Metadata.JsonTypeInfo<AdminList<T>> type, CancellationToken cancellationToken)
    {
        using var request = Request(HttpMethod.Get, path, adminKey);
        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, cancellationToken).ConfigureAwait(false);
        return (await response.Content.ReadFromJsonAsync(type, cancellationToken).ConfigureAwait(false))?.Data ?? [];
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string adminKey)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        return request;
    }

    private static async Task EnsureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        var message = $"The gateway answered {(int)response.StatusCode}.";
        try
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
            message = body.RootElement.GetProperty("error").GetProperty("message").GetString() ?? message;
        }
        catch (JsonException)
        {
        }
        catch (KeyNotFoundException)
        {
        }
        throw new AdminApiException((int)response.StatusCode, message);
    }
}
