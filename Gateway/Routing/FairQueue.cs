namespace Gateway.Routing;

/// <summary>
/// The admission queue: priority classes served strictly in order (class 0 first); within a class,
/// tenants round robin, each tenant's own requests first in, first out. So one tenant's burst
/// waits behind its own requests and every other tenant's next one gets the next free slot; a
/// tenant is in the rotation only while it has requests queued (memory bounded by the queue). With
/// fairness off, a class is one first-in first-out queue. Not thread-safe (the router locks).
/// </summary>
internal sealed class FairQueue<T>(bool fair, int classes = 3)
{
    private readonly Band[] _bands = CreateBands(classes);

    public int Count { get; private set; }

    public void Enqueue(T item, int priorityClass, string tenant)
    {
        var band = _bands[Math.Clamp(priorityClass, 0, _bands.Length - 1)];
        var key = fair ? tenant : "";
        if (!band.Tenants.TryGetValue(key, out var queue))
        {
            queue = new TenantQueue(key);
            band.Tenants.Add(key, queue);
            queue.Node = band.Rotation.AddLast(queue);
        }
        queue.Items.Enqueue(item);
        Count++;
    }

    /// <summary>The request that <see cref="Dequeue"/> would take.</summary>
    public bool TryPeek(out T item)
    {
        foreach (var band in _bands)
        {
            if (band.Rotation.First is { } next)
            {
                item = next.Value.Items.Peek();
                return true;
            }
        }
        item = default!;
        return false;
    }

    /// <summary>Takes the head of the current tenant of the highest non-empty class; that tenant goes to the back of the rotation.</summary>
    public T Dequeue()
    {
        foreach (var band in _bands)
        {
            if (band.Rotation.First is not { } node)
            {
                continue;
            }
            var queue = node.Value;
            var item = queue.Items.Dequeue();
            band.Rotation.RemoveFirst();
            if (queue.Items.Count > 0)
            {
                band.Rotation.AddLast(node);
            }
            else
            {
                band.Tenants.Remove(queue.Tenant);
            }
            Count--;
            return item;
        }
        throw new InvalidOperationException("The queue is empty.");
    }

    private static Band[] CreateBands(int classes)
    {
        var bands = new Band[classes];
        for (var i = 0; i < classes; i++)
        {
            bands[i] = new Band();
        }
        return bands;
    }

    private sealed class Band
    {
        public Dictionary<string, TenantQueue> Tenants { get; } = new(StringComparer.Ordinal);
        public LinkedList<TenantQueue> Rotation { get; } = new();
    }

    private sealed class TenantQueue(string tenant)
    {
        public string Tenant { get; } = tenant;
        public Queue<T> Items { get; } = new();
        public LinkedListNode<TenantQueue>? Node { get; set; }
    }
}
