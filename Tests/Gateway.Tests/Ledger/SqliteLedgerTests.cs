using System.Net;
using Gateway.Tests.EndToEnd;
using Microsoft.AspNetCore.Builder;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Ledger;

/// <summary>The embedded default: keys and the ledger in a local SQLite file, the same API and SQL migrations.</summary>
public sealed class SqliteLedgerTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gateway-sqlite-" + Guid.NewGuid().ToString("N"));
    private WebApplication _emulator = null!;

    public async Task InitializeAsync()
    {
        _emulator = EmulatorHost.BuildEmulator("zero-latency");
        await _emulator.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _emulator.StopAsync(new CancellationToken(canceled: true));
        await _emulator.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task SqliteFile_KeysUsageAndRateLimits_SurviveARestart()
    {
        var connection = $"Data Source={Path.Combine(_directory, "ledger.db")}";
        string id, secret;
        await using (var gateway = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, connection))
        {
            (id, secret) = await LedgerTestHost.CreateKeyAsync(gateway, """{"name":"local","tenant":"t-sqlite","requests_per_minute":1}""");
            using (var ok = await gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":3}""")))
            {
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }
            // The key's own RPM (1) through the shared quota limiter.
            using (var limited = await gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":3}""")))
            {
                Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            }
            await LedgerTestHost.WaitForUsageAsync(gateway, "tenant=t-sqlite", r => r.Length == 1 && r[0].Long("refused") == 1);
        }
        await using (var restarted = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, connection))
        {
            var rows = await LedgerTestHost.WaitForUsageAsync(restarted, $"key_id={id}", r => r.Length == 1);
            var row = Assert.Single(rows);
            Assert.Equal(1, row.Long("requests"));
            Assert.Equal(1, row.Long("refused"));
            Assert.True(row.Long("completion_tokens") > 0);
            using var models = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            models.Headers.Authorization = new("Bearer", secret);
            using var response = await restarted.Http.SendAsync(models);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }
}
