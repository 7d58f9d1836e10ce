using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Ledger;

/// <summary>Where each request's usage row goes, off the token path.</summary>
public interface IUsageLedger
{
    /// <summary>Queues the row; never blocks on the database and never throws.</summary>
    void Record(UsageRecord record);

    /// <summary>Tokens the key has used this UTC month as this replica knows it (database totals plus rows not yet written).</summary>
    long SpentThisMonth(string keyId);
}

/// <summary>No database configured: nothing is recorded and nothing is spent.</summary>
internal sealed class NoUsageLedger : IUsageLedger
{
    public void Record(UsageRecord record)
    {
    }

    public long SpentThisMonth(string keyId) => 0;
}

/// <summary>
/// Tokens per key that this replica has billed but the last key snapshot does not include yet:
/// charged when a row is queued, handed to the snapshot once written, dropped when a snapshot
/// loaded after that write is installed (so a budget is neither double counted nor forgotten).
/// </summary>
internal sealed class KeyBudgets
{
    private readonly ConcurrentDictionary<string, long> _unconfirmed = new(StringComparer.Ordinal);
    private readonly Lock _writtenLock = new();
    private List<(string KeyId, long Tokens)> _written = [];
    private IReadOnlyDictionary<string, long> _monthTotals = new Dictionary<string, long>();

    public void Charge(string keyId, long tokens)
    {
        if (tokens > 0)
        {
            _unconfirmed.AddOrUpdate(keyId, tokens, (_, current) => current + tokens);
        }
    }

    public void Written(IReadOnlyList<UsageRecord> rows)
    {
        lock (_writtenLock)
        {
            foreach (var row in rows)
            {
                if (row.BilledTokens > 0)
                {
                    _written.Add((row.KeyId, row.BilledTokens));
                }
            }
        }
    }

    /// <summary>Call before loading a snapshot: the rows written so far are in it.</summary>
    public List<(string KeyId, long Tokens)> TakeWritten()
    {
        lock (_writtenLock)
        {
            var taken = _written;
            _written = [];
            return taken;
        }
    }

    /// <summary>A snapshot that failed to load: what was taken waits for the next one.</summary>
    public void ReturnWritten(List<(string KeyId, long Tokens)> written)
    {
        lock (_writtenLock)
        {
            _written.AddRange(written);
        }
    }

    /// <summary>Installs the totals of a snapshot loaded after <paramref name="written"/> was taken.</summary>
    public void Install(IReadOnlyDictionary<string, long> monthTotals, List<(string KeyId, long Tokens)> written, bool newMonth)
    {
        _monthTotals = monthTotals;
        if (newMonth)
        {
            _unconfirmed.Clear();
            return;
        }
        foreach (var (keyId, tokens) in written)
        {
            var left = _unconfirmed.AddOrUpdate(keyId, 0, (_, current) => current - tokens);
            if (left <= 0)
            {
                _unconfirmed.TryRemove(new KeyValuePair<string, long>(keyId, left));
            }
        }
    }

    public long Spent(string keyId) =>
        (_monthTotals.TryGetValue(keyId, out var total) ? total : 0) + (_unconfirmed.TryGetValue(keyId, out var pending) ? pending : 0);
}

/// <summary>
/// The ledger's writer: rows go into a bounded in-memory buffer and one background loop writes
/// them in batches (one transaction each). When the database does not answer, batches spill to a
/// JSON-lines file in <see cref="LedgerOptions.SpillDirectory"/> and are replayed once it answers
/// again (idempotent by request id); a full buffer spills straight to the file. Stopping writes
/// what is buffered, or spills it: no row is lost on a graceful shutdown, and no request waits.
/// </summary>
internal sealed partial class UsageLedger : IUsageLedger, IHostedService, IAsyncDisposable
{
    private readonly LedgerStore _store;
    private readonly KeyBudgets _budgets;
    private readonly LedgerOptions _options;
    private readonly GatewayTelemetry _telemetry;
    private readonly TimeProvider _time;
    private readonly ILogger<UsageLedger> _logger;
    private readonly Channel<UsageRecord> _buffer;
    private readonly Lock _spillLock = new();
    private readonly string _spillPath;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;
    private int _buffered;
    private long _retryAfter;
    private bool _databaseDown;
    private bool _stopRequested;
    private int _disposed;
    private bool _spillPending = true; // files another process left are replayed once the database answers

    public UsageLedger(LedgerStore store, KeyBudgets budgets, IOptions<LedgerOptions> options, GatewayTelemetry telemetry, TimeProvider time, ILogger<UsageLedger> logger)
    {
        _store = store;
        _budgets = budgets;
        _options = options.Value;
        _telemetry = telemetry;
        _time = time;
        _logger = logger;
        _buffer = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(_options.BufferCapacity)
        {
            SingleReader = false, // the retry wait may leave a WaitToReadAsync outstanding
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails, and the row spills instead
        });
        _spillPath = Path.Combine(_options.SpillDirectory, $"spill-{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}.jsonl");
        telemetry.ObserveLedgerBuffer(() => Volatile.Read(ref _buffered));
    }

    /// <summary>Completes when migrations have run and the writer writes to the database (tests, start-up ordering).</summary>
    public Task Ready => _ready.Task;

    public void Record(UsageRecord record)
    {
        _budgets.Charge(record.KeyId, record.BilledTokens);
        if (_buffer.Writer.TryWrite(record))
        {
            Interlocked.Increment(ref _buffered);
            return;
        }
        // Full, or the writer has stopped (a request that ended after the ledger stopped): the file keeps it.
        Spill([record]);
    }

    public long SpentThisMonth(string keyId) => _budgets.Spent(keyId);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Stops taking rows, writes (or spills) what is buffered, then returns.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _stopRequested, true);
        _buffer.Writer.TryComplete();
        if (_loop is null)
        {
            return;
        }
        try
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Out of time: whatever is still buffered goes to the file.
            await _stopping.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            SpillRemaining();
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        await MigrateAsync(cancellationToken).ConfigureAwait(false);
        var batch = new List<UsageRecord>(_options.MaxBatchSize);
        var reader = _buffer.Reader;
        try
        {
            while (true)
            {
                if (Volatile.Read(ref _spillPending))
                {
                    // Rows wait in spill files: retry the database each RetryInterval even when no new row comes.
                    var more = reader.WaitToReadAsync(cancellationToken).AsTask();
                    if (await Task.WhenAny(more, Task.Delay(_options.RetryInterval, _time, cancellationToken)).ConfigureAwait(false) != more)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        if (!InRetryPause())
                        {
                            await ReplaySpillFilesAsync(cancellationToken).ConfigureAwait(false);
                        }
                        continue;
                    }
                    if (!await more.ConfigureAwait(false))
                    {
                        break;
                    }
                }
                else if (!await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    break;
                }
                if (_options.FlushInterval > TimeSpan.Zero && reader.Count < _options.MaxBatchSize && !reader.Completion.IsCompleted)
                {
                    // Gather a batch; a stop cuts the wait short.
                    await Task.WhenAny(Task.Delay(_options.FlushInterval, _time, cancellationToken), reader.Completion).ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                }
                while (batch.Count < _options.MaxBatchSize && reader.TryRead(out var row))
                {
                    batch.Add(row);
                }
                Interlocked.Add(ref _buffered, -batch.Count);
                await WriteOrSpillAsync(batch, cancellationToken).ConfigureAwait(false);
                batch.Clear();
                if (!_databaseDown && Volatile.Read(ref _spillPending))
                {
                    await ReplaySpillFilesAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            // Stopped: one more replay, so a short outage's rows are in the database before the process ends.
            if (!_databaseDown && Volatile.Read(ref _spillPending))
            {
                await ReplaySpillFilesAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (batch.Count > 0)
            {
                Spill(batch);
            }
        }
    }

    private async Task MigrateAsync(CancellationToken cancellationToken)
    {
        // The schema first: until it is there, rows wait in the buffer (and spill if it fills).
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                var applied = await _store.MigrateAsync(cancellationToken).ConfigureAwait(false);
                LogMigrated(_logger, _store.Provider, applied.Count, string.Join(", ", applied));
                _ready.TrySetResult();
                return;
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException or IOException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
            {
                if (attempt == 0)
                {
                    LogMigrationFailed(_logger, ex, _store.Provider);
                }
                try
                {
                    await Task.Delay(_options.RetryInterval, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    throw;
                }
                if (Volatile.Read(ref _stopRequested))
                {
                    return; // stopping before the database ever answered: the buffered rows spill
                }
            }
        }
    }

    private bool InRetryPause() => _databaseDown && _time.GetTimestamp() < Volatile.Read(ref _retryAfter);

    private async Task WriteOrSpillAsync(List<UsageRecord> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }
        if (!_ready.Task.IsCompleted || InRetryPause())
        {
            Spill(batch);
            return;
        }
        try
        {
            await _store.WriteAsync(batch, cancellationToken).ConfigureAwait(false);
            _budgets.Written(batch);
            _telemetry.RecordLedgerRows("written", batch.Count);
            if (_databaseDown)
            {
                _databaseDown = false;
                LogDatabaseBack(_logger);
            }
        }
        catch (Exception ex) when (IsDatabaseFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            MarkDown(ex);
            Spill(batch);
        }
    }

    private static bool IsDatabaseFailure(Exception ex) =>
        ex is System.Data.Common.DbException or TimeoutException or IOException or System.Net.Sockets.SocketException or InvalidOperationException;

    private void MarkDown(Exception ex)
    {
        if (!_databaseDown)
        {
            _databaseDown = true;
            LogDatabaseDown(_logger, ex.GetType().Name, ex.Message, _options.SpillDirectory);
        }
        Volatile.Write(ref _retryAfter, _time.GetTimestamp() + (long)(_options.RetryInterval.TotalSeconds * _time.TimestampFrequency));
    }

    /// <summary>Appends rows to this process's spill file (flushed to disk before returning).</summary>
    private void Spill(IReadOnlyList<UsageRecord> rows)
    {
        var text = new StringBuilder();
        foreach (var row in rows)
        {
            text.Append(JsonSerializer.Serialize(row, LedgerJsonContext.Default.UsageRecord)).Append('\n');
        }
        try
        {
            lock (_spillLock)
            {
                Directory.CreateDirectory(_options.SpillDirectory);
                using var file = new FileStream(_spillPath, FileMode.Append, FileAccess.Write, FileShare.Read);
                var bytes = Encoding.UTF8.GetBytes(text.ToString());
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }
            Volatile.Write(ref _spillPending, true);
            _telemetry.RecordLedgerRows("spilled", rows.Count);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _telemetry.RecordLedgerRows("lost", rows.Count);
            LogSpillFailed(_logger, ex, rows.Count, _spillPath);
        }
    }

    private void SpillRemaining()
    {
        var rest = new List<UsageRecord>();
        while (_buffer.Reader.TryRead(out var row))
        {
            rest.Add(row);
        }
        Interlocked.Add(ref _buffered, -rest.Count);
        if (rest.Count > 0)
        {
            Spill(rest);
        }
    }

    /// <summary>Writes every spill file in the directory (this replica's and any left by a stopped one) and deletes it.</summary>
    private async Task ReplaySpillFilesAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _spillPending, false); // a spill from now on sets it again
        string[] files;
        try
        {
            ReclaimAbandonedReplays();
            files = Directory.Exists(_options.SpillDirectory) ? Directory.GetFiles(_options.SpillDirectory, "spill-*.jsonl") : [];
        }
        catch (IOException)
        {
            Volatile.Write(ref _spillPending, true);
            return;
        }
        foreach (var path in files)
        {
            var claimed = path + ".replaying-" + Environment.ProcessId;
            try
            {
                lock (_spillLock)
                {
                    // Claim it by renaming: another replica sharing the directory skips it, and this one's next spill starts a new file.
                    File.Move(path, claimed);
                }
            }
            catch (IOException)
            {
                continue;
            }
            var rows = new List<UsageRecord>();
            foreach (var line in await File.ReadAllLinesAsync(claimed, cancellationToken).ConfigureAwait(false))
            {
                if (line.Length == 0)
                {
                    continue;
                }
                try
                {
                    rows.Add(JsonSerializer.Deserialize(line, LedgerJsonContext.Default.UsageRecord)!);
                }
                catch (JsonException)
                {
                    // A line cut by a crash mid-write: the rest of the file is still good.
                }
            }
            try
            {
                for (var i = 0; i < rows.Count; i += _options.MaxBatchSize)
                {
                    var part = rows.GetRange(i, Math.Min(_options.MaxBatchSize, rows.Count - i));
                    await _store.WriteAsync(part, cancellationToken).ConfigureAwait(false);
                    _budgets.Written(part);
                }
                File.Delete(claimed);
                _telemetry.RecordLedgerRows("replayed", rows.Count);
                LogReplayed(_logger, rows.Count, path);
            }
            catch (Exception ex) when (IsDatabaseFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                // Back to a spill name; written rows are skipped by request id next time.
                File.Move(claimed, path, overwrite: false);
                Volatile.Write(ref _spillPending, true);
                MarkDown(ex);
                return;
            }
        }
    }

    /// <summary>A file claimed by a process that died mid-replay goes back to its spill name (Linux: the claimant's /proc entry is gone).</summary>
    private void ReclaimAbandonedReplays()
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists(_options.SpillDirectory))
        {
            return;
        }
        foreach (var claimed in Directory.GetFiles(_options.SpillDirectory, "spill-*.jsonl.replaying-*"))
        {
            var marker = claimed.LastIndexOf(".replaying-", StringComparison.Ordinal);
            if (int.TryParse(claimed.AsSpan(marker + ".replaying-".Length), out var pid) && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                File.Move(claimed, claimed[..marker], overwrite: false);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _buffer.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        SpillRemaining();
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger on {Provider}: {Count} migration(s) applied ({Versions})")]
    private static partial void LogMigrated(ILogger logger, LedgerProvider provider, int count, string versions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Usage ledger: the {Provider} schema could not be checked yet; rows are kept (buffer, then spill file) and it is retried")]
    private static partial void LogMigrationFailed(ILogger logger, Exception exception, LedgerProvider provider);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Usage ledger database unavailable ({Error}: {Reason}); rows spill to {Directory} until it answers")]
    private static partial void LogDatabaseDown(ILogger logger, string error, string reason, string directory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger database answering again")]
    private static partial void LogDatabaseBack(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger: replayed {Count} spilled rows from {Path}")]
    private static partial void LogReplayed(ILogger logger, int count, string path);

    [LoggerMessage(Level = LogLevel.Error, Message = "Usage ledger: {Count} rows could not be spilled to {Path}")]
    private static partial void LogSpillFailed(ILogger logger, Exception exception, int count, string path);
}
