using Gateway.Auth;
using Gateway.Quotas;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Quotas;

public sealed class QuotaLimiterTests
{
    private static Caller Caller(int rpm = 0, int tpm = 0) => new("key", "tenant", new HashSet<string> { "*" }, rpm, tpm);

    [Fact]
    public void TryReserve_RequestsPerMinute_RefusesThenRefillsWithTime()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimitingQuotaLimiter(time);
        var caller = Caller(rpm: 2);
        Assert.True(limiter.TryReserve(caller, 1).Granted);
        Assert.True(limiter.TryReserve(caller, 1).Granted);
        var refused = limiter.TryReserve(caller, 1);
        Assert.False(refused.Granted);
        Assert.Equal("requests", refused.ExceededLimit);
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(30)); // a sliding minute: still inside the window
        Assert.False(limiter.TryReserve(caller, 1).Granted);
        time.Advance(TimeSpan.FromSeconds(30)); // the window slid past the first two
        Assert.True(limiter.TryReserve(caller, 1).Granted);
        Assert.True(limiter.TryReserve(caller, 1).Granted);
        Assert.False(limiter.TryReserve(caller, 1).Granted);
    }

    [Fact]
    public void TryReserve_LimitsChangedOnTheKey_ApplyFromItsNextRequest_AndKeepTheWindowsCount()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimitingQuotaLimiter(time);
        Assert.True(limiter.TryReserve(Caller(rpm: 2, tpm: 100), 60).Granted);
        Assert.True(limiter.TryReserve(Caller(rpm: 2, tpm: 100), 10).Granted);
        Assert.Equal("requests", limiter.TryReserve(Caller(rpm: 2, tpm: 100), 1).ExceededLimit);

        // Raised (an admin PATCH): the two requests already in the window still count against the new limit.
        Assert.True(limiter.TryReserve(Caller(rpm: 3, tpm: 100), 1).Granted);
        Assert.Equal("requests", limiter.TryReserve(Caller(rpm: 3, tpm: 100), 1).ExceededLimit);

        // Lowered TPM: 71 tokens are in the window, so 30 more no longer fit under 80.
        var lowered = limiter.TryReserve(Caller(rpm: 10, tpm: 80), 30);
        Assert.Equal("tokens", lowered.ExceededLimit);
        Assert.Contains("limit 80", lowered.Message, StringComparison.Ordinal);
        Assert.Equal("tokens", limiter.TryReserve(Caller(rpm: 10, tpm: 50), 60).ExceededLimit); // larger than the new TPM itself

        // Limits removed: unlimited from the next request.
        for (var i = 0; i < 20; i++)
        {
            Assert.True(limiter.TryReserve(Caller(), 1000).Granted);
        }
    }

    [Fact]
    public async Task Settle_UnusedReservedTokens_AreGivenBack()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimitingQuotaLimiter(time);
        var caller = Caller(tpm: 1000);
        var first = limiter.TryReserve(caller, 800);
        Assert.True(first.Granted);
        var refused = limiter.TryReserve(caller, 800);
        Assert.False(refused.Granted);
        Assert.Equal("tokens", refused.ExceededLimit);

        await first.Reservation!.SettleAsync(100); // the request only used 100 of its 800 tokens
        Assert.True(limiter.TryReserve(caller, 800).Granted);
        Assert.False(limiter.TryReserve(caller, 200).Granted);
    }

    [Fact]
    public async Task Settle_Twice_GivesBackOnce()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimitingQuotaLimiter(time);
        var caller = Caller(tpm: 1000);
        var reservation = limiter.TryReserve(caller, 1000).Reservation!;
        await reservation.SettleAsync(0);
        await reservation.SettleAsync(0);
        Assert.True(limiter.TryReserve(caller, 1000).Granted);
        Assert.False(limiter.TryReserve(caller, 1).Granted);
    }

    [Fact]
    public void TryReserve_TokensComeBackWhenTheMinuteSlidesPast()
    {
        var time = new FakeTimeProvider();
        var limiter = new RateLimitingQuotaLimiter(time);
        var caller = Caller(tpm: 600);
        Assert.True(limiter.TryReserve(caller, 600).Granted);
        var refused = limiter.TryReserve(caller, 300);
        Assert.False(refused.Granted);
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter);
        time.Advance(TimeSpan.FromSeconds(55));
        Assert.False(limiter.TryReserve(caller, 300).Granted);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(limiter.TryReserve(caller, 300).Granted);
    }

    [Fact]
    public void TryReserve_MoreThanTheWholeMinute_IsRefusedWithAMessage()
    {
        var limiter = new RateLimitingQuotaLimiter(new FakeTimeProvider());
        var refused = limiter.TryReserve(Caller(tpm: 100), 101);
        Assert.False(refused.Granted);
        Assert.Contains("max_tokens", refused.Message);
    }

    [Fact]
    public void TryReserve_NoLimits_AlwaysGranted()
    {
        var limiter = new RateLimitingQuotaLimiter(new FakeTimeProvider());
        for (var i = 0; i < 100; i++)
        {
            Assert.True(limiter.TryReserve(Caller(), 100_000).Granted);
        }
    }
}
