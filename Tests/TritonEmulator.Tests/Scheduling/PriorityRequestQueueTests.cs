using TritonEmulator.Scheduling;

namespace TritonEmulator.Tests.Scheduling;

/// <summary>The dynamic batcher's queue alone: levels served highest first, FIFO within a level, head-of-line blocking.</summary>
public sealed class PriorityRequestQueueTests
{
    private sealed record Request(string Name, int Rows, long EnqueuedAt = 0);

    [Fact]
    public void Enumerates_HighestLevelFirst_ThenInArrivalOrder()
    {
        var queue = new PriorityRequestQueue<Request>(3);
        queue.Enqueue(new("low-1", 1), 3);
        queue.Enqueue(new("normal-1", 1), 2);
        queue.Enqueue(new("high-1", 1), 1);
        queue.Enqueue(new("low-2", 1), 3);
        queue.Enqueue(new("high-2", 1), 1);

        Assert.Equal(["high-1", "high-2", "normal-1", "low-1", "low-2"], queue.Select(r => r.Name));
        Assert.Equal(5, queue.Count);
        Assert.Equal(2, queue.CountAt(1));
        Assert.Equal(1, queue.CountAt(2));
        Assert.Equal(2, queue.CountAt(3));
    }

    [Fact]
    public void DequeueWhile_TakesInServiceOrder_AndStopsAtTheFirstThatDoesNotFit()
    {
        var queue = new PriorityRequestQueue<Request>(2);
        queue.Enqueue(new("high", 2), 1);
        queue.Enqueue(new("big", 4), 2);
        queue.Enqueue(new("small", 1), 2); // would fit, but may not overtake "big" in its level
        var freeRows = 3;
        var taken = new List<Request>();

        queue.DequeueWhile(r =>
        {
            if (r.Rows > freeRows)
            {
                return false;
            }
            freeRows -= r.Rows;
            return true;
        }, taken);

        Assert.Equal(["high"], taken.Select(r => r.Name));
        Assert.Equal(["big", "small"], queue.Select(r => r.Name));
    }

    [Fact]
    public void Remove_TakesAQueuedRequestOutOnce()
    {
        var queue = new PriorityRequestQueue<Request>(1);
        var first = queue.Enqueue(new("first", 1), 1);
        queue.Enqueue(new("second", 1), 1);

        Assert.True(queue.Remove(first));
        Assert.False(queue.Remove(first)); // a timeout racing a cancellation: only one of them finishes it
        Assert.False(queue.Remove(null));
        Assert.Equal(["second"], queue.Select(r => r.Name));
    }

    [Fact]
    public void Remove_ANodeOfAnotherQueue_IsRefused()
    {
        var mine = new PriorityRequestQueue<Request>(1);
        var other = new PriorityRequestQueue<Request>(1);
        var node = other.Enqueue(new("elsewhere", 1), 1);

        Assert.False(mine.Remove(node));
        Assert.Equal(1, other.Count);
    }

    [Fact]
    public void MinHead_IsTheLongestWaitingHeadOfAnyLevel()
    {
        var queue = new PriorityRequestQueue<Request>(2);
        Assert.Null(queue.MinHead(r => r.EnqueuedAt));
        queue.Enqueue(new("high-new", 1, EnqueuedAt: 50), 1);
        queue.Enqueue(new("normal-old", 1, EnqueuedAt: 10), 2);
        queue.Enqueue(new("normal-older-behind", 1, EnqueuedAt: 5), 2); // not a head: not considered

        Assert.Equal("normal-old", queue.MinHead(r => r.EnqueuedAt)?.Name);
    }

    [Fact]
    public void DrainTo_EmptiesEveryLevel_InServiceOrder()
    {
        var queue = new PriorityRequestQueue<Request>(2);
        queue.Enqueue(new("normal", 1), 2);
        queue.Enqueue(new("high", 1), 1);
        var all = new List<Request> { new("running", 1) };

        queue.DrainTo(all);

        Assert.Equal(["running", "high", "normal"], all.Select(r => r.Name));
        Assert.Equal(0, queue.Count);
        Assert.Empty(queue);
    }
}
