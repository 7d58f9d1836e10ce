using Gateway.Auth;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gateway.Quotas;

/// <summary>
/// Quotas shared by every gateway replica: per key one Redis hash holding a one-minute sliding
/// window of 12 five-second segments (fields <c>r:&lt;segment&gt;</c> for requests,
/// <c>t:&lt;segment&gt;</c> for tokens). A Lua script checks both limits and reserves
/// (1 request, prompt + max tokens) atomically; a second script settles the reservation to the
/// real token count in the segment it was taken from. Every write renews the key's TTL (window +
/// one segment), so idle keys disappear. Segments come from the gateway's <see cref="TimeProvider"/>
/// (replica clocks are NTP-synchronised; a skew of a few ms moves a segment edge, not the limit).
/// <para>
/// Failure policy: when Redis cannot answer within <c>Gateway:Quotas:RedisTimeout</c> (down,
/// unreachable, timing out), the request is checked against this replica's own in-memory quota
/// instead (<see cref="RateLimitingQuotaLimiter"/>): the gateway keeps serving and a single key is
/// still limited, to at most replicas × limit while Redis is away. Each fallback counts in
/// <c>gateway.quota.redis.fallbacks</c> and the switch to and from Redis is logged once. A settle
/// that fails is dropped (the reservation ages out of the window within a minute).
/// </para>
/// </summary>
internal sealed partial class RedisQuotaLimiter : IQuotaLimiter, IAsyncDisposable
{
    internal const int Segments = 12;
    internal static readonly long SegmentMilliseconds = 60_000 / Segments;
    private static readonly long TtlMilliseconds = 60_000 + SegmentMilliseconds;

    // KEYS[1] quota hash. ARGV: now ms, segment ms, segments, rpm (0 = none), tpm (0 = none), tokens, ttl ms.
    // Returns {1, segment} when granted, {0, "requests"|"tokens", retry-after ms} when refused.
    private const string ReserveScript = """
        local now = tonumber(ARGV[1])
        local seg_ms = tonumber(ARGV[2])
        local n = tonumber(ARGV[3])
        local rpm = tonumber(ARGV[4])
        local tpm = tonumber(ARGV[5])
        local tokens = tonumber(ARGV[6])
        local current = math.floor(now / seg_ms)
        local oldest = current - n + 1
        local fields = redis.call('HGETALL', KEYS[1])
        local used_r, used_t = 0, 0
        local r, t = {}, {}
        for i = 1, #fields, 2 do
          local field = fields[i]
          local seg = tonumber(string.sub(field, 3))
          local value = tonumber(fields[i + 1])
          if seg == nil or seg < oldest then
            redis.call('HDEL', KEYS[1], field)
          elseif string.sub(field, 1, 1) == 'r' then
            used_r = used_r + value
            r[seg] = (r[seg] or 0) + value
          else
            used_t = used_t + value
            t[seg] = (t[seg] or 0) + value
          end
        end
        local function retry_after(per_segment, needed)
          for seg = oldest, current do
            needed = needed - (per_segment[seg] or 0)
            if needed <= 0 then
              return (seg + n) * seg_ms - now
            end
          end
          return n * seg_ms
        end
        if rpm > 0 and used_r + 1 > rpm then
          return {0, 'requests', retry_after(r, used_r + 1 - rpm)}
        end
        if tpm > 0 and used_t + tokens > tpm then
          return {0, 'tokens', retry_after(t, used_t + tokens - tpm)}
        end
        if rpm > 0 then
          redis.call('HINCRBY', KEYS[1], 'r:' .. current, 1)
        end
        if tpm > 0 and tokens > 0 then
          redis.call('HINCRBY', KEYS[1], 't:' .. current, tokens)
        end
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
        return {1, current}
        """;

    // KEYS[1] quota hash. ARGV: reservation segment, actual - reserved tokens, now ms, segment ms, segments, ttl ms.
    // Gives unused tokens back to the segment they were reserved in (if it is still in the window);
    // charges extra tokens to the current segment.
    private const string SettleScript = """
        local seg = tonumber(ARGV[1])
        local delta = tonumber(ARGV[2])
        local seg_ms = tonumber(ARGV[4])
        local current = math.floor(tonumber(ARGV[3]) / seg_ms)
        if delta < 0 then
          if seg > current - tonumber(ARGV[5]) then
            local field = 't:' .. seg
            local left = redis.call('HINCRBY', KEYS[1], field, delta)
            if left <= 0 then
              redis.call('HDEL', KEYS[1], field)
            end
          end
        elseif delta > 0 then
          redis.call('HINCRBY', KEYS[1], 't:' .. current, delta)
          redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
        end
        return 0
        """;

    private readonly RateLimitingQuotaLimiter _local;
    private readonly TimeProvider _time;
    private readonly GatewayTelemetry _telemetry;
    private readonly ILogger<RedisQuotaLimiter> _logger;
    private readonly QuotaOptions _options;
    private readonly Task<ConnectionMultiplexer> _connection;
    private int _degraded;

    public RedisQuotaLimiter(IOptions<QuotaOptions> options, TimeProvider time, GatewayTelemetry telemetry, ILogger<RedisQuotaLimiter> logger)
    {
        _options = options.Value;
        _time = time;
        _telemetry = telemetry;
        _logger = logger;
        _local = new RateLimitingQuotaLimiter(time);
        var configuration = ConfigurationOptions.Parse(_options.Redis!);
        configuration.AbortOnConnectFail = false; // keep reconnecting in the background; fall back meanwhile
        configuration.BacklogPolicy = BacklogPolicy.FailFast; // no queueing while disconnected: fall back at once
        configuration.AsyncTimeout = (int)_options.RedisTimeout.TotalMilliseconds;
        configuration.ConnectTimeout = Math.Max(configuration.ConnectTimeout, 1000);
        configuration.ClientName ??= "llm-gateway";
        _connection = ConnectionMultiplexer.ConnectAsync(configuration);
    }

    public async ValueTask<QuotaDecision> TryReserveAsync(Caller caller, int tokens, CancellationToken cancellationToken)
    {
        if (caller.RequestsPerMinute <= 0 && caller.TokensPerMinute <= 0)
        {
            return new QuotaDecision(new Unlimited(tokens), null, default, null);
        }
        if (caller.TokensPerMinute > 0 && tokens > caller.TokensPerMinute)
        {
            return RateLimitingQuotaLimiter.TooLarge(tokens, caller.TokensPerMinute);
        }
        var key = new RedisKey(_options.KeyPrefix + "{" + caller.KeyName + "}");
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (Database() is not { } database)
        {
            Degrade("reserve", "NotConnected", "no connection to Redis");
            return _local.TryReserve(caller, tokens);
        }
        RedisResult[] result;
        try
        {
            var reply = await database.ScriptEvaluateAsync(ReserveScript, [key],
                [now, SegmentMilliseconds, Segments, caller.RequestsPerMinute, caller.TokensPerMinute, tokens, TtlMilliseconds]).WaitAsync(cancellationToken).ConfigureAwait(false);
            result = (RedisResult[])reply!;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Degrade("reserve", ex.GetType().Name, ex.Message);
            return _local.TryReserve(caller, tokens);
        }
        Restore();
        if ((int)result[0] == 1)
        {
            return new QuotaDecision(caller.TokensPerMinute > 0 ? new Reservation(this, key, (long)result[1], tokens) : new Unlimited(tokens), null, default, null);
        }
        var limit = (string)result[1]!;
        var retryAfter = TimeSpan.FromMilliseconds(Math.Max(0, (long)result[2]));
        var message = limit == "requests"
            ? $"Rate limit reached on requests per minute (RPM): limit {caller.RequestsPerMinute}."
            : $"Rate limit reached on tokens per minute (TPM): limit {caller.TokensPerMinute}, requested {tokens}.";
        return new QuotaDecision(null, limit, retryAfter, message);
    }

    /// <summary>Completes when the first connection attempt has ended (connected, or failed and retrying in the background).</summary>
    public Task ConnectAttemptAsync(CancellationToken cancellationToken) => _connection.WaitAsync(cancellationToken);

    private IDatabase? Database() =>
        _connection.IsCompletedSuccessfully && _connection.Result.IsConnected ? _connection.Result.GetDatabase() : null;

    private async ValueTask SettleAsync(RedisKey key, long segment, int delta)
    {
        if (Database() is not { } database)
        {
            Degrade("settle", "NotConnected", "no connection to Redis");
            return;
        }
        try
        {
            await database.ScriptEvaluateAsync(SettleScript, [key],
                [segment, delta, _time.GetUtcNow().ToUnixTimeMilliseconds(), SegmentMilliseconds, Segments, TtlMilliseconds]).ConfigureAwait(false);
            Restore();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Degrade("settle", ex.GetType().Name, ex.Message);
        }
    }

    private void Degrade(string operation, string error, string reason)
    {
        _telemetry.RecordQuotaFallback(operation);
        if (Interlocked.Exchange(ref _degraded, 1) == 0)
        {
            LogRedisUnavailable(_logger, error, reason);
        }
    }

    private void Restore()
    {
        if (Volatile.Read(ref _degraded) == 1 && Interlocked.Exchange(ref _degraded, 0) == 1)
        {
            LogRedisRestored(_logger);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            var connection = await _connection.ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (RedisException)
        {
            // never connected: nothing to close
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis quota store unavailable ({Error}: {Reason}); quotas fall back to this replica's own counts until it answers again")]
    private static partial void LogRedisUnavailable(ILogger logger, string error, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis quota store answering again; quotas are shared across replicas")]
    private static partial void LogRedisRestored(ILogger logger);

    private sealed class Reservation(RedisQuotaLimiter owner, RedisKey key, long segment, int reserved) : QuotaReservation
    {
        private int _settled;

        public override int ReservedTokens => reserved;

        public override ValueTask SettleAsync(int actualTokens)
        {
            if (Interlocked.Exchange(ref _settled, 1) != 0 || actualTokens == reserved)
            {
                return ValueTask.CompletedTask;
            }
            return owner.SettleAsync(key, segment, actualTokens - reserved);
        }
    }

    /// <summary>A reservation with no token limit behind it: nothing to settle.</summary>
    private sealed class Unlimited(int reserved) : QuotaReservation
    {
        public override int ReservedTokens => reserved;

        public override ValueTask SettleAsync(int actualTokens) => ValueTask.CompletedTask;
    }
}
