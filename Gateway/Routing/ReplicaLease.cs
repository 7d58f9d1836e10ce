using Gateway.Triton;

namespace Gateway.Routing;

/// <summary>
/// One attempt's hold on a replica: counts as one in-flight request and as its prompt plus the
/// tokens it may still generate, until disposed. Tokens are taken off as they stream. Used by one
/// request at a time; <see cref="Dispose"/> is idempotent.
/// </summary>
internal sealed class ReplicaLease(TritonRouter router, TritonReplica replica, int promptTokens, int maxTokens) : IDisposable
{
    private long _toGenerate = maxTokens;
    private int _disposed;

    public TritonReplica Replica { get; } = replica;

    /// <summary>Why this replica: its scores and matched prefix.</summary>
    public RouteDecision Decision { get; init; }

    /// <summary>Tokens this request may still generate.</summary>
    public long TokensToGenerate => _toGenerate;

    /// <summary><paramref name="count"/> more tokens were generated.</summary>
    public void TokensGenerated(int count)
    {
        var taken = Math.Min(count, _toGenerate);
        if (taken > 0 && Volatile.Read(ref _disposed) == 0)
        {
            _toGenerate -= taken;
            Replica.RemoveTokens(taken);
        }
    }

    /// <summary>The attempt failed; a broken connection ejects the replica.</summary>
    public void Failed(TritonFailure failure, string reason) => router.ReportFailure(Replica, failure, reason);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            router.Release(Replica, promptTokens + _toGenerate);
        }
    }
}
