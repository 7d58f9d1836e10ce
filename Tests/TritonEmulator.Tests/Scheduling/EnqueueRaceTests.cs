using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Tests.Scheduling;

/// <summary>
/// <see cref="ModelScheduler.Enqueue"/> against the engine loop: a request is either rejected at once or
/// completed exactly once, whatever the loop is doing when it arrives. Each test forces one interleaving
/// with hooks (the injected clock, a work's step, an observer), never with sleeps.
/// </summary>
public sealed class EnqueueRaceTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static readonly SchedulerSettings Inflight = new() { Mode = BatchingMode.Inflight, MaxBatchSize = 2 };

    [Fact]
    public async Task Enqueue_AfterTheLoopFailed_IsRejectedAsUnavailable()
    {
        var observer = new TestObserver { ExecutedError = new InvalidOperationException("observer failed") };
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, new FakeTimeProvider(), observer, NullLogger.Instance);
        var first = new TestWork(steps: 1);
        scheduler.Enqueue(first, 0, TimeSpan.Zero, CancellationToken.None);
        scheduler.Start();
        // The first execution throws out of the loop, which fails what it holds and ends.
        await first.Done.WaitAsync(Patience);
        Assert.Equal(InferenceErrorCode.Unavailable, first.Error?.Code);

        // Nothing will ever run a request queued now: it must be refused, not left waiting.
        var late = new TestWork(steps: 1);
        var error = Assert.Throws<InferenceException>(() => scheduler.Enqueue(late, 0, TimeSpan.Zero, CancellationToken.None));

        Assert.Equal(InferenceErrorCode.Unavailable, error.Code);
        Assert.Equal(FailureReason.Rejected, error.Reason);
        Assert.Equal(0, scheduler.QueuedCount);
        Assert.False(late.Done.IsCompleted);
    }

    [Fact]
    public async Task Dispose_BeforeTheLoopStarted_FailsTheQueuedRequests()
    {
        var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, new FakeTimeProvider(), new TestObserver(), NullLogger.Instance);
        var queued = new TestWork(steps: 1);
        scheduler.Enqueue(queued, 0, TimeSpan.Zero, CancellationToken.None);

        await scheduler.DisposeAsync();

        Assert.True(queued.Done.IsCompleted, "a request queued before the loop started was left waiting after disposal");
        Assert.Equal(InferenceErrorCode.Unavailable, queued.Error?.Code);
        Assert.Equal(0, scheduler.QueuedCount);
    }

    [Fact]
    public async Task Enqueue_LoopFinishesTheRequestBeforeEnqueueReturns_LeavesNoTimerOrCancellationBehind()
    {
        var time = new HookedTimeProvider(new FakeTimeProvider());
        var observer = new TestObserver();
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, time, observer, NullLogger.Instance);
        // "running" keeps the loop stepping (so it admits "late" without being woken) until "late" has finished.
        var running = new TestWork(until: () => observer.SucceededCount >= 1);
        scheduler.Enqueue(running, 0, TimeSpan.Zero, CancellationToken.None);
        scheduler.Start();
        await running.FirstStep.WaitAsync(Patience);
        var late = new TestWork(steps: 1);
        time.TimerCreating = () =>
        {
            // Enqueue creates the queue timer of "late". If "late" is already visible to the loop at this
            // point (queued, running or done), let the loop run it to the end before Enqueue goes on.
            if (scheduler.QueuedCount > 0 || scheduler.ActiveSequences > 1 || observer.SucceededCount > 0)
            {
                Assert.True(observer.WaitFirstSucceeded(Patience), "the loop did not finish the visible request");
            }
        };
        using var cancellation = new CancellationTokenSource();

        scheduler.Enqueue(late, 0, TimeSpan.FromMinutes(1), cancellation.Token);
        await Task.WhenAll(running.Done, late.Done).WaitAsync(Patience);
        cancellation.Cancel();

        Assert.Null(late.Error);
        Assert.Equal(1, late.Steps);
        // The finished request took its timer and its cancellation callback with it.
        Assert.True(time.Timers.Single().Disposed, "the queue timer of a finished request was never disposed");
        Assert.Equal(0, scheduler.CancellationsSeen);
    }

    [Fact]
    public async Task Cancellation_DuringTheBatchStep_IsNotSteppedAgain()
    {
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, new FakeTimeProvider(), new TestObserver(), NullLogger.Instance);
        using var cancellation = new CancellationTokenSource();
        // Both rows run in one step; the first one's step cancels the second (a client hanging up mid-step).
        var first = new TestWork(steps: 3) { OnStep = cancellation.Cancel };
        var second = new TestWork(steps: 3);
        scheduler.Enqueue(first, 0, TimeSpan.Zero, CancellationToken.None);
        scheduler.Enqueue(second, 0, TimeSpan.Zero, cancellation.Token);

        scheduler.Start();
        await Task.WhenAll(first.Done, second.Done).WaitAsync(Patience);

        Assert.Equal(InferenceErrorCode.Cancelled, second.Error?.Code);
        Assert.Equal(0, second.Steps);
        Assert.Null(first.Error);
        Assert.Equal(1, scheduler.CancellationsSeen);
        Assert.Equal(0, scheduler.ActiveSequences);
        Assert.Equal(0, scheduler.KvTokensInUse);
    }

    [Fact]
    public async Task Enqueue_TokenAlreadyCancelled_FailsTheRequestAsCancelled_WithoutQueueingIt()
    {
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, new FakeTimeProvider(), new TestObserver(), NullLogger.Instance);
        var work = new TestWork(steps: 1);

        scheduler.Enqueue(work, 0, TimeSpan.FromMinutes(1), new CancellationToken(canceled: true));
        scheduler.Start();
        await work.Done.WaitAsync(Patience);

        Assert.Equal(InferenceErrorCode.Cancelled, work.Error?.Code);
        Assert.Equal(0, work.Steps);
        Assert.Equal(0, scheduler.QueuedCount);
    }

    [Fact]
    public async Task Enqueue_QueueTimerFiresBeforeTheRequestIsQueued_FailsItWithTheTimeout()
    {
        var fake = new FakeTimeProvider();
        var time = new HookedTimeProvider(fake);
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, time, new TestObserver(), NullLogger.Instance);
        var work = new TestWork(steps: 1);
        // The timer is due as soon as it exists (a 1 µs timeout on a busy machine).
        time.TimerCreated = () => fake.Advance(TimeSpan.FromSeconds(1));

        scheduler.Enqueue(work, 0, TimeSpan.FromMicroseconds(1), CancellationToken.None);
        scheduler.Start();
        await work.Done.WaitAsync(Patience);

        Assert.Equal("Request timeout expired", work.Error?.Message);
        Assert.Equal(0, work.Steps);
        Assert.Equal(0, scheduler.QueuedCount);
    }

    /// <summary>A request of one row that ends after a number of steps, or when a condition holds.</summary>
    private sealed class TestWork : IScheduledWork
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _firstStep = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly int _steps;
        private readonly Func<bool>? _until;
        private int _stepCount;

        public TestWork(int steps) => _steps = steps;

        public TestWork(Func<bool> until) => _until = until;

        public Action? OnStep { get; init; }

        public int BatchSize => 1;

        public int PromptTokens => 1;

        public long KvTokens => 10;

        public int ResponsesWritten => Volatile.Read(ref _stepCount);

        public int Steps => Volatile.Read(ref _stepCount);

        public InferenceException? Error { get; private set; }

        public Task Done => _done.Task;

        public Task FirstStep => _firstStep.Task;

        public bool Step()
        {
            var steps = Interlocked.Increment(ref _stepCount);
            _firstStep.TrySetResult();
            OnStep?.Invoke();
            var finished = _until is { } until ? until() : steps >= _steps;
            if (finished)
            {
                _done.TrySetResult();
            }
            return finished;
        }

        public void Fail(InferenceException error)
        {
            Error = error;
            _done.TrySetResult();
        }
    }

    private sealed class TestObserver : ISchedulerObserver
    {
        private readonly ManualResetEventSlim _firstSucceeded = new();
        private int _succeeded;

        public Exception? ExecutedError { get; init; }

        public int SucceededCount => Volatile.Read(ref _succeeded);

        /// <summary>Set once the first request has been completed (after its timer and cancellation are released).</summary>
        public bool WaitFirstSucceeded(TimeSpan timeout) => _firstSucceeded.Wait(timeout);

        public void QueueChanged(int pendingRequests)
        {
        }

        public void Executed(int batchSize, int inferences, TimeSpan compute)
        {
            if (ExecutedError is not null)
            {
                throw ExecutedError;
            }
        }

        public void ResponseWritten(int index, TimeSpan compute)
        {
        }

        public void Succeeded(int batchSize, TimeSpan total, TimeSpan queue, TimeSpan compute)
        {
            Interlocked.Increment(ref _succeeded);
            _firstSucceeded.Set();
        }

        public void Failed(FailureReason reason, TimeSpan total, int responseIndex)
        {
        }

        public void KvTokensChanged(long inUse, int activeSequences)
        {
        }
    }

    /// <summary>A fake clock that runs hooks around timer creation and notes whether each timer was disposed.</summary>
    private sealed class HookedTimeProvider(FakeTimeProvider inner) : TimeProvider
    {
        private readonly List<RecordedTimer> _timers = [];

        public Action? TimerCreating { get; set; }

        public Action? TimerCreated { get; set; }

        public IReadOnlyList<RecordedTimer> Timers
        {
            get
            {
                lock (_timers)
                {
                    return [.. _timers];
                }
            }
        }

        public override long TimestampFrequency => inner.TimestampFrequency;

        public override long GetTimestamp() => inner.GetTimestamp();

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

        public override TimeZoneInfo LocalTimeZone => inner.LocalTimeZone;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            TimerCreating?.Invoke();
            var timer = new RecordedTimer(inner.CreateTimer(callback, state, dueTime, period));
            lock (_timers)
            {
                _timers.Add(timer);
            }
            TimerCreated?.Invoke();
            return timer;
        }
    }

    private sealed class RecordedTimer(ITimer inner) : ITimer
    {
        private int _disposed;

        public bool Disposed => Volatile.Read(ref _disposed) == 1;

        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

        public void Dispose()
        {
            Volatile.Write(ref _disposed, 1);
            inner.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
