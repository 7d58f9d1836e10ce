using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Gateway.Auth;

namespace Gateway.Quotas;

/// <summary>
/// Per-key request and token quotas. Tokens are reserved up front (prompt + max tokens) and
/// settled to the real count when the request ends. A shared (Redis) implementation can replace
/// this one later behind the same interface.
/// </summary>
public interface IQuotaLimiter
{
    QuotaDecision TryReserve(Caller caller, int tokens);
}

/// <summary>The outcome of a reservation: granted (with a reservation to settle) or refused.</summary>
public readonly record struct QuotaDecision(QuotaReservation? Reservation, string? ExceededLimit, TimeSpan RetryAfter, string? Message)
{
    public bool Granted => Reservation is not null;
}

/// <summary>Tokens held for one request until <see cref="Settle"/> gives back what was not used.</summary>
public abstract class QuotaReservation
{
    public abstract int ReservedTokens { get; }

    /// <summary>Settles the reservation to <paramref name="actualTokens"/>; later calls do nothing.</summary>
    public abstract void Settle(int actualTokens);
}

/// <summary>
/// In-process quotas with System.Threading.RateLimiting token buckets, one pair per key: requests
/// (capacity RPM) and tokens (capacity TPM), refilled evenly over a minute by timers on the
/// injected <see cref="TimeProvider"/>. Token buckets cannot give permits back, so unused
/// reserved tokens become a per-key credit that later requests spend first; the credit is capped
/// so that credit + bucket never exceed one minute's TPM.
/// </summary>
internal sealed class RateLimitingQuotaLimiter(TimeProvider timeProvider) : IQuotaLimiter, IDisposable
{
    private readonly ConcurrentDictionary<string, KeyQuota> _keys = new(StringComparer.Ordinal);

    public QuotaDecision TryReserve(Caller caller, int tokens)
    {
        var quota = _keys.GetOrAdd(caller.KeyName, static (_, state) => new KeyQuota(state.caller, state.time), (caller, time: timeProvider));
        return quota.TryReserve(tokens);
    }

    public void Dispose()
    {
        foreach (var quota in _keys.Values)
        {
            quota.Dispose();
        }
    }

    private sealed class KeyQuota : IDisposable
    {
        private readonly TokenBucketRateLimiter? _requests;
        private readonly TokenBucketRateLimiter? _tokens;
        private readonly ITimer? _requestTimer;
        private readonly ITimer? _tokenTimer;
        private readonly int _tokensPerMinute;
        private readonly int _requestsPerMinute;
        private readonly Lock _lock = new();
        private long _credit;

        public KeyQuota(Caller caller, TimeProvider time)
        {
            _tokensPerMinute = caller.TokensPerMinute;
            _requestsPerMinute = caller.RequestsPerMinute;
            if (caller.RequestsPerMinute > 0)
            {
                (_requests, _requestTimer) = CreateBucket(caller.RequestsPerMinute, time);
            }
            if (caller.TokensPerMinute > 0)
            {
                (_tokens, _tokenTimer) = CreateBucket(caller.TokensPerMinute, time);
            }
        }

        public QuotaDecision TryReserve(int tokens)
        {
            if (_requests is not null)
            {
                using var lease = _requests.AttemptAcquire(1);
                if (!lease.IsAcquired)
                {
                    return Refused("requests", lease, $"Rate limit reached on requests per minute (RPM): limit {_requestsPerMinute}.");
                }
            }
            if (_tokens is null)
            {
                return new QuotaDecision(new Reservation(this, tokens), null, default, null);
            }
            if (tokens > _tokensPerMinute)
            {
                return new QuotaDecision(null, "tokens", TimeSpan.FromMinutes(1),
                    $"Request too large: it needs up to {tokens} tokens (prompt + max tokens) but the key allows {_tokensPerMinute} tokens per minute (TPM). Lower max_tokens.");
            }
            lock (_lock)
            {
                TrimCredit();
                var fromCredit = (int)Math.Min(_credit, tokens);
                var fromBucket = tokens - fromCredit;
                if (fromBucket > 0)
                {
                    using var lease = _tokens.AttemptAcquire(fromBucket);
                    if (!lease.IsAcquired)
                    {
                        return Refused("tokens", lease, $"Rate limit reached on tokens per minute (TPM): limit {_tokensPerMinute}, requested {tokens}.");
                    }
                }
                _credit -= fromCredit;
            }
            return new QuotaDecision(new Reservation(this, tokens), null, default, null);
        }

        private void Settle(int reserved, int actual)
        {
            if (_tokens is null || actual == reserved)
            {
                return;
            }
            lock (_lock)
            {
                if (actual < reserved)
                {
                    _credit += reserved - actual;
                    TrimCredit();
                }
                else
                {
                    // More than reserved (should not happen: completions never exceed max tokens); charge what we can.
                    using var _ = _tokens.AttemptAcquire(Math.Min(actual - reserved, _tokensPerMinute));
                }
            }
        }

        private void TrimCredit()
        {
            var available = _tokens!.GetStatistics()?.CurrentAvailablePermits ?? 0;
            _credit = Math.Clamp(_credit, 0, Math.Max(0, _tokensPerMinute - available));
        }

        private static QuotaDecision Refused(string limit, RateLimitLease lease, string message)
        {
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
            return new QuotaDecision(null, limit, retryAfter, message);
        }

        /// <summary>A bucket of <paramref name="perMinute"/> permits refilled in even steps by a timer.</summary>
        private static (TokenBucketRateLimiter, ITimer) CreateBucket(int perMinute, TimeProvider time)
        {
            var perPeriod = Math.Max(1, perMinute / 60);
            var period = TimeSpan.FromTicks(TimeSpan.FromMinutes(1).Ticks * perPeriod / perMinute);
            var bucket = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = perMinute,
                TokensPerPeriod = perPeriod,
                ReplenishmentPeriod = period,
                AutoReplenishment = false,
                QueueLimit = 0,
            });
            var timer = time.CreateTimer(static state => ((TokenBucketRateLimiter)state!).TryReplenish(), bucket, period, period);
            return (bucket, timer);
        }

        public void Dispose()
        {
            _requestTimer?.Dispose();
            _tokenTimer?.Dispose();
            _requests?.Dispose();
            _tokens?.Dispose();
        }

        private sealed class Reservation(KeyQuota owner, int reserved) : QuotaReservation
        {
            private int _settled;

            public override int ReservedTokens => reserved;

            public override void Settle(int actualTokens)
            {
                if (Interlocked.Exchange(ref _settled, 1) == 0)
                {
                    owner.Settle(reserved, actualTokens);
                }
            }
        }
    }
}
