namespace Gateway.Grpc.Collections;

/// <summary>
/// Recency order over the slots <c>0 .. capacity-1</c> of a fixed-size table: a doubly linked list
/// kept in two index arrays, so pushing, unlinking and moving a slot to the front are O(1) and
/// nothing is allocated after construction. Not thread-safe (its owner holds the lock). Shared by the
/// gateway's per-replica prefix table and the emulator's prefix KV cache.
/// </summary>
public sealed class LruOrder
{
    private readonly int[] _previous;
    private readonly int[] _next;

    public LruOrder(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _previous = new int[capacity];
        _next = new int[capacity];
    }

    /// <summary>The most recently used slot, or -1 when none is linked.</summary>
    public int Head { get; private set; } = -1;

    /// <summary>The least recently used slot, or -1 when none is linked.</summary>
    public int Tail { get; private set; } = -1;

    /// <summary>Links a slot that is not in the list as the most recently used.</summary>
    public void PushFront(int slot)
    {
        _previous[slot] = -1;
        _next[slot] = Head;
        if (Head >= 0)
        {
            _previous[Head] = slot;
        }
        Head = slot;
        if (Tail < 0)
        {
            Tail = slot;
        }
    }

    /// <summary>Makes a linked slot the most recently used.</summary>
    public void MoveToFront(int slot)
    {
        if (slot == Head)
        {
            return;
        }
        Unlink(slot);
        PushFront(slot);
    }

    /// <summary>Takes a linked slot out of the list.</summary>
    public void Unlink(int slot)
    {
        var previous = _previous[slot];
        var next = _next[slot];
        if (previous >= 0)
        {
            _next[previous] = next;
        }
        else
        {
            Head = next;
        }
        if (next >= 0)
        {
            _previous[next] = previous;
        }
        else
        {
            Tail = previous;
        }
    }

    /// <summary>Forgets every link.</summary>
    public void Clear() => Head = Tail = -1;
}
