using System.Collections;

namespace TritonEmulator.Scheduling;

/// <summary>
/// Triton's dynamic-batcher queue: one FIFO per priority level (1 = highest), served highest level
/// first and in arrival order within a level. Admission takes from the front and stops at the first
/// request that does not fit, so a large request is never overtaken within its level. Enumerates in
/// service order. Not thread-safe: <see cref="ModelScheduler"/> holds its gate around every call.
/// </summary>
internal sealed class PriorityRequestQueue<T> : IEnumerable<T>
{
    private readonly LinkedList<T>[] _levels;

    public PriorityRequestQueue(int levels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(levels, 1);
        _levels = new LinkedList<T>[levels];
        for (var i = 0; i < _levels.Length; i++)
        {
            _levels[i] = new LinkedList<T>();
        }
    }

    public int Levels => _levels.Length;

    /// <summary>Requests waiting, over every level.</summary>
    public int Count
    {
        get
        {
            var count = 0;
            foreach (var level in _levels)
            {
                count += level.Count;
            }
            return count;
        }
    }

    /// <summary>Requests waiting at <paramref name="level"/> (1-based), for its policy's max queue size.</summary>
    public int CountAt(int level) => _levels[level - 1].Count;

    /// <summary>Queues <paramref name="item"/> last at <paramref name="level"/> (1-based); the node removes it again (<see cref="Remove"/>).</summary>
    public LinkedListNode<T> Enqueue(T item, int level) => _levels[level - 1].AddLast(item);

    /// <summary>Takes a queued request out (timeout, cancellation); false when it was no longer queued here.</summary>
    public bool Remove(LinkedListNode<T>? node)
    {
        if (node?.List is not { } list || Array.IndexOf(_levels, list) < 0)
        {
            return false;
        }
        list.Remove(node);
        return true;
    }

    /// <summary>
    /// Moves requests into <paramref name="taken"/> in service order while <paramref name="take"/>
    /// accepts them; stops at the first one it refuses, which stays queued with everything behind it.
    /// </summary>
    public void DequeueWhile(Func<T, bool> take, List<T> taken)
    {
        foreach (var level in _levels)
        {
            for (var node = level.First; node is not null;)
            {
                if (!take(node.Value))
                {
                    return;
                }
                var next = node.Next;
                level.Remove(node);
                taken.Add(node.Value);
                node = next;
            }
        }
    }

    /// <summary>Moves every queued request into <paramref name="taken"/>, in service order, and empties the queue.</summary>
    public void DrainTo(List<T> taken)
    {
        foreach (var level in _levels)
        {
            taken.AddRange(level);
            level.Clear();
        }
    }

    /// <summary>The request at the head of some level with the smallest <paramref name="key"/> (e.g. the longest waiting); default when empty.</summary>
    public T? MinHead(Func<T, long> key)
    {
        T? best = default;
        var found = false;
        var bestKey = 0L;
        foreach (var level in _levels)
        {
            if (level.First is { } first && (!found || key(first.Value) < bestKey))
            {
                (best, bestKey, found) = (first.Value, key(first.Value), true);
            }
        }
        return best;
    }

    public IEnumerator<T> GetEnumerator()
    {
        foreach (var level in _levels)
        {
            foreach (var item in level)
            {
                yield return item;
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
