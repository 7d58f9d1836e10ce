using System.Net;
using System.Text;
using Gateway.Tests.EndToEnd;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Ledger;

/// <summary>Abandoned streams and replicas: the TritonEmulator's A100 timing (tokens paced), two gateways on one PostgreSQL.</summary>
public sealed class LedgerStreamTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IAsyncLifetime
{
    private const string LongModel = "gpt-j-6b-long";
    private WebApplication _emulator = null!;
    private readonly Dictionary<string, string?> _models = [];

    public async Task InitializeAsync()
    {
        _emulator = EmulatorHost.BuildEmulator("a100-gptj-6b");
        await _emulator.StartAsync();
        foreach (var (key, value) in global::Gateway.Hosting.GatewayServiceCollectionExtensions.DefaultCatalog)
        {
            _models[key] = value;
            // The same Triton model with an end id it never produces: generation runs to max_tokens.
            _models[key.Replace("gpt-j-6b", LongModel, StringComparison.Ordinal)] = key.EndsWith(":EndId", StringComparison.Ordinal) ? "50255" : value;
        }
    }

    public async Task DisposeAsync()
    {
        await _emulator.StopAsync(new CancellationToken(canceled: true));
        await _emulator.DisposeAsync();
    }

    [Fact]
    public async Task AbandonedStream_BillsTheTokensGeneratedUntilTheDisconnect_NeverMaxTokens()
    {
        await using var gateway = await LedgerTestHost.StartAsync(_emulator.GetEndpoints().Grpc, await postgres.CreateDatabaseAsync(), _models);
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(gateway, """{"name":"abandoner"}""");
        const int maxTokens = 400;
        var received = 0;
        using (var request = LedgerTestHost.Completion(secret, $$"""{"model":"{{LongModel}}","prompt":"Once upon a time","max_tokens":{{maxTokens}},"stream":true}"""))
        using (var response = await gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (received < 5 && await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"text\":\"", StringComparison.Ordinal) && !line.Contains("\"text\":\"\"", StringComparison.Ordinal))
                {
                    received++;
                }
            }
        } // the client hangs up mid-stream
        var rows = await LedgerTestHost.WaitForUsageAsync(gateway, $"key_id={id}", r => r.Length == 1 && r[0].Long("cancelled") == 1);
        var row = Assert.Single(rows);
        Assert.Equal(1, row.Long("cancelled"));
        Assert.Equal(1, row.Long("requests"));
        var billed = row.Long("completion_tokens");
        Assert.InRange(billed, received, maxTokens / 4);
    }

    [Fact]
    public async Task AbandonedStream_BillsExactlyTheTokensSent_WhenTheClientHangsUpAfterTheLast()
    {
        // The engine sends seven tokens and then holds the stream open: everything it produced reaches the
        // client, so "what was sent" is known exactly; the client hangs up after reading all seven.
        var tokens = RestStreamingTests.Gpt2.Encode(" one two three four five six seven");
        Assert.Equal(7, tokens.Count);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync(tokens, finalFlag: false);
            await Task.Delay(Timeout.Infinite, call.Aborted);
        });
        await using var gateway = await LedgerTestHost.StartAsync(triton.Address, await postgres.CreateDatabaseAsync());
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(gateway, """{"name":"exact-abandoner"}""");
        var received = new StringBuilder();
        var chunks = 0;
        using (var request = LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Count:","max_tokens":400,"stream":true}"""))
        using (var response = await gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (received.ToString() != " one two three four five six seven" && await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    using var chunk = System.Text.Json.JsonDocument.Parse(line["data: ".Length..]);
                    var text = chunk.RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
                    if (!string.IsNullOrEmpty(text))
                    {
                        received.Append(text);
                        chunks++;
                    }
                }
            }
        } // every token the engine produced has been read; the client hangs up
        var call = await triton.FirstCall;
        await call.Cancelled.WaitAsync(TimeSpan.FromSeconds(10)); // generation stopped at the disconnect
        var rows = await LedgerTestHost.WaitForUsageAsync(gateway, $"key_id={id}", r => r.Length == 1 && r[0].Long("cancelled") == 1);
        var row = Assert.Single(rows);
        Assert.Equal(1, row.Long("requests"));
        Assert.Equal(7, chunks);
        Assert.Equal(chunks, row.Long("completion_tokens")); // billed = sent = received, not max_tokens
        Assert.Equal(RestStreamingTests.Gpt2.CountTokens("Count:"), row.Long("prompt_tokens"));
    }

    [Fact]
    public async Task Revocation_OnOneReplica_RefusesOnTheOtherWithinTheRefreshInterval()
    {
        var database = await postgres.CreateDatabaseAsync();
        var triton = _emulator.GetEndpoints().Grpc;
        await using var first = await LedgerTestHost.StartAsync(triton, database, _models);
        await using var second = await LedgerTestHost.StartAsync(triton, database, _models);
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(first, """{"name":"replicated"}""");

        async Task<HttpStatusCode> ModelsAsync(GatewayHost gateway)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Authorization = new("Bearer", secret);
            using var response = await gateway.Http.SendAsync(request);
            return response.StatusCode;
        }

        // Created on the first, known to the second within one refresh.
        Assert.Equal(HttpStatusCode.OK, await PollAsync(() => ModelsAsync(second), HttpStatusCode.OK));
        using (var revoke = LedgerTestHost.Admin(HttpMethod.Delete, $"/admin/v1/keys/{id}"))
        using (var revoked = await first.Http.SendAsync(revoke))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(first)); // at once where it was revoked
        Assert.Equal(HttpStatusCode.Unauthorized, await PollAsync(() => ModelsAsync(second), HttpStatusCode.Unauthorized));
        // KeyRefreshInterval is 1 s: the other replica refuses within it plus a query (the bound is 2 s; 3 s leaves room for a loaded CI machine).
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(3), $"the second replica took {started.Elapsed.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task BudgetSpentOnOneReplica_RefusesOnTheOther_AndARaiseReachesItWithinTheRefreshInterval()
    {
        var database = await postgres.CreateDatabaseAsync();
        var triton = _emulator.GetEndpoints().Grpc;
        await using var first = await LedgerTestHost.StartAsync(triton, database, _models);
        await using var second = await LedgerTestHost.StartAsync(triton, database, _models);
        var (id, secret) = await LedgerTestHost.CreateKeyAsync(first, """{"name":"budget-replicated","monthly_token_budget":1}""");

        async Task<HttpStatusCode> CompleteAsync(GatewayHost gateway)
        {
            using var response = await gateway.Http.SendAsync(LedgerTestHost.Completion(secret, """{"model":"gpt-j-6b","prompt":"Hello","max_tokens":2}"""));
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await PollAsync(() => CompleteAsync(first), HttpStatusCode.OK)); // spends the budget
        await LedgerTestHost.WaitForUsageAsync(first, $"key_id={id}", r => r.Length == 1 && r[0].Long("requests") == 1);
        // The other replica learns the month's total from the database at its next refresh.
        Assert.Equal(HttpStatusCode.TooManyRequests, await PollAsync(() => CompleteAsync(second), HttpStatusCode.TooManyRequests));

        using (var raise = LedgerTestHost.Admin(HttpMethod.Patch, $"/admin/v1/keys/{id}", """{"monthly_token_budget":1000000}"""))
        using (var raised = await first.Http.SendAsync(raise))
        {
            Assert.Equal(HttpStatusCode.OK, raised.StatusCode);
        }
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.OK, await PollAsync(() => CompleteAsync(second), HttpStatusCode.OK));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(3), $"the raise took {started.Elapsed.TotalMilliseconds:0} ms to reach the second replica");
    }

    private static async Task<HttpStatusCode> PollAsync(Func<Task<HttpStatusCode>> call, HttpStatusCode wanted)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var status = await call();
            if (status == wanted || DateTime.UtcNow > deadline)
            {
                return status;
            }
            await Task.Delay(20);
        }
    }
}
