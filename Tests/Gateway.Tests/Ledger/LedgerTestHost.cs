using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Tests.Functional;

namespace Gateway.Tests.Ledger;

/// <summary>Gateways with the ledger on a given database, and admin API helpers.</summary>
internal static class LedgerTestHost
{
    public const string AdminKey = "sk-admin-test";

    public static Task<GatewayHost> StartAsync(Uri triton, string connectionString, IDictionary<string, string?>? extra = null, string? spillDirectory = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Ledger:ConnectionString"] = connectionString,
            ["Gateway:Ledger:FlushInterval"] = "00:00:00.020",
            ["Gateway:Ledger:KeyRefreshInterval"] = "00:00:01",
            ["Gateway:Ledger:SpillDirectory"] = spillDirectory ?? Path.Combine(Path.GetTempPath(), "gateway-spill-" + Guid.NewGuid().ToString("N")),
            ["Gateway:Admin:ApiKeySha256"] = ApiKeyHash.ToHex(AdminKey),
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
        return GatewayHost.StartAsync(triton, settings);
    }

    public static HttpRequestMessage Admin(HttpMethod method, string path, string? json = null, string? key = AdminKey)
    {
        var request = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        else
        {
            request.Headers.Authorization = null;
        }
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        return request;
    }

    /// <summary>Creates a key; returns its id and secret.</summary>
    public static async Task<(string Id, string Secret)> CreateKeyAsync(GatewayHost gateway, string json)
    {
        using var request = Admin(HttpMethod.Post, "/admin/v1/keys", json);
        using var response = await gateway.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, body);
        using var document = JsonDocument.Parse(body);
        return (document.RootElement.GetProperty("id").GetString()!, document.RootElement.GetProperty("key").GetString()!);
    }

    public static async Task<JsonElement> GetJsonAsync(GatewayHost gateway, string path)
    {
        using var request = Admin(HttpMethod.Get, path);
        using var response = await gateway.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Polls the usage endpoint until <paramref name="done"/> holds for its rows (the writer is asynchronous).</summary>
    public static async Task<JsonElement[]> WaitForUsageAsync(GatewayHost gateway, string query, Func<JsonElement[], bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var rows = (await GetJsonAsync(gateway, "/admin/v1/usage?" + query)).GetProperty("data").EnumerateArray().ToArray();
            if (done(rows) || DateTime.UtcNow > deadline)
            {
                return rows;
            }
            await Task.Delay(50);
        }
    }

    public static HttpRequestMessage Completion(string key, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return request;
    }

    public static long Long(this JsonElement element, string name) => element.GetProperty(name).GetInt64();
}
