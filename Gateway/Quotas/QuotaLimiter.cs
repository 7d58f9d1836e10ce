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
        var quota = _keys.GetOrAdd(caller.KeyName, static (_, time) => new KeyQuota(time), timeProvider);
        return quota.TryReserve(caller, tokens);
    }

    internal static QuotaDecision TooLarge(int tokens, int tokensPerMinute) => new(null, "tokens", Window,
        $"Request too large: it needs up to {tokens} tokens (prompt + max tokens) but the key allows {tokensPerMinute} tokens per minute (TPM). Lower max_tokens.");

    /// <summary>
    /// One key's windows. The limits come from the caller on every request, so a limit changed through
    /// the admin API applies from the key's next request; the permits already in the window stay counted.
    /// </summary>
    private sealed class KeyQuota(TimeProvider time)
    {
        private SlidingWindowLimiter? _requests;
        private SlidingWindowLimiter? _tokens;

        public QuotaDecision TryReserve(Caller caller, int tokens)
        {
            var requests = WindowFor(ref _requests, caller.RequestsPerMinute);
            var tokenWindow = WindowFor(ref _tokens, caller.TokensPerMinute);
            if (tokenWindow is not null && tokens > tokenWindow.Limit)
            {
                return TooLarge(tokens, tokenWindow.Limit);
            }
            if (requests is not null)
            {
                using var lease = requests.AttemptAcquire(1);
                if (!lease.IsAcquired)
                {
                    return Refused("requests", lease, $"Rate limit reached on requests per minute (RPM): limit {requests.Limit}.");
                }
            }
            if (tokenWindow is not null)
            {
                using var lease = tokenWindow.AttemptAcquire(tokens);
                if (!lease.IsAcquired)
                {
                    requests?.Release(1); // the request is not served, so it does not count
                    return Refused("tokens", lease, $"Rate limit reached on tokens per minute (TPM): limit {tokenWindow.Limit}, requested {tokens}.");
                }
            }
            return new QuotaDecision(new Reservation(tokenWindow, tokens), null, default, null);
        }

        /// <summary>The window for <paramref name="limit"/> (null = unlimited), created on first use and kept at the caller's current limit.</summary>
        private SlidingWindowLimiter? WindowFor(ref SlidingWindowLimiter? field, int limit)
        {
            if (limit <= 0)
            {
                return null;
            }
            var window = Volatile.Read(ref field);
            if (window is null)
            {
                var created = new SlidingWindowLimiter(time, limit, Window, Segments);
                window = Interlocked.CompareExchange(ref field, created, null) ?? created;
            }
            if (window.Limit != limit)
            {
                window.Limit = limit;
            }
            return window;
        }

        private static void Settle(SlidingWindowLimiter? tokens, int reserved, int actual)
        {
            if (tokens is null || actual == reserved)
            {
                return;
            }
            if (actual < reserved)
            {
                tokens.Release(reserved - actual);
            }
            else
            {
                // More than reserved (completions never exceed max tokens, so this should not happen): charge what fits.
                using var _ = tokens.AttemptAcquire(Math.Min(actual - reserved, tokens.Limit));
            }
        }

        private static QuotaDecision Refused(string limit, RateLimitLease lease, string message)
        {
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
            return new QuotaDecision(null, limit, retryAfter, message);
        }

        private sealed class Reservation(SlidingWindowLimiter? tokens, int reserved) : QuotaReservation
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
                    KeyQuota.Settle(tokens, reserved, actualTokens);
                }
            }
        }
    }
}
