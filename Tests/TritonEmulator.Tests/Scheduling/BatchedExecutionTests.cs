using Microsoft.Extensions.Logging.Abstractions;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Tests.Scheduling;

/// <summary>
/// The scheduler's seam for models that batch their own forward pass (<see cref="IBatchedExecution"/>):
/// one pass per in-flight step for every running request, counted as one execution.
/// </summary>
public sealed class BatchedExecutionTests
{
    private static readonly SchedulerSettings Inflight = new() { Mode = BatchingMode.Inflight, MaxBatchSize = 2 };

    [Fact]
    public async Task BatchedModel_OnePassPerStepCoversEveryRunningRequest_AndCountsAsOneExecution()
    {
        var model = new RecordingModel();
        var observer = new RecordingObserver();
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, TimeProvider.System, observer, NullLogger.Instance, model);
        var a = new CountingWork(steps: 3);
        var b = new CountingWork(steps: 3);
        scheduler.Enqueue(a, 0, TimeSpan.Zero, CancellationToken.None);
        scheduler.Enqueue(b, 0, TimeSpan.Zero, CancellationToken.None);

        scheduler.Start();
        await Task.WhenAll(a.Done, b.Done).WaitAsync(TimeSpan.FromSeconds(20));
        await scheduler.DisposeAsync(); // the loop records the last step's execution before it stops

        // Both were admitted in the first iteration, so every pass had both, before their steps.
        Assert.Equal(3, model.Passes.Count);
        Assert.All(model.Passes, pass => Assert.Equal(new IScheduledWork[] { a, b }, pass));
        Assert.Equal(new[] { 1, 2, 3 }, a.PassesSeenAtStep);
        var executions = observer.Executions;
        Assert.Equal(3, executions.Count);
        Assert.All(executions, e => Assert.Equal(2, e.BatchSize));
        Assert.Equal(2, executions.Sum(static e => e.Inferences));
    }

    [Fact]
    public async Task BatchedModel_FailedPass_FailsEveryRequestInItWithTheError()
    {
        var model = new RecordingModel { Error = new InferenceException(InferenceErrorCode.Internal, "decode failed", FailureReason.Backend) };
        var observer = new RecordingObserver();
        await using var scheduler = new ModelScheduler(Inflight, TimingProfile.ZeroLatency, TimeProvider.System, observer, NullLogger.Instance, model);
        var a = new CountingWork(steps: 3);
        var b = new CountingWork(steps: 3);
        scheduler.Enqueue(a, 0, TimeSpan.Zero, CancellationToken.None);
        scheduler.Enqueue(b, 0, TimeSpan.Zero, CancellationToken.None);

        scheduler.Start();
        await Task.WhenAll(a.Done, b.Done).WaitAsync(TimeSpan.FromSeconds(20));

        // Failed by the step (not by the engine stopping): their rows and KV tokens are free.
        Assert.Same(model.Error, a.Error);
        Assert.Same(model.Error, b.Error);
        Assert.Empty(a.PassesSeenAtStep);
        Assert.Single(model.Passes);
        Assert.Equal(0, scheduler.ActiveSequences);
        Assert.Equal(0, scheduler.KvTokensInUse);
    }

    private sealed class RecordingModel : IBatchedExecution
    {
        private readonly List<IScheduledWork[]> _passes = [];

        public InferenceException? Error { get; init; }

        public IReadOnlyList<IScheduledWork[]> Passes
        {
            get
            {
                lock (_passes)
                {
                    return [.. _passes];
                }
            }
        }

        public void Execute(IReadOnlyList<IScheduledWork> works)
        {
            lock (_passes)
            {
                _passes.Add([.. works]);
                foreach (var work in works)
                {
                    ((CountingWork)work).PassCount = _passes.Count;
                }
            }
            if (Error is not null)
            {
                throw Error;
            }
        }
    }

    /// <summary>A request that ends after a number of steps and notes which pass each step followed.</summary>
    private sealed class CountingWork(int steps) : IScheduledWork
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int BatchSize => 1;

        public int PromptTokens => 1;

        public long KvTokens => 10;

        public int ResponsesWritten => PassesSeenAtStep.Count;

        public int PassCount { get; set; }

        public List<int> PassesSeenAtStep { get; } = [];

        public InferenceException? Error { get; private set; }

        public Task Done => _done.Task;

        public bool Step()
        {
            PassesSeenAtStep.Add(PassCount);
            if (PassesSeenAtStep.Count < steps)
            {
                return false;
            }
            _done.TrySetResult();
            return true;
        }

        public void Fail(InferenceException error)
        {
            Error = error;
            _done.TrySetResult();
        }
    }

    private sealed class RecordingObserver : ISchedulerObserver
    {
        private readonly List<(int BatchSize, int Inferences)> _executions = [];

        public IReadOnlyList<(int BatchSize, int Inferences)> Executions
        {
            get
            {
                lock (_executions)
                {
                    return [.. _executions];
                }
            }
        }

        public void QueueChanged(int pendingRequests)
        {
        }

        public void Executed(int batchSize, int inferences, TimeSpan compute)
        {
            lock (_executions)
            {
                _executions.Add((batchSize, inferences));
            }
        }

        public void ResponseWritten(int index, TimeSpan compute)
        {
        }

        public void Succeeded(int batchSize, TimeSpan total, TimeSpan queue, TimeSpan compute)
        {
        }

        public void Failed(FailureReason reason, TimeSpan total, int responseIndex)
        {
        }

        public void KvTokensChanged(long inUse, int activeSequences)
        {
        }
    }
}
