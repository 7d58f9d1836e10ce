using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Gateway.Auth;

namespace Gateway.Quotas;

/// <summary>
/// Per-key request and token quotas. Tokens are reserved up front (prompt + max tokens) and
/// settled to the real count when the request ends. In-memory per gateway replica
/// (<see cref="RateLimitingQuotaLimiter"/>) or shared by every replica through Redis
/// (<see cref="RedisQuotaLimiter"/>, when <c>Gateway:Quotas:Redis</c> is set).
/// </summary>
public interface IQuotaLimiter
{
    ValueTask<QuotaDecision> TryReserveAsync(Caller caller, int tokens, CancellationToken cancellationToken);
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

    /// <summary>Settles the reservation to <paramref name="actualTokens"/>; later calls do nothing. Never throws.</summary>
    public abstract ValueTask SettleAsync(int actualTokens);
}

/// <summary>
/// In-process quotas: per key a one-minute sliding window (12 segments) of requests (RPM) and one
/// of tokens (TPM), both <see cref="RateLimiter"/>s on the injected <see cref="TimeProvider"/>.
/// Unused reserved tokens go back into the token window when the request settles.
/// </summary>
internal sealed class RateLimitingQuotaLimiter(TimeProvider timeProvider) : IQuotaLimiter
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private const int Segments = 12;

    private readonly ConcurrentDictionary<string, KeyQuota> _keys = new(StringComparer.Ordinal);

    public ValueTask<QuotaDecision> TryReserveAsync(Caller caller, int tokens, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TryReserve(caller, tokens));

    public QuotaDecision TryReserve(Caller caller, int tokens)
    {
        var quota = _keys.GetOrAdd(caller.KeyName, static (_, state) => new KeyQuota(state.caller, state.time), (caller, time: timeProvider));
        return quota.TryReserve(tokens);
    }

    internal static QuotaDecision TooLarge(int tokens, int tokensPerMinute) => new(null, "tokens", Window,
        $"Request too large: it needs up to {tokens} tokens (prompt + max tokens) but the key allows {tokensPerMinute} tokens per minute (TPM). Lower max_tokens.");

    private sealed class KeyQuota(Caller caller, TimeProvider time)
    {
        private readonly SlidingWindowLimiter? _requests = caller.RequestsPerMinute > 0 ? new(time, caller.RequestsPerMinute, Window, Segments) : null;
        private readonly SlidingWindowLimiter? _tokens = caller.TokensPerMinute > 0 ? new(time, caller.TokensPerMinute, Window, Segments) : null;

        public QuotaDecision TryReserve(int tokens)
        {
            if (_tokens is not null && tokens > _tokens.Limit)
            {
                return TooLarge(tokens, _tokens.Limit);
            }
            if (_requests is not null)
            {
                using var lease = _requests.AttemptAcquire(1);
                if (!lease.IsAcquired)
                {
                    return Refused("requests", lease, $"Rate limit reached on requests per minute (RPM): limit {_requests.Limit}.");
                }
            }
            if (_tokens is not null)
            {
                using var lease = _tokens.AttemptAcquire(tokens);
                if (!lease.IsAcquired)
                {
                    _requests?.Release(1); // the request is not served, so it does not count
                    return Refused("tokens", lease, $"Rate limit reached on tokens per minute (TPM): limit {_tokens.Limit}, requested {tokens}.");
                }
            }
            return new QuotaDecision(new Reservation(this, tokens), null, default, null);
        }

        private void Settle(int reserved, int actual)
        {
            if (_tokens is null || actual == reserved)
            {
                return;
            }
            if (actual < reserved)
            {
                _tokens.Release(reserved - actual);
            }
            else
            {
                // More than reserved (completions never exceed max tokens, so this should not happen): charge what fits.
                using var _ = _tokens.AttemptAcquire(Math.Min(actual - reserved, _tokens.Limit));
            }
        }

        private static QuotaDecision Refused(string limit, RateLimitLease lease, string message)
        {
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
            return new QuotaDecision(null, limit, retryAfter, message);
        }

        private sealed class Reservation(KeyQuota owner, int reserved) : QuotaReservation
        {
            private int _settled;

            public override int ReservedTokens => reserved;

            public override ValueTask SettleAsync(int actualTokens)
            {
                Settle(actualTokens);
                return ValueTask.CompletedTask;
            }

            public void Settle(int actualTokens)
            {
                if (Interlocked.Exchange(ref _settled, 1) == 0)
                {
                    owner.Settle(reserved, actualTokens);
                }
            }
        }
    }
}
