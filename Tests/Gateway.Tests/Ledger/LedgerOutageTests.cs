using System.Net;
using Gateway.Tests.EndToEnd;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using Npgsql;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Ledger;

/// <summary>The ledger's writer while PostgreSQL is down: rows spill to a file and reach the database once it is back, once each.</summary>
public sealed class LedgerOutageTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IAsyncLifetime
{
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
    }

    private static async Task<long> CountAsync(string database, string tenant)
    {
        await using var connection = new NpgsqlConnection(database + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM usage_records WHERE tenant = @tenant", connection);
        command.Parameters.AddWithValue("tenant", tenant);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<long> WaitForCountAsync(string database, string tenant, long expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            long count;
            try
            {
                count = await CountAsync(database, tenant);
            }
            catch (NpgsqlException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
                continue;
            }
            if (count >= expected || DateTime.UtcNow > deadline)
            {
                return count;
            }
            await Task.Delay(50);
        }
    }

    private static async Task SendAsync(GatewayHost gateway, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await gateway.Http.SendAsync(LedgerTestHost.Completion(TestKeys.Full, """{"model":"gpt-j-6b","prompt":"Hi","max_tokens":2}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task DatabaseDown_RequestsStillServed_RowsSpillAndAreWrittenOnceWhenItIsBack()
    {
        var database = await postgres.CreateDatabaseAsync();
        var spill = Path.Combine(Path.GetTempPath(), "gateway-spill-" + Guid.NewGuid().ToString("N"));
        await using var gateway = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, database, spillDirectory: spill);
        await SendAsync(gateway, 5);
        Assert.Equal(5, await WaitForCountAsync(database, "tenant-full", 5));

        await postgres.StopAsync();
        await SendAsync(gateway, 20); // served while the database is down
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!Directory.EnumerateFiles(spill, "spill-*").Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.NotEmpty(Directory.EnumerateFiles(spill, "spill-*"));

        await postgres.StartAsync();
        await SendAsync(gateway, 1); // a write that succeeds replays the spill files
        Assert.Equal(26, await WaitForCountAsync(database, "tenant-full", 26));
        deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (Directory.EnumerateFiles(spill).Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.Empty(Directory.EnumerateFiles(spill));
        Assert.Equal(26, await CountAsync(database, "tenant-full"));
    }

    [Fact]
    public async Task SpillFiles_LeftByAnotherProcess_IncludingOneItDiedReplaying_AreWrittenOnce()
    {
        var database = await postgres.CreateDatabaseAsync();
        var spill = Directory.CreateTempSubdirectory("gateway-spill-").FullName;
        string Line(string id) => System.Text.Json.JsonSerializer.Serialize(new global::Gateway.Ledger.UsageRecord
        {
            RequestId = id, KeyId = "static:left", KeyName = "left", Tenant = "tenant-left", Model = "gpt-j-6b", Operation = "chat",
            Gateway = "gone", Status = global::Gateway.Ledger.UsageStatus.Ok, PromptTokens = 3, CompletionTokens = 5, DurationMs = 1, StartedAtMs = 1_700_000_000_000,
        }, global::Gateway.Ledger.LedgerJsonContext.Default.UsageRecord);
        // One plain spill file, one claimed by a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max), a cut last line.
        await File.WriteAllTextAsync(Path.Combine(spill, "spill-old-1.jsonl"), Line("left-1") + "\n" + Line("left-2") + "\n{\"request_id\":\"cut");
        await File.WriteAllTextAsync(Path.Combine(spill, "spill-old-2.jsonl.replaying-4194305"), Line("left-3") + "\n" + Line("left-1") + "\n");
        await using var gateway = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, database, spillDirectory: spill);
        await SendAsync(gateway, 1);
        Assert.Equal(3, await WaitForCountAsync(database, "tenant-left", 3));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (Directory.EnumerateFiles(spill).Any() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.Empty(Directory.EnumerateFiles(spill));
        Assert.Equal(3, await CountAsync(database, "tenant-left"));
    }

    [Fact]
    public async Task GracefulStop_WhileTheDatabaseIsDown_LosesNoRow_TheNextStartWritesThem()
    {
        var database = await postgres.CreateDatabaseAsync();
        var spill = Path.Combine(Path.GetTempPath(), "gateway-spill-" + Guid.NewGuid().ToString("N"));
        var triton = _emulator.GetEndpoints().Grpc;
        await using (var gateway = await LedgerTestHost.StartAsync(triton, database, spillDirectory: spill))
        {
            await postgres.StopAsync();
            await SendAsync(gateway, 10);
        } // stopped with the database down: every row is in the spill file
        Assert.NotEmpty(Directory.EnumerateFiles(spill, "spill-*"));
        await postgres.StartAsync();
        await using (var restarted = await LedgerTestHost.StartAsync(triton, database, spillDirectory: spill))
        {
            await SendAsync(restarted, 1);
            Assert.Equal(11, await WaitForCountAsync(database, "tenant-full", 11));
        }
        Assert.Equal(11, await CountAsync(database, "tenant-full"));
    }
}
