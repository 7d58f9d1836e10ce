using System.ClientModel;
using System.Net;
using System.Text.Json;
using Gateway.Tests.EndToEnd;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Ledger;

/// <summary>The admin API and per-key enforcement on a real PostgreSQL, a real TritonEmulator and the official OpenAI SDK.</summary>
public sealed class AdminApiTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IAsyncLifetime
{
    private WebApplication _emulator = null!;
    private GatewayHost _gateway = null!;
    private string _database = null!;

    public async Task InitializeAsync()
    {
        _emulator = EmulatorHost.BuildEmulator("zero-latency");
        await _emulator.StartAsync();
        _database = await postgres.CreateDatabaseAsync();
        _gateway = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, _database);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _emulator.StopAsync(new CancellationToken(canceled: true));
        await _emulator.DisposeAsync();
    }

    private ChatClient Client(string key, string model = "gpt-j-6b") =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(_gateway.Endpoints.Rest, "v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    [Fact]
    public async Task AdminRoutes_WithoutOrWithWrongKey_Are401_WithUserKey_403()
    {
        foreach (var (key, status) in new[] { ((string?)null, HttpStatusCode.Unauthorized), ("sk-wrong", HttpStatusCode.Unauthorized), (TestKeys.Full, HttpStatusCode.Forbidden) })
        {
            using var request = LedgerTestHost.Admin(HttpMethod.Get, "/admin/v1/keys", key: key);
            if (key is null)
            {
                _gateway.Http.DefaultRequestHeaders.Authorization = null;
            }
            using var response = await _gateway.Http.SendAsync(request);
            _gateway.Http.DefaultRequestHeaders.Authorization = new("Bearer", TestKeys.Full);
            Assert.Equal(status, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(status == HttpStatusCode.Forbidden ? "permission_error" : "invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(status == HttpStatusCode.Forbidden ? "admin_key_required" : "invalid_api_key", error.GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task CreatedKey_IsShownOnce_StoredHashed_AndWorksWithTheSdk()
    {
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"team-a","tenant":"acme","allowed_models":["*"]}""");
        Assert.StartsWith("sk-gw-", secret, StringComparison.Ordinal);

        var listed = await LedgerTestHost.GetJsonAsync(_gateway, "/admin/v1/keys");
        var entry = Assert.Single(listed.GetProperty("data").EnumerateArray(), k => k.GetProperty("id").GetString() == id);
        Assert.False(entry.TryGetProperty("key", out _));
        Assert.Equal("acme", entry.GetProperty("tenant").GetString());
        var one = await LedgerTestHost.GetJsonAsync(_gateway, $"/admin/v1/keys/{id}");
        Assert.False(one.TryGetProperty("key", out _));
        Assert.Equal("team-a", one.GetProperty("name").GetString());

        // Only the hash is in the database.
        await using (var connection = new NpgsqlConnection(_database))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM api_keys WHERE secret_sha256 = @hash AND position(@secret in (id || name || tenant || secret_sha256 || secret_prefix || allowed_models)) = 0", connection);
            command.Parameters.AddWithValue("hash", Gateway.Auth.ApiKeyHash.ToHex(secret));
            command.Parameters.AddWithValue("secret", secret);
            Assert.Equal(1L, (long)(await command.ExecuteScalarAsync())!);
        }

        ChatCompletion completion = await Client(secret).CompleteChatAsync([new UserChatMessage("Hello there")], new ChatCompletionOptions { MaxOutputTokenCount = 6 });
        var rows = await LedgerTestHost.WaitForUsageAsync(_gateway, $"key_id={id}&group_by=key", r => r.Length == 1 && r[0].Long("requests") == 1);
        var row = Assert.Single(rows);
        Assert.Equal("acme", row.GetProperty("tenant").GetString());
        Assert.Equal(completion.Usage.InputTokenCount, row.Long("prompt_tokens"));
        Assert.Equal(completion.Usage.OutputTokenCount, row.Long("completion_tokens"));
    }

    [Fact]
    public async Task StreamedUsage_IsExactlyWhatTheUsageChunkReported()
    {
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"streamer"}""");
        ChatTokenUsage? usage = null;
        var text = new System.Text.StringBuilder();
        await foreach (var update in Client(secret).CompleteChatStreamingAsync([new UserChatMessage("Tell me a story")], new ChatCompletionOptions { MaxOutputTokenCount = 12 }))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            usage = update.Usage ?? usage;
        }
        Assert.NotNull(usage);
        var rows = await LedgerTestHost.WaitForUsageAsync(_gateway, $"key_id={id}", r => r.Length == 1 && r[0].Long("requests") == 1);
        var row = Assert.Single(rows);
        Assert.Equal(usage.InputTokenCount, row.Long("prompt_tokens"));
        Assert.Equal(usage.OutputTokenCount, row.Long("completion_tokens"));
        Assert.Equal(0, row.Long("cancelled"));
    }

    [Fact]
    public async Task RevokedKey_Is401InvalidApiKey_AndItsUsageStaysVisible()
    {
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"short-lived","tenant":"t-revoke"}""");
        using (var ok = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":3}""")))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var revoke = LedgerTestHost.Admin(HttpMethod.Delete, $"/admin/v1/keys/{id}"))
        using (var revoked = await _gateway.Http.SendAsync(revoke))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }
        using (var refused = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":3}""")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            using var body = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("invalid_api_key", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        var rows = await LedgerTestHost.WaitForUsageAsync(_gateway, "tenant=t-revoke&group_by=key", r => r.Length == 1 && r[0].Long("refused") == 1 && r[0].Long("requests") == 1);
        var row = Assert.Single(rows);
        Assert.Equal(id, row.GetProperty("key_id").GetString());
        Assert.Equal(1, row.Long("requests"));
        Assert.Equal(1, row.Long("refused"));
        var key = await LedgerTestHost.GetJsonAsync(_gateway, $"/admin/v1/keys/{id}");
        Assert.NotEqual(JsonValueKind.Null, key.GetProperty("revoked_at").ValueKind);
    }

    [Fact]
    public async Task ModelOutsideTheAllowList_Is404LikeAnUnknownModel()
    {
        var (_, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"narrow","allowed_models":["some-other-model"]}""");
        using var response = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":3}"""));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("model_not_found", body.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task SpentBudget_Is429BudgetExceeded_UntilTheBudgetIsRaised()
    {
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"budgeted","tenant":"t-budget","monthly_token_budget":1}""");
        using (var first = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hello world","max_tokens":4}""")))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode); // a budget not yet spent admits the request that spends it
        }
        // The row is billed after the answer; once it is in, the budget is spent.
        await LedgerTestHost.WaitForUsageAsync(_gateway, "tenant=t-budget", r => r.Length == 1 && r[0].Long("requests") == 1);
        using (var second = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hello world","max_tokens":4}""")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
            using var body = JsonDocument.Parse(await second.Content.ReadAsStringAsync());
            var error = body.RootElement.GetProperty("error");
            Assert.Equal("budget_exceeded", error.GetProperty("code").GetString());
            Assert.Contains("monthly token budget", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        using (var raise = LedgerTestHost.Admin(HttpMethod.Patch, $"/admin/v1/keys/{id}", """{"monthly_token_budget":1000000}"""))
        using (var raised = await _gateway.Http.SendAsync(raise))
        {
            Assert.Equal(HttpStatusCode.OK, raised.StatusCode);
        }
        using (var third = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hello world","max_tokens":4}""")))
        {
            Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        }
        var rows = await LedgerTestHost.WaitForUsageAsync(_gateway, "tenant=t-budget", r => r.Length == 1 && r[0].Long("requests") == 2 && r[0].Long("refused") == 1);
        Assert.Equal(2, rows[0].Long("requests"));
        Assert.Equal(1, rows[0].Long("refused"));
    }

    [Fact]
    public async Task RequestsPerMinute_RaisedThroughPatch_AppliesToTheKeysNextRequest_WithoutARestart()
    {
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"rpm-patched","requests_per_minute":1}""");
        async Task<HttpStatusCode> CompleteAsync()
        {
            using var response = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":1}"""));
            return response.StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync());
        Assert.Equal(HttpStatusCode.TooManyRequests, await CompleteAsync()); // 1 RPM spent

        using (var raise = LedgerTestHost.Admin(HttpMethod.Patch, $"/admin/v1/keys/{id}", """{"requests_per_minute":3}"""))
        using (var raised = await _gateway.Http.SendAsync(raise))
        {
            Assert.Equal(HttpStatusCode.OK, raised.StatusCode);
        }
        // The replica that took the PATCH applies it at once; the minute's first request still counts.
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync());
        Assert.Equal(HttpStatusCode.OK, await CompleteAsync());
        Assert.Equal(HttpStatusCode.TooManyRequests, await CompleteAsync());
    }

    [Fact]
    public async Task Usage_GroupsByDayModelAndKey_AndRejectsUnknownGroups()
    {
        var (a, secretA) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"g-a","tenant":"t-group"}""");
        var (b, secretB) = await LedgerTestHost.CreateKeyAsync(_gateway, """{"name":"g-b","tenant":"t-group"}""");
        foreach (var secret in new[] { secretA, secretA, secretB })
        {
            using var response = await _gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":2}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        var byKey = await LedgerTestHost.WaitForUsageAsync(_gateway, "tenant=t-group&group_by=key", r => r.Sum(x => x.Long("requests")) == 3);
        Assert.Equal(2, byKey.Single(r => r.GetProperty("key_id").GetString() == a).Long("requests"));
        Assert.Equal(1, byKey.Single(r => r.GetProperty("key_id").GetString() == b).Long("requests"));
        var byDayAndModel = await LedgerTestHost.GetJsonAsync(_gateway, "/admin/v1/usage?tenant=t-group&group_by=day,model");
        var row = Assert.Single(byDayAndModel.GetProperty("data").EnumerateArray());
        Assert.Equal("gpt-j-6b", row.GetProperty("model").GetString());
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), row.GetProperty("period").GetString());
        Assert.Equal(3, row.Long("requests"));
        var future = await LedgerTestHost.GetJsonAsync(_gateway, "/admin/v1/usage?tenant=t-group&from=2999-01-01");
        Assert.Empty(future.GetProperty("data").EnumerateArray());

        using var bad = LedgerTestHost.Admin(HttpMethod.Get, "/admin/v1/usage?group_by=week");
        using var refused = await _gateway.Http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
    }
}
