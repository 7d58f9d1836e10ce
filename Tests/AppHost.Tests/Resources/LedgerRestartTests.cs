using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;

namespace AppHost.Tests.Resources;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LedgerRestartCollection
{
    public const string Name = "LedgerRestart";
}

/// <summary>
/// Keys and usage live in the AppHost's PostgreSQL (here the local postgres executable: no container
/// engine answers in the test): a key made through the admin API, its usage and a revocation are
/// all still there after the whole AppHost stops and starts again on the same data directory.
/// </summary>
[Collection(LedgerRestartCollection.Name)]
public sealed class LedgerRestartTests
{
    private static async Task<DistributedApplication> StartAsync(string state, string mode)
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            ["DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", "Triton:Profile=zero-latency", "Triton:Replicas=1",
             $"Postgres:StateDirectory={state}", $"Postgres:Mode={mode}"]);
        var app = await builder.BuildAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await app.StartAsync(cts.Token);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("gateway", cts.Token);
        return app;
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string key, string? json = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        return request;
    }

    private static async Task<JsonElement> UsageAsync(HttpClient http, string keyId, long requests)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            using var response = await http.SendAsync(Request(HttpMethod.Get, $"/admin/v1/usage?key_id={keyId}", GatewayResourceExtensions.DevAdminKey));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, body);
            var data = JsonDocument.Parse(body).RootElement.GetProperty("data").Clone();
            if ((data.GetArrayLength() == 1 && data[0].GetProperty("requests").GetInt64() >= requests) || DateTime.UtcNow > deadline)
            {
                return data;
            }
            await Task.Delay(100);
        }
    }

    [Theory]
    [InlineData("Executable")]
    [InlineData("Embedded")]
    public async Task KeyUsageAndRevocation_SurviveAnAppHostRestart(string mode)
    {
        if (mode == "Executable" && !File.Exists("/usr/lib/postgresql/15/bin/postgres") && !Directory.Exists("/usr/lib/postgresql"))
        {
            Assert.Fail("postgresql is not installed: run test.sh (apt-get install postgresql).");
        }
        using var directory = new TestStateDirectory();
        var state = directory.Path;
        string keptId, kept, revokedId, revoked;
        await using (var app = await StartAsync(state, mode))
        {
            using var http = app.CreateHttpClient("gateway", "http");
            (keptId, kept) = await CreateAsync(http, "kept");
            (revokedId, revoked) = await CreateAsync(http, "revoked");
            using (var completion = await http.SendAsync(Request(HttpMethod.Post, "/v1/completions", kept, """{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""")))
            {
                Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
            }
            using (var delete = await http.SendAsync(Request(HttpMethod.Delete, $"/admin/v1/keys/{revokedId}", GatewayResourceExtensions.DevAdminKey)))
            {
                Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            }
            Assert.Equal(1, (await UsageAsync(http, keptId, 1))[0].GetProperty("requests").GetInt64());
        }
        await using (var again = await StartAsync(state, mode))
        {
            using var http = again.CreateHttpClient("gateway", "http");
            var usage = await UsageAsync(http, keptId, 1);
            Assert.Equal(1, usage[0].GetProperty("requests").GetInt64());
            using (var completion = await http.SendAsync(Request(HttpMethod.Post, "/v1/completions", kept, """{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""")))
            {
                Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
            }
            using (var refused = await http.SendAsync(Request(HttpMethod.Post, "/v1/completions", revoked, """{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""")))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            }
            Assert.Equal(2, (await UsageAsync(http, keptId, 2))[0].GetProperty("requests").GetInt64());
        }
    }

    private static async Task<(string Id, string Secret)> CreateAsync(HttpClient http, string name)
    {
        using var response = await http.SendAsync(Request(HttpMethod.Post, "/admin/v1/keys", GatewayResourceExtensions.DevAdminKey, $$"""{"name":"{{name}}"}"""));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        using var document = JsonDocument.Parse(body);
        return (document.RootElement.GetProperty("id").GetString()!, document.RootElement.GetProperty("key").GetString()!);
    }
}
