using System.Collections.Frozen;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Gateway.Auth;
using Gateway.Ledger;
using Microsoft.Extensions.Options;

namespace Gateway.Keys;

/// <summary>A managed key as the gateway checks it: the stored row and the caller it authenticates as.</summary>
internal sealed record ManagedKeyEntry(ManagedKey Key, Caller Caller);

/// <summary>
/// Every managed key, reloaded from the database each <see cref="LedgerOptions.KeyRefreshInterval"/>
/// (with the month's token totals), so a revocation or a budget change made on any replica holds on
/// every replica within one interval. A change made on this replica applies at once. Lookups are a
/// hash of the presented secret in a frozen dictionary: no database call per request.
/// </summary>
internal sealed partial class ManagedKeyCache(
    LedgerStore store,
    KeyBudgets budgets,
    IOptions<LedgerOptions> options,
    TimeProvider time,
    ILogger<ManagedKeyCache> logger) : BackgroundService
{
    private volatile Snapshot _snapshot = Snapshot.Empty;
    private readonly SemaphoreSlim _refreshing = new(1, 1);
    private bool _failing;

    private sealed record Snapshot(FrozenDictionary<string, ManagedKeyEntry> ByHash, FrozenDictionary<string, ManagedKeyEntry> ById, string Month, bool Loaded)
    {
        public static readonly Snapshot Empty = new(FrozenDictionary<string, ManagedKeyEntry>.Empty, FrozenDictionary<string, ManagedKeyEntry>.Empty, "", false);
    }

    /// <summary>Whether a snapshot has loaded since start.</summary>
    public bool Loaded => _snapshot.Loaded;

    /// <summary>The key whose secret hashes to <paramref name="sha256Hex"/> (lower-case hex), revoked or not.</summary>
    public ManagedKeyEntry? FindByHash(string sha256Hex) => _snapshot.ByHash.GetValueOrDefault(sha256Hex);

    public ManagedKeyEntry? FindById(string id) => _snapshot.ById.GetValueOrDefault(id);

    public IEnumerable<ManagedKeyEntry> All => _snapshot.ById.Values.OrderBy(e => e.Key.CreatedAtMs).ThenBy(e => e.Key.Id, StringComparer.Ordinal);

    public static string CurrentMonth(DateTimeOffset now) => now.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    public static string Hash(ReadOnlySpan<char> secret)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var byteCount = Encoding.UTF8.GetByteCount(secret);
        var bytes = byteCount <= 512 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(secret, bytes);
        SHA256.HashData(bytes, hash);
        return Convert.ToHexStringLower(hash);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.KeyRefreshInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            await RefreshAsync(stoppingToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Reloads keys and month totals now; a failure keeps the last snapshot (logged once per outage).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _refreshing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var month = CurrentMonth(time.GetUtcNow());
            var written = budgets.TakeWritten();
            List<ManagedKey> keys;
            Dictionary<string, long> totals;
            try
            {
                (keys, totals) = await store.LoadAsync(month, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException or IOException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
            {
                // Not confirmed: the written rows wait for the next snapshot.
                budgets.ReturnWritten(written);
                if (!_failing)
                {
                    _failing = true;
                    LogRefreshFailed(logger, ex.GetType().Name, ex.Message);
                }
                return;
            }
            var entries = keys.Select(k => new ManagedKeyEntry(k, ToCaller(k))).ToList();
            var newMonth = _snapshot.Loaded && _snapshot.Month != month;
            budgets.Install(totals, written, newMonth);
            _snapshot = new Snapshot(
                entries.ToFrozenDictionary(e => e.Key.SecretSha256, StringComparer.Ordinal),
                entries.ToFrozenDictionary(e => e.Key.Id, StringComparer.Ordinal),
                month,
                true);
            if (_failing)
            {
                _failing = false;
                LogRefreshRestored(logger, entries.Count);
            }
        }
        finally
        {
            _refreshing.Release();
        }
    }

    private static Caller ToCaller(ManagedKey key) =>
        new(key.Id, key.Tenant, new HashSet<string>(key.AllowedModels, StringComparer.Ordinal), key.RequestsPerMinute, key.TokensPerMinute)
        {
            LedgerKeyId = key.Id,
            LedgerKeyName = key.Name,
            IsManaged = true,
            MonthlyTokenBudget = key.MonthlyTokenBudget,
        };

    [LoggerMessage(Level = LogLevel.Warning, Message = "Managed keys could not be reloaded ({Error}: {Reason}); the last loaded keys stay in force")]
    private static partial void LogRefreshFailed(ILogger logger, string error, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Managed keys reloaded again ({Count} keys)")]
    private static partial void LogRefreshRestored(ILogger logger, int count);
}

/// <summary>
/// Static <c>Gateway:ApiKeys</c> first, then managed keys. A revoked or expired managed key is
/// refused (401 <c>invalid_api_key</c>) and the refusal is a ledger row under the key's id.
/// </summary>
internal sealed class ManagedKeyAuthenticator(ApiKeyAuthenticator staticKeys, ManagedKeyCache cache, IUsageLedger ledger, TimeProvider time) : IApiKeyAuthenticator
{
    public Caller? Authenticate(string? authorizationHeader)
    {
        if (staticKeys.Authenticate(authorizationHeader) is { } caller)
        {
            return caller;
        }
        const string scheme = "Bearer ";
        if (authorizationHeader is null || authorizationHeader.Length <= scheme.Length
            || !authorizationHeader.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        var token = authorizationHeader.AsSpan(scheme.Length).Trim();
        if (token.IsEmpty || cache.FindByHash(ManagedKeyCache.Hash(token)) is not { } entry)
        {
            return null;
        }
        var now = time.GetUtcNow();
        var key = entry.Key;
        var refusal = key.RevokedAtMs is not null ? "revoked"
            : key.ExpiresAtMs is { } expires && expires <= now.ToUnixTimeMilliseconds() ? "expired"
            : null;
        if (refusal is null)
        {
            return entry.Caller;
        }
        ledger.Record(new UsageRecord
        {
            RequestId = "auth-" + Guid.CreateVersion7(now).ToString("N"),
            KeyId = key.Id,
            KeyName = key.Name,
            Tenant = key.Tenant,
            Model = "",
            Operation = "auth",
            Gateway = UsageRecord.ThisGateway,
            Status = UsageStatus.Refused,
            Reason = refusal,
            StartedAtMs = now.ToUnixTimeMilliseconds(),
        });
        return null;
    }
}
