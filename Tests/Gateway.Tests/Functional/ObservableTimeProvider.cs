using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Functional;

/// <summary>
/// Fake time that also reports each time a timer is armed, so a test can advance the clock exactly
/// after the code under test started waiting (no sleeps, no races).
/// </summary>
internal sealed class ObservableTimeProvider : FakeTimeProvider
{
    private readonly Channel<TimeSpan> _armed = Channel.CreateUnbounded<TimeSpan>();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        Report(dueTime);
        return new Observed(timer, this);
    }

    /// <summary>Waits until a timer is armed with exactly <paramref name="dueTime"/>.</summary>
    public async Task WaitForTimerAsync(TimeSpan dueTime, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (await _armed.Reader.ReadAsync(cts.Token) != dueTime)
        {
        }
    }

    private void Report(TimeSpan dueTime)
    {
        if (dueTime != Timeout.InfiniteTimeSpan)
        {
            _armed.Writer.TryWrite(dueTime);
        }
    }

    private sealed class Observed(ITimer inner, ObservableTimeProvider owner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var changed = inner.Change(dueTime, period);
            owner.Report(dueTime);
            return changed;
        }

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
