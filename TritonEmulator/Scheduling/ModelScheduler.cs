using Microsoft.Extensions.Logging;

namespace TritonEmulator.Scheduling;

/// <summary>
/// The engine loop of one model: a priority queue (<see cref="PriorityRequestQueue{T}"/>) with Triton's queue policies in front of a batch
/// that runs either statically (FasterTransformer: until its longest sequence ends) or in flight
/// (sequences join and leave at every step). All waits go through the injected <see cref="TimeProvider"/>.
/// A model that batches its own forward pass (<see cref="IBatchedExecution"/>) runs it once per step,
/// before the works' steps, and each in-flight step counts as one execution.
/// </summary>
internal sealed partial class ModelScheduler : IAsyncDisposable
{
    private readonly SchedulerSettings _settings;
    private readonly TimingProfile _timing;
    private readonly TimeProvider _time;
    private readonly ISchedulerObserver _observer;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly PriorityRequestQueue<Entry> _queue;
    private readonly List<Entry> _active = [];
    private readonly IBatchedExecution? _batched;
    private readonly List<IScheduledWork> _stepWorks = [];
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _wake = NewSignal();
    private TaskCompletionSource _waitChanged = NewSignal();
    private SchedulerWait _currentWait = new(0, null, false);
    private long _waitSequence;
    private long _kvInUse;
    private Task _loop = Task.CompletedTask;
    private int _disposed;

    public ModelScheduler(SchedulerSettings settings, TimingProfile timing, TimeProvider time, ISchedulerObserver observer, ILogger logger, IBatchedExecution? batched = null)
    {
        _batched = batched;
        _settings = settings;
        _timing = timing;
        _time = time;
        _observer = observer;
        _logger = logger;
        _queue = new PriorityRequestQueue<Entry>(settings.PriorityLevels);
    }

    public SchedulerSettings Settings => _settings;

    public TimingProfile Timing => _timing;

    /// <summary>Requests waiting in the queue.</summary>
    public int QueuedCount
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Rows generating now.</summary>
    public int ActiveSequences
    {
        get
        {
            lock (_gate)
            {
                return ActiveRows();
            }
        }
    }

    public long KvTokensInUse => Interlocked.Read(ref _kvInUse);

    /// <summary>What the loop waits for now (tests step a fake clock with it).</summary>
    public SchedulerWait CurrentWait
    {
        get
        {
            lock (_gate)
            {
                return _currentWait;
            }
        }
    }

    public void Start() => _loop = Task.Run(() => RunAsync(_stopping.Token));

    /// <summary>
    /// Queues a request or rejects it at once (full queue, too large for the batch or the KV cache).
    /// </summary>
    public void Enqueue(IScheduledWork work, ulong priority, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (work.BatchSize > _settings.MaxBatchSize)
        {
            throw new InferenceException(InferenceErrorCode.InvalidArgument,
                $"inference request batch-size must be <= {_settings.MaxBatchSize}", FailureReason.Rejected);
        }
        if (work.KvTokens > _timing.KvCapacityTokens)
        {
            throw new InferenceException(InferenceErrorCode.InvalidArgument,
                $"request needs {work.KvTokens} KV-cache tokens (prompt + request_output_len per row) but the engine holds {_timing.KvCapacityTokens}",
                FailureReason.Rejected);
        }
        var level = _settings.ResolvePriority(priority);
        var policy = _settings.Policies[level - 1];
        var entry = new Entry(this, work, level, _time.GetTimestamp());
        // Timer and cancellation are attached before the entry is queued: once queued, the loop may admit
        // and finish it at once, and Finish must find both to dispose them. One that fires before the entry
        // is queued records its outcome (under _gate), and the entry is finished instead of queued.
        var effectiveTimeout = policy.EffectiveTimeout(timeout);
        if (effectiveTimeout > TimeSpan.Zero && !policy.DelayOnTimeout)
        {
            entry.Timer = _time.CreateTimer(static state => ((Entry)state!).Owner.OnQueueTimeout((Entry)state!),
                entry, effectiveTimeout, Timeout.InfiniteTimeSpan);
        }
        entry.Cancellation = cancellationToken.Register(static state => ((Entry)state!).Owner.OnCancelled((Entry)state!), entry);
        InferenceException? rejected = null;
        InferenceException? early;
        lock (_gate)
        {
            entry.Published = true;
            early = entry.EarlyError;
            if (_closed is not null || _stopping.IsCancellationRequested)
            {
                rejected = new InferenceException(InferenceErrorCode.Unavailable, _closed ?? StoppingMessage, FailureReason.Rejected);
            }
            else if (early is null && policy.MaxQueueSize > 0 && _queue.CountAt(level) >= policy.MaxQueueSize)
            {
                rejected = new InferenceException(InferenceErrorCode.Unavailable, "Exceeds maximum queue size", FailureReason.Rejected);
            }
            else if (early is null)
            {
                entry.Node = _queue.Enqueue(entry, level);
                _observer.QueueChanged(_queue.Count);
            }
        }
        if (rejected is not null)
        {
            Interlocked.Exchange(ref entry.Finished, 1);
            entry.Timer?.Dispose();
            entry.Cancellation.Dispose();
            throw rejected;
        }
        if (early is not null)
        {
            Finish(entry, early);
            return;
        }
        Signal();
    }

    private const string StoppingMessage = "Server is stopping";

    private const string LoopFailedMessage = "The model's engine loop failed";

    /// <summary>Set under _gate when the loop has ended (stopped or failed): Enqueue refuses from then on.</summary>
    private string? _closed;

    private void OnQueueTimeout(Entry entry)
    {
        var error = new InferenceException(InferenceErrorCode.Unavailable, "Request timeout expired", FailureReason.Rejected);
        lock (_gate)
        {
            if (!entry.Published)
            {
                entry.EarlyError ??= error;
                return;
            }
        }
        if (RemoveQueued(entry))
        {
            Finish(entry, error);
        }
    }

    private int _cancellationsSeen;

    /// <summary>Cancellations observed so far (queued or running requests).</summary>
    public int CancellationsSeen => Volatile.Read(ref _cancellationsSeen);

    private void OnCancelled(Entry entry)
    {
        Interlocked.Increment(ref _cancellationsSeen);
        lock (_gate)
        {
            entry.CancelRequested = true;
            if (!entry.Published)
            {
                entry.EarlyError ??= Cancelled();
                return;
            }
        }
        if (RemoveQueued(entry))
        {
            Finish(entry, Cancelled());
            return;
        }
        // Running: the loop drops it before the next step.
        entry.CancelRequested = true;
        Signal();
    }

    private static InferenceException Cancelled() =>
        new(InferenceErrorCode.Cancelled, "Request was cancelled", FailureReason.Canceled);

    private bool RemoveQueued(Entry entry)
    {
        lock (_gate)
        {
            if (!_queue.Remove(entry.Node))
            {
                return false;
            }
            entry.Node = null;
            _observer.QueueChanged(_queue.Count);
            return true;
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                var wake = WakeSignal();
                DropCancelledActive();
                if (_settings.Mode == BatchingMode.Static)
                {
                    await StaticIterationAsync(wake, stopping);
                }
                else
                {
                    await InflightIterationAsync(wake, stopping);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            LogLoopFailed(_logger, exception);
        }
        FailAll(stopping.IsCancellationRequested ? StoppingMessage : LoopFailedMessage);
    }

    private async Task StaticIterationAsync(Task wake, CancellationToken stopping)
    {
        if (_active.Count > 0)
        {
            var rows = ActiveRows();
            var step = _timing.Step(rows);
            await DelayAsync(step, stopping);
            DropCancelledActive();
            StepActive();
            if (_active.Count == 0)
            {
                EndBatch();
            }
            return;
        }
        // Form a new batch, waiting up to max_queue_delay for it to fill.
        List<Entry> admitted;
        TimeSpan? fillDelay = null;
        lock (_gate)
        {
            var queuedRows = QueuedRows();
            if (queuedRows == 0)
            {
                admitted = [];
            }
            else
            {
                var target = _settings.PreferredBatchSizes.Count > 0 ? _settings.PreferredBatchSizes.Max() : _settings.MaxBatchSize;
                var waited = _time.GetElapsedTime(_queue.MinHead(static e => e.EnqueuedAt)!.EnqueuedAt);
                if (queuedRows < Math.Min(target, _settings.MaxBatchSize) && waited < _settings.MaxQueueDelay)
                {
                    admitted = [];
                    fillDelay = _settings.MaxQueueDelay - waited;
                }
                else
                {
                    admitted = AdmitLocked(_settings.MaxBatchSize, _timing.KvCapacityTokens);
                }
            }
        }
        if (admitted.Count == 0)
        {
            await WaitAsync(wake, fillDelay, stopping);
            return;
        }
        _batchStartedAt = _time.GetTimestamp();
        _batchRows = 0;
        foreach (var entry in admitted)
        {
            _batchRows += entry.Work.BatchSize;
        }
        var prefill = _timing.Prefill(PrefillTokens(admitted));
        await DelayAsync(prefill, stopping);
        DropCancelledActive();
        StepActive();
        if (_active.Count == 0)
        {
            EndBatch();
        }
    }

    private long _batchStartedAt;
    private int _batchRows;

    private void EndBatch()
    {
        if (_batchRows > 0)
        {
            _observer.Executed(_batchRows, _batchRows, _time.GetElapsedTime(_batchStartedAt));
            _batchRows = 0;
        }
    }

    private async Task InflightIterationAsync(Task wake, CancellationToken stopping)
    {
        List<Entry> admitted;
        lock (_gate)
        {
            admitted = AdmitLocked(_settings.MaxBatchSize - ActiveRows(), _timing.KvCapacityTokens - Interlocked.Read(ref _kvInUse));
        }
        if (_active.Count == 0)
        {
            await WaitAsync(wake, null, stopping);
            return;
        }
        var decodingRows = ActiveRows() - Rows(admitted);
        var cost = (admitted.Count > 0 ? _timing.Prefill(PrefillTokens(admitted)) : TimeSpan.Zero)
            + (decodingRows > 0 ? _timing.Step(decodingRows) : TimeSpan.Zero);
        await DelayAsync(cost, stopping);
        if (_batched is null)
        {
            if (admitted.Count > 0)
            {
                _observer.Executed(Rows(admitted), Rows(admitted), cost);
            }
            DropCancelledActive();
            StepActive();
            return;
        }
        // One forward pass for every running request: one execution of that many rows.
        DropCancelledActive();
        var rows = ActiveRows();
        if (rows == 0)
        {
            return;
        }
        var started = _time.GetTimestamp();
        StepActive();
        _observer.Executed(rows, Rows(admitted), cost + _time.GetElapsedTime(started));
    }

    /// <summary>Moves queued requests into the active batch, highest priority first, while rows and KV fit.</summary>
    private List<Entry> AdmitLocked(int freeRows, long freeKv)
    {
        var admitted = new List<Entry>();
        // Keep FIFO order within a level: a request that does not fit blocks the ones behind it.
        _queue.DequeueWhile(entry =>
        {
            var work = entry.Work;
            if (freeRows <= 0 || work.BatchSize > freeRows || work.KvTokens > freeKv)
            {
                return false;
            }
            freeRows -= work.BatchSize;
            freeKv -= work.KvTokens;
            return true;
        }, admitted);
        foreach (var entry in admitted)
        {
            entry.Node = null;
        }
        return Admitted(admitted);
    }

    private List<Entry> Admitted(List<Entry> admitted)
    {
        if (admitted.Count == 0)
        {
            return admitted;
        }
        var now = _time.GetTimestamp();
        foreach (var entry in admitted)
        {
            entry.Timer?.Dispose();
            entry.StartedAt = now;
            entry.LastResponseAt = now;
            _active.Add(entry);
            Interlocked.Add(ref _kvInUse, entry.Work.KvTokens);
        }
        _observer.QueueChanged(_queue.Count);
        _observer.KvTokensChanged(Interlocked.Read(ref _kvInUse), ActiveRows());
        return admitted;
    }

    private void StepActive()
    {
        if (_batched is not null && !ExecuteBatched(_batched))
        {
            return;
        }
        for (var i = 0; i < _active.Count; i++)
        {
            var entry = _active[i];
            if (entry.CancelRequested)
            {
                // Cancelled while this step ran (after DropCancelledActive): no token after the cancellation.
                RemoveActiveAt(i--);
                Finish(entry, Cancelled());
                continue;
            }
            bool finished;
            var index = entry.Work.ResponsesWritten;
            try
            {
                finished = entry.Work.Step();
            }
            catch (Exception exception)
            {
                LogStepFailed(_logger, exception);
                RemoveActiveAt(i--);
                Finish(entry, exception as InferenceException
                    ?? new InferenceException(InferenceErrorCode.Internal, exception.Message, FailureReason.Backend));
                continue;
            }
            var now = _time.GetTimestamp();
            for (var r = index; r < entry.Work.ResponsesWritten; r++)
            {
                _observer.ResponseWritten(r, _time.GetElapsedTime(entry.LastResponseAt, now));
            }
            entry.LastResponseAt = now;
            if (finished)
            {
                RemoveActiveAt(i--);
                Finish(entry, null);
            }
        }
    }

    /// <summary>The model's shared forward pass; when it fails, every request in it fails.</summary>
    private bool ExecuteBatched(IBatchedExecution batched)
    {
        if (_active.Count == 0)
        {
            return false;
        }
        _stepWorks.Clear();
        foreach (var entry in _active)
        {
            _stepWorks.Add(entry.Work);
        }
        try
        {
            batched.Execute(_stepWorks);
            return true;
        }
        catch (Exception exception)
        {
            LogStepFailed(_logger, exception);
            var error = exception as InferenceException
                ?? new InferenceException(InferenceErrorCode.Internal, exception.Message, FailureReason.Backend);
            while (_active.Count > 0)
            {
                var entry = _active[^1];
                RemoveActiveAt(_active.Count - 1);
                Finish(entry, error);
            }
            return false;
        }
        finally
        {
            _stepWorks.Clear();
        }
    }

    private void DropCancelledActive()
    {
        for (var i = 0; i < _active.Count; i++)
        {
            if (_active[i].CancelRequested)
            {
                var entry = _active[i];
                RemoveActiveAt(i--);
                Finish(entry, Cancelled());
            }
        }
    }

    private void RemoveActiveAt(int index)
    {
        var entry = _active[index];
        lock (_gate)
        {
            _active.RemoveAt(index);
        }
        Interlocked.Add(ref _kvInUse, -entry.Work.KvTokens);
        _observer.KvTokensChanged(Interlocked.Read(ref _kvInUse), ActiveRows());
    }

    private void Finish(Entry entry, InferenceException? error)
    {
        if (Interlocked.Exchange(ref entry.Finished, 1) == 1)
        {
            return;
        }
        entry.Timer?.Dispose();
        entry.Cancellation.Dispose();
        var total = _time.GetElapsedTime(entry.EnqueuedAt);
        if (error is null)
        {
            var queue = TimeSpan.Zero;
            var compute = TimeSpan.Zero;
            if (entry.StartedAt != 0)
            {
                queue = _time.GetElapsedTime(entry.EnqueuedAt, entry.StartedAt);
                compute = _time.GetElapsedTime(entry.StartedAt);
            }
            _observer.Succeeded(entry.Work.BatchSize, total, queue, compute);
            return;
        }
        _observer.Failed(error.Reason, total, entry.Work.ResponsesWritten);
        entry.Work.Fail(error);
    }

    private void FailAll(string message)
    {
        var error = new InferenceException(InferenceErrorCode.Unavailable, message, FailureReason.Other);
        List<Entry> all;
        lock (_gate)
        {
            // Closed under the same lock as the drain: an Enqueue either lands before it (and is failed
            // here) or sees _closed and is refused.
            _closed ??= message;
            all = [.. _active];
            var queued = all.Count;
            _queue.DrainTo(all);
            for (var i = queued; i < all.Count; i++)
            {
                all[i].Node = null;
            }
            _active.Clear();
        }
        foreach (var entry in all)
        {
            Finish(entry, error);
        }
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken stopping)
    {
        if (delay <= TimeSpan.Zero)
        {
            return Task.CompletedTask;
        }
        return WaitAsync(null, delay, stopping);
    }

    private async Task WaitAsync(Task? wake, TimeSpan? delay, CancellationToken stopping)
    {
        using var delayCancellation = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var tasks = new List<Task>(2);
        if (wake is not null)
        {
            tasks.Add(wake);
        }
        // Without a timer, an infinite delay still wakes the loop when the engine stops.
        tasks.Add(delay is { } d ? Task.Delay(d, _time, delayCancellation.Token) : Task.Delay(Timeout.InfiniteTimeSpan, delayCancellation.Token));
        SetWait(new SchedulerWait(Interlocked.Increment(ref _waitSequence), delay is { } dd ? _time.GetUtcNow() + dd : null, wake is not null));
        try
        {
            var completed = await Task.WhenAny(tasks);
            stopping.ThrowIfCancellationRequested();
            await completed;
        }
        finally
        {
            delayCancellation.Cancel();
            SetWait(new SchedulerWait(Interlocked.Increment(ref _waitSequence), null, false));
            stopping.ThrowIfCancellationRequested();
        }
    }

    private void SetWait(SchedulerWait wait)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _currentWait = wait;
            changed = _waitChanged;
            _waitChanged = NewSignal();
        }
        changed.TrySetResult();
    }

    /// <summary>Completes when the loop starts or stops waiting (test hook for fake clocks).</summary>
    public Task WaitChangedAsync()
    {
        lock (_gate)
        {
            return _waitChanged.Task;
        }
    }

    private Task WakeSignal()
    {
        lock (_gate)
        {
            if (_wake.Task.IsCompleted)
            {
                _wake = NewSignal();
            }
            return _wake.Task;
        }
    }

    private void Signal()
    {
        lock (_gate)
        {
            _wake.TrySetResult();
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int QueuedRows()
    {
        var rows = 0;
        foreach (var entry in _queue)
        {
            rows += entry.Work.BatchSize;
        }
        return rows;
    }

    private int ActiveRows()
    {
        var rows = 0;
        foreach (var entry in _active)
        {
            rows += entry.Work.BatchSize;
        }
        return rows;
    }

    private static int Rows(List<Entry> entries)
    {
        var rows = 0;
        foreach (var entry in entries)
        {
            rows += entry.Work.BatchSize;
        }
        return rows;
    }

    /// <summary>The tokens the admitted requests' prefill computes (each asked once, at admission; cached prefixes are not computed).</summary>
    private static int PrefillTokens(List<Entry> entries)
    {
        var tokens = 0;
        foreach (var entry in entries)
        {
            tokens += entry.Work.BeginPrefill();
        }
        return tokens;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        _stopping.Cancel();
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        // A loop that never started leaves its queue to us.
        FailAll(StoppingMessage);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "The engine loop failed")]
    private static partial void LogLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "A model step failed")]
    private static partial void LogStepFailed(ILogger logger, Exception exception);

    private sealed class Entry(ModelScheduler owner, IScheduledWork work, int level, long enqueuedAt)
    {
        public ModelScheduler Owner { get; } = owner;
        public IScheduledWork Work { get; } = work;
        public int Level { get; } = level;
        public long EnqueuedAt { get; } = enqueuedAt;
        public long StartedAt { get; set; }
        public long LastResponseAt { get; set; }
        public LinkedListNode<Entry>? Node { get; set; }
        public ITimer? Timer { get; set; }
        public CancellationTokenRegistration Cancellation { get; set; }
        public volatile bool CancelRequested;
        public bool Published;
        public InferenceException? EarlyError;
        public int Finished;
    }
}

/// <summary>What the engine loop waits for: a timer due at <see cref="Until"/> and/or new work.</summary>
internal sealed record SchedulerWait(long Sequence, DateTimeOffset? Until, bool ForWork);
