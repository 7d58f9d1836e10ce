using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Auth;
using Gateway.Quotas;
using Gateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Gateway.Tests.Quotas;

/// <summary>The Redis limiter against a real redis-server; two limiters stand for two gateway replicas.</summary>
public sealed class RedisQuotaLimiterTests(RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private readonly string _prefix = $"test-{Guid.NewGuid():N}:quota:";
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static Caller Caller(int rpm = 0, int tpm = 0, string key = "team-a") => new(key, "tenant", new HashSet<string> { "*" }, rpm, tpm);

    private async Task<RedisQuotaLimiter> LimiterAsync(string? connection = null)
    {
        var options = Options.Create(new QuotaOptions { Redis = connection ?? redis.ConnectionString, KeyPrefix = _prefix });
        var limiter = new RedisQuotaLimiter(options, _time, Telemetry(), NullLogger<RedisQuotaLimiter>.Instance);
        _owned.Add(limiter);
        await limiter.ConnectAttemptAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        return limiter;
    }

    private GatewayTelemetry Telemetry() => new(_metrics.GetRequiredService<IMeterFactory>());

    [Fact]
    public async Task TwoReplicas_TogetherAdmitNoMoreThanTheRequestLimit()
    {
        var first = await LimiterAsync();
        var second = await LimiterAsync();
        var caller = Caller(rpm: 5);
        var decisions = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => (i % 2 == 0 ? first : second).TryReserveAsync(caller, 10, CancellationToken.None).AsTask()));
        Assert.Equal(5, decisions.Count(d => d.Granted));
        var refused = decisions.First(d => !d.Granted);
        Assert.Equal("requests", refused.ExceededLimit);
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter); // every request is in the newest segment
    }

    [Fact]
    public async Task Settle_GivesUnusedTokensBackToTheSharedWindow()
    {
        var first = await LimiterAsync();
        var second = await LimiterAsync();
        var caller = Caller(tpm: 1000);
        var reserved = await first.TryReserveAsync(caller, 800, CancellationToken.None);
        Assert.True(reserved.Granted);
        var refused = await second.TryReserveAsync(caller, 800, CancellationToken.None);
        Assert.False(refused.Granted);
        Assert.Equal("tokens", refused.ExceededLimit);

        await reserved.Reservation!.SettleAsync(100); // the request used 100 of its 800 tokens
        await reserved.Reservation.SettleAsync(100); // a second settle does nothing
        Assert.True((await second.TryReserveAsync(caller, 800, CancellationToken.None)).Granted);
        Assert.False((await first.TryReserveAsync(caller, 200, CancellationToken.None)).Granted);
        Assert.True((await first.TryReserveAsync(caller, 100, CancellationToken.None)).Granted);
    }

    [Fact]
    public async Task Settle_MoreThanReserved_ChargesTheDifference()
    {
        var limiter = await LimiterAsync();
        var caller = Caller(tpm: 1000);
        var reserved = await limiter.TryReserveAsync(caller, 100, CancellationToken.None);
        await reserved.Reservation!.SettleAsync(700);
        Assert.False((await limiter.TryReserveAsync(caller, 301, CancellationToken.None)).Granted);
        Assert.True((await limiter.TryReserveAsync(caller, 300, CancellationToken.None)).Granted);
    }

    [Fact]
    public async Task Window_SlidesWithTime_AndRetryAfterPointsAtTheOldestSegment()
    {
        var limiter = await LimiterAsync();
        var caller = Caller(rpm: 2);
        Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);
        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);
        var refused = await limiter.TryReserveAsync(caller, 1, CancellationToken.None);
        Assert.False(refused.Granted);
        Assert.Equal(TimeSpan.FromSeconds(40), refused.RetryAfter); // the first request leaves the minute in 40 s

        _time.Advance(TimeSpan.FromSeconds(40));
        Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);
        Assert.False((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);
    }

    [Fact]
    public async Task Keys_AreNamespacedPerApiKey_AndExpire()
    {
        var limiter = await LimiterAsync();
        Assert.True((await limiter.TryReserveAsync(Caller(rpm: 1, tpm: 100, key: "team-a"), 10, CancellationToken.None)).Granted);
        Assert.True((await limiter.TryReserveAsync(Caller(rpm: 1, tpm: 100, key: "team-b"), 10, CancellationToken.None)).Granted); // own limit

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var keys = server.Keys(pattern: _prefix + "*").Select(k => k.ToString()).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([_prefix + "{team-a}", _prefix + "{team-b}"], keys);
        var ttl = await connection.GetDatabase().KeyTimeToLiveAsync(keys[0]);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(65));
    }

    [Fact]
    public async Task TooLargeForTheMinute_IsRefusedWithoutAskingRedis()
    {
        var limiter = await LimiterAsync();
        var refused = await limiter.TryReserveAsync(Caller(tpm: 100), 101, CancellationToken.None);
        Assert.False(refused.Granted);
        Assert.Contains("Lower max_tokens", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedisUnreachable_FallsBackToTheLocalQuota_AndCountsIt()
    {
        var fallbacks = new ConcurrentQueue<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "gateway.quota.redis.fallbacks" && instrument.Meter.Scope == _metrics.GetRequiredService<IMeterFactory>())
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) => fallbacks.Enqueue((string)tags[0].Value!));
        listener.Start();

        // A port nothing listens on (the fixture's server is stopped for this limiter).
        var limiter = await LimiterAsync("127.0.0.1:1,connectTimeout=200");
        var caller = Caller(rpm: 1, tpm: 1000);
        var granted = await limiter.TryReserveAsync(caller, 10, CancellationToken.None);
        Assert.True(granted.Granted); // the gateway keeps serving
        Assert.False((await limiter.TryReserveAsync(caller, 10, CancellationToken.None)).Granted); // still limited, locally
        await granted.Reservation!.SettleAsync(5);
        Assert.Equal(["reserve", "reserve"], fallbacks.ToArray());
    }

    [Fact]
    public async Task RedisRestarted_SharedQuotaResumes()
    {
        await using var own = new RedisServer();
        await own.InitializeAsync();
        var options = Options.Create(new QuotaOptions { Redis = own.ConnectionString + ",connectRetry=1,connectTimeout=500", KeyPrefix = _prefix });
        var limiter = new RedisQuotaLimiter(options, _time, Telemetry(), NullLogger<RedisQuotaLimiter>.Instance);
        _owned.Add(limiter);
        await limiter.ConnectAttemptAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        var caller = Caller(rpm: 100);
        Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);

        await own.StopAsync();
        Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted); // local fallback

        await own.StartAsync();
        await using var probe = await ConnectionMultiplexer.ConnectAsync(own.ConnectionString);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        // The multiplexer reconnects on its own heartbeat; wait for a reservation to reach the new server.
        while ((await probe.GetDatabase().HashGetAllAsync(_prefix + "{team-a}")).Length == 0)
        {
            Assert.True((await limiter.TryReserveAsync(caller, 1, CancellationToken.None)).Granted);
            await Task.Delay(TimeSpan.FromMilliseconds(100), wait.Token);
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
        await _metrics.DisposeAsync();
    }
}
