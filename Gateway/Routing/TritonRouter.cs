using Gateway.Errors;
using Gateway.Telemetry;
using Gateway.Triton;
using Microsoft.Extensions.Options;

namespace Gateway.Routing;

/// <summary>What routing needs to know about one request.</summary>
/// <param name="PromptTokens">Tokens of the prompt as sent to Triton.</param>
/// <param name="MaxTokens">Tokens it may still generate.</param>
/// <param name="Priority">Triton's priority level: 0 = default, 1 = highest.</param>
/// <param name="Model">The Triton model the request calls: replicas where it is not ready are not candidates ("" = any).</param>
/// <param name="ModelVersion">Its Triton version ("" = the server's policy).</param>
internal readonly record struct RouteRequest(int PromptTokens, int MaxTokens, int Priority, string Model = "", string ModelVersion = "")
{
    /// <summary>The prompt's chained block keys (<see cref="PrefixKeys"/>); null or empty: no prefix affinity.</summary>
    public ulong[]? PrefixKeys { get; init; }

    /// <summary>Who the request is for: within a priority band the queue serves tenants round robin.</summary>
    public string Tenant { get; init; } = "";
}

/// <summary>Why a replica was picked: its combined score, its load part and the prompt blocks it matched.</summary>
/// <param name="Score">Combined score (lower won).</param>
/// <param name="Load">The weighted load part of it.</param>
/// <param name="MatchedBlocks">Leading prompt blocks the replica was recently sent.</param>
/// <param name="PrefixBlocks">Reusable prompt blocks of the request.</param>
/// <param name="Candidates">Replicas scored.</param>
internal readonly record struct RouteDecision(double Score, double Load, int MatchedBlocks, int PrefixBlocks, int Candidates);

/// <summary>Picks the Triton replica for each attempt of a request, or queues / sheds it when every replica is saturated.</summary>
internal interface ITritonRouter
{
    /// <summary>
    /// A lease on the least-loaded ready replica, preferring ones not in <paramref name="tried"/>.
    /// Throws <see cref="GatewayException"/> (503 + Retry-After) when no replica is ready, or when
    /// every replica is saturated and the request is low priority, the queue is full or the wait timed out.
    /// </summary>
    ValueTask<ReplicaLease> AcquireAsync(RouteRequest request, IReadOnlyList<TritonReplica>? tried, CancellationToken cancellationToken);
}

/// <summary>How a request is treated when every replica is saturated.</summary>
internal enum PriorityClass
{
    /// <summary>Triton priority 1: queues first.</summary>
    High = 0,

    /// <summary>The default level (0) and levels above 1 but below the low level: queues.</summary>
    Normal = 1,

    /// <summary>Levels ≥ <see cref="RoutingOptions.LowPriorityLevel"/>: shed with 503 + Retry-After.</summary>
    Low = 2,
}

/// <summary>
/// Load-aware routing over <see cref="TritonReplicaSet"/>. Score (lower is better):
/// <c>inFlight + pending + inFlightTokens / TokensPerLoadUnit + avgQueueTime / QueueTimePerLoadUnit
/// + batchUtilization + kvUtilization</c>, where the last four come from the latest scrape when it
/// is fresh. Two candidates are compared by score (power of two choices, drawn at random when there
/// are more than two). Ejected replicas are never chosen while any other replica is ready. A replica
/// is saturated when <c>inFlight + pending ≥ SaturationThreshold</c>; when every ready replica is,
/// low-priority requests are shed and the others wait in a bounded priority queue.
/// </summary>
internal sealed partial class TritonRouter(
    TritonReplicaSet replicas,
    IOptions<RoutingOptions> options,
    TimeProvider time,
    RoutingRandom random,
    ILogger<TritonRouter> logger,
    GatewayTelemetry? telemetry = null) : ITritonRouter
{
    private readonly RoutingOptions _options = options.Value;
    private readonly RoutingScorerOptions _scorers = options.Value.Scorers;
    private readonly Lock _queueLock = new();
    private readonly FairQueue<Waiter> _queue = new(options.Value.TenantFairness);
    private readonly bool _observed = telemetry?.ObserveReplicaScores(replicas) ?? false;
    private long _picks;
    private long _turn;
    private int _queued;

    /// <summary>Requests waiting for a replica now.</summary>
    public int QueuedRequests => Volatile.Read(ref _queued);

    public PriorityClass Classify(int priority) => priority switch
    {
        1 => PriorityClass.High,
        0 => PriorityClass.Normal,
        _ when priority >= _options.LowPriorityLevel => PriorityClass.Low,
        _ => PriorityClass.Normal,
    };

    public ValueTask<ReplicaLease> AcquireAsync(RouteRequest request, IReadOnlyList<TritonReplica>? tried, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var snapshot = replicas.Replicas;
        if (Volatile.Read(ref _queued) == 0 && TryLease(snapshot, tried, request) is { } lease)
        {
            return ValueTask.FromResult(lease);
        }
        if (!HasCandidate(snapshot))
        {
            throw new GatewayException(GatewayError.BackendUnavailable, "No Triton replica is ready.", null, "backend_unavailable", _options.RetryAfter);
        }
        var priorityClass = Classify(request.Priority);
        return new ValueTask<ReplicaLease>(QueueAsync(request, tried, priorityClass, cancellationToken));
    }

    /// <summary>Hands freed capacity to queued requests, highest priority first. Called when load drops, a replica comes back or metrics change.</summary>
    public void Drain()
    {
        if (Volatile.Read(ref _queued) == 0)
        {
            return;
        }
        lock (_queueLock)
        {
            var snapshot = replicas.Replicas;
            while (_queue.TryPeek(out var waiter))
            {
                if (waiter.Completion.Task.IsCompleted)
                {
                    _queue.Dequeue(); // cancelled or timed out; already uncounted
                    continue;
                }
                if (TryLease(snapshot, waiter.Tried, waiter.Request) is not { } lease)
                {
                    break;
                }
                _queue.Dequeue();
                _queued--;
                waiter.Completion.SetResult(lease);
            }
        }
    }

    /// <summary>A failed attempt: a broken connection ejects the replica at once (the health probe brings it back).</summary>
    public void ReportFailure(TritonReplica replica, TritonFailure failure, string reason)
    {
        if (failure is TritonFailure.Transport or TritonFailure.EndedEarly && replica.Eject(time.GetTimestamp(), reason))
        {
            LogEjected(logger, replica.Grpc, reason);
        }
    }

    /// <summary>Whether <paramref name="replica"/> takes no more requests now.</summary>
    public bool IsSaturated(TritonReplica replica)
    {
        var pending = replica.FreshLoad(time, _options.MetricsMaxAge)?.Pending ?? 0;
        return replica.InFlight + pending >= _options.SaturationThreshold;
    }

    /// <summary>
    /// The load score (lower is better): the weighted in-flight, queue and KV-cache scorers; see the
    /// class summary and Gateway/README.md. With every weight 1 (the default) it is the plain sum.
    /// </summary>
    public double Score(TritonReplica replica)
    {
        var score = _scorers.InFlightWeight * (replica.InFlight + (double)replica.InFlightTokens / _options.TokensPerLoadUnit);
        if (replica.FreshLoad(time, _options.MetricsMaxAge) is { } load)
        {
            score += _scorers.QueueWeight * (load.Pending
                    + load.AverageQueueUs / _options.QueueTimePerLoadUnit.TotalMicroseconds
                    + load.BatchUtilization)
                + _scorers.KvCacheWeight * load.KvUtilization;
        }
        return score;
    }

    internal void Release(TritonReplica replica, long remainingTokens)
    {
        if (replica.RemoveRequest(remainingTokens))
        {
            replicas.Drained(replica); // the last request of a replica that left discovery
        }
        Drain();
    }

    private async Task<ReplicaLease> QueueAsync(RouteRequest request, IReadOnlyList<TritonReplica>? tried, PriorityClass priorityClass, CancellationToken cancellationToken)
    {
        var waiter = new Waiter(request, tried);
        lock (_queueLock)
        {
            if (priorityClass == PriorityClass.Low || _queued >= _options.MaxQueuedRequests)
            {
                LogShed(logger, request.Priority);
                throw Overloaded(priorityClass == PriorityClass.Low
                    ? "Every Triton replica is saturated; low-priority requests are shed. Retry later."
                    : "Every Triton replica is saturated and the queue is full. Retry later.");
            }
            _queue.Enqueue(waiter, (int)priorityClass, request.Tenant);
            _queued++;
        }
        Drain();
        using var timeout = new CancellationTokenSource(_options.QueueTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        using (linked.Token.UnsafeRegister(static state => ((TritonRouter)((object[])state!)[0]).Abandon((Waiter)((object[])state)[1]), new object[] { this, waiter }))
        {
            try
            {
                return await waiter.Completion.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw Overloaded($"Every Triton replica stayed saturated for {_options.QueueTimeout.TotalSeconds:0.###} s. Retry later.");
            }
        }
    }

    private void Abandon(Waiter waiter)
    {
        lock (_queueLock)
        {
            if (waiter.Completion.TrySetCanceled())
            {
                _queued--;
            }
        }
    }

    private GatewayException Overloaded(string message) =>
        new(GatewayError.BackendUnavailable, message, null, "overloaded", _options.RetryAfter);

    /// <summary>
    /// A lease on the picked replica, or null when every candidate is saturated. A replica that left
    /// discovery between the pick and the lease refuses it; it is then skipped and the pick repeats.
    /// </summary>
    private ReplicaLease? TryLease(TritonReplica[] snapshot, IReadOnlyList<TritonReplica>? tried, RouteRequest request)
    {
        while (Pick(snapshot, tried, request, out var decision) is { } replica)
        {
            if (replica.TryAddRequest(request.PromptTokens + (long)request.MaxTokens, Interlocked.Increment(ref _picks)))
            {
                if (request.PrefixKeys is { Length: > 0 } keys && _scorers.PrefixWeight > 0)
                {
                    // What this replica will hold once it has prefilled the prompt.
                    replica.Prefixes(_scorers.PrefixBlocksPerReplica).Record(keys);
                    telemetry?.RecordPrefixLookup(request.Model, keys.Length, decision.MatchedBlocks);
                }
                replica.LastScore = decision.Score;
                return new ReplicaLease(this, replica, request.PromptTokens, request.MaxTokens) { Decision = decision };
            }
        }
        return null;
    }

    private static bool HasCandidate(TritonReplica[] snapshot)
    {
        foreach (var replica in snapshot)
        {
            if (!replica.IsRemoved)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The replica for the next attempt, or null when every candidate is saturated. Candidates are
    /// the ready replicas (not ejected, and the request's model ready on them) not yet tried, else the
    /// ready ones, else (none ready: a panic, as Envoy calls it) every discovered replica not yet
    /// tried, else every discovered replica, so one flapping replica is not a certain 503. A panic
    /// retry skips the replicas this request already failed on: a dead replica fails fast and, idle,
    /// scores best, so without that every attempt would land on it again while a live (ejected but
    /// serving) replica is never tried.
    /// </summary>
    private TritonReplica? Pick(TritonReplica[] snapshot, IReadOnlyList<TritonReplica>? tried, RouteRequest request, out RouteDecision decision)
    {
        decision = default;
        Span<int> candidates = snapshot.Length <= 128 ? stackalloc int[snapshot.Length] : new int[snapshot.Length];
        var retry = tried is { Count: > 0 };
        var count = Collect(snapshot, tried, request, requireReady: true, excludeTried: true, candidates);
        if (count == 0 && retry)
        {
            count = Collect(snapshot, tried, request, requireReady: true, excludeTried: false, candidates);
        }
        if (count == 0)
        {
            count = Collect(snapshot, tried, request, requireReady: false, excludeTried: true, candidates);
        }
        if (count == 0 && retry)
        {
            count = Collect(snapshot, tried, request, requireReady: false, excludeTried: false, candidates);
        }
        if (count == 0)
        {
            return null;
        }
        if (_options.RoundRobin)
        {
            var turn = (int)((ulong)Interlocked.Increment(ref _turn) % (ulong)count);
            for (var i = 0; i < count; i++)
            {
                var replica = snapshot[candidates[(turn + i) % count]];
                if (!IsSaturated(replica))
                {
                    decision = new RouteDecision(0, Score(replica), 0, request.PrefixKeys?.Length ?? 0, count);
                    return replica;
                }
            }
            return null;
        }
        if (request.PrefixKeys is { Length: > 0 } keys && _scorers.PrefixWeight > 0)
        {
            return PickByAffinity(snapshot, candidates[..count], keys, request, out decision);
        }
        TritonReplica? best;
        if (count <= 2)
        {
            best = Better(null, snapshot[candidates[0]]);
            if (count == 2)
            {
                best = Better(best, snapshot[candidates[1]]);
            }
        }
        else
        {
            // Power of two choices: two distinct random candidates, the less loaded wins.
            var first = random.Next(count);
            var second = random.Next(count - 1);
            if (second >= first)
            {
                second++;
            }
            best = Better(snapshot[candidates[first]], snapshot[candidates[second]]);
            for (var i = 0; best is null && i < count; i++)
            {
                // Both draws saturated: any replica with room beats a queue.
                best = Better(null, snapshot[candidates[i]]);
            }
        }
        if (best is not null)
        {
            var load = Score(best);
            decision = new RouteDecision(load, load, 0, request.PrefixKeys?.Length ?? 0, Math.Min(count, 2));
        }
        return best;
    }

    /// <summary>
    /// Every unsaturated candidate scored: load − PrefixWeight × matched share of the prompt's blocks,
    /// the prefix credit only inside the load gate (load ≤ (1 + LoadGate) × least load + this request's
    /// own load, i.e. one in-flight request plus its tokens / TokensPerLoadUnit). All of
    /// them, not two at random: affinity needs the replica that holds the prefix, wherever it is in
    /// the list. Ties as in <see cref="Better"/>. Null when every candidate is saturated.
    /// </summary>
    private TritonReplica? PickByAffinity(TritonReplica[] snapshot, ReadOnlySpan<int> candidates, ulong[] keys, RouteRequest request, out RouteDecision decision)
    {
        decision = default;
        Span<double> loads = candidates.Length <= 128 ? stackalloc double[candidates.Length] : new double[candidates.Length];
        var least = double.PositiveInfinity;
        for (var i = 0; i < candidates.Length; i++)
        {
            var replica = snapshot[candidates[i]];
            loads[i] = IsSaturated(replica) ? double.NaN : Score(replica);
            if (loads[i] < least)
            {
                least = loads[i];
            }
        }
        if (double.IsPositiveInfinity(least))
        {
            return null;
        }
        // The slack is this request's own load: with every replica idle, affinity may still add it to the one holding the prefix.
        var own = Math.Max(1, _scorers.InFlightWeight * (1 + (request.PromptTokens + (double)request.MaxTokens) / _options.TokensPerLoadUnit));
        var gate = (1 + _scorers.LoadGate) * least + own;
        TritonReplica? best = null;
        double bestScore = 0, bestLoad = 0;
        var bestMatched = 0;
        for (var i = 0; i < candidates.Length; i++)
        {
            if (double.IsNaN(loads[i]))
            {
                continue;
            }
            var replica = snapshot[candidates[i]];
            var matched = loads[i] <= gate && replica.PeekPrefixes() is { } table ? table.MatchLength(keys) : 0;
            var score = loads[i] - _scorers.PrefixWeight * matched / keys.Length;
            if (best is null || score < bestScore || (score == bestScore && Tie(best, replica) == replica))
            {
                (best, bestScore, bestLoad, bestMatched) = (replica, score, loads[i], matched);
            }
        }
        decision = new RouteDecision(bestScore, bestLoad, bestMatched, keys.Length, candidates.Length);
        return best;
    }

    private static TritonReplica Tie(TritonReplica a, TritonReplica b) =>
        b.InFlight != a.InFlight ? (b.InFlight < a.InFlight ? b : a) : (b.LastPicked < a.LastPicked ? b : a);

    /// <summary>The unsaturated one with the lower score; null when both are saturated.</summary>
    private TritonReplica? Better(TritonReplica? a, TritonReplica b)
    {
        var aOk = a is not null && !IsSaturated(a);
        var bOk = !IsSaturated(b);
        if (!aOk)
        {
            return bOk ? b : null;
        }
        if (!bOk)
        {
            return a;
        }
        var (scoreA, scoreB) = (Score(a!), Score(b));
        if (scoreA != scoreB)
        {
            return scoreB < scoreA ? b : a;
        }
        // A tie (idle replicas): fewer own requests, then the one picked longest ago, so idle traffic rotates.
        return Tie(a!, b);
    }

    private static int Collect(TritonReplica[] snapshot, IReadOnlyList<TritonReplica>? tried, RouteRequest request, bool requireReady, bool excludeTried, Span<int> candidates)
    {
        var count = 0;
        for (var i = 0; i < snapshot.Length; i++)
        {
            var replica = snapshot[i];
            if (replica.IsRemoved || (requireReady && (replica.IsEjected || !replica.Serves(request.Model, request.ModelVersion))) || (excludeTried && tried is not null && Contains(tried, replica)))
            {
                continue;
            }
            candidates[count++] = i;
        }
        return count;
    }

    private static bool Contains(IReadOnlyList<TritonReplica> list, TritonReplica replica)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (ReferenceEquals(list[i], replica))
            {
                return true;
            }
        }
        return false;
    }

    private sealed class Waiter(RouteRequest request, IReadOnlyList<TritonReplica>? tried)
    {
        public RouteRequest Request { get; } = request;
        public IReadOnlyList<TritonReplica>? Tried { get; } = tried;
        public TaskCompletionSource<ReplicaLease> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Triton replica {Endpoint} ejected: {Reason}")]
    private static partial void LogEjected(ILogger logger, Uri endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Every Triton replica is saturated: shed a request of priority {Priority}")]
    private static partial void LogShed(ILogger logger, int priority);
}

/// <summary>The randomness of the power-of-two-choices draw (injected so tests can fix it).</summary>
internal sealed class RoutingRandom(Random random)
{
    public int Next(int maxExclusive) => random.Next(maxExclusive);
}
