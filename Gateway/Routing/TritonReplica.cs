using Grpc.Net.Client;

namespace Gateway.Routing;

/// <summary>Triton's own load signals for one replica, as of one scrape.</summary>
/// <param name="Timestamp">When the scrape finished (<see cref="TimeProvider.GetTimestamp"/>).</param>
/// <param name="Pending">Queued requests: <c>nv_inference_pending_request_count</c>, or TensorRT-LLM's waiting requests when larger.</param>
/// <param name="AverageQueueUs">Δ<c>nv_inference_queue_duration_us</c> / Δ<c>nv_inference_request_success</c> since the previous scrape.</param>
/// <param name="BatchUtilization">TensorRT-LLM scheduled (or active, the larger) / max requests (0 when absent).</param>
/// <param name="KvUtilization">TensorRT-LLM's KV-cache block fraction, else used / max blocks (0 when absent).</param>
internal sealed record ReplicaLoad(long Timestamp, double Pending, double AverageQueueUs, double BatchUtilization, double KvUtilization);

/// <summary>
/// One Triton replica as the router sees it: its addresses and its own gRPC channel, health
/// (ejected or not), the gateway's own in-flight requests and tokens on it (exact, updated as
/// requests start, stream and end), and the last load scraped from its metrics port. Counters are
/// updated lock-free.
/// </summary>
/// <remarks>
/// Membership and in-flight requests share one word, so a request can never be leased on a replica
/// whose last request has already ended after it left discovery: that state (removed, none in
/// flight) is final, and whoever reaches it (<see cref="MarkRemoved"/> or the last
/// <see cref="RemoveRequest"/>) releases the replica's channel, exactly once. The channel is built
/// with the replica (see <see cref="Gateway.Triton.TritonChannel"/>), so an address that comes back
/// after that gets a new replica with a new channel: no two replicas ever share one.
/// </remarks>
internal sealed class TritonReplica(Uri grpc, Uri? metrics, GrpcChannel channel)
{
    private const int RemovedFlag = 1 << 30;

    // Low bits: this gateway's requests in flight; RemovedFlag: left discovery.
    private int _state;
    private long _inFlightTokens;
    // Health is one immutable object swapped by compare-and-swap: a probe readmits only the exact
    // ejection it examined, so an ejection that lands meanwhile (a new object) is never undone.
    private Health _health = Health.Serving;
    private double _lastQueueUs = double.NaN;
    private double _lastSuccess = double.NaN;

    // Models (name, version) this replica's last healthy probe found not ready or missing; empty until then.
    private volatile (string Model, string Version)[] _unreadyModels = [];

    public Uri Grpc { get; } = grpc;

    public Uri? Metrics { get; } = metrics;

    /// <summary>
    /// The replica's gRPC channel, for requests it holds a lease for and for probes while it is in
    /// discovery (see <see cref="TritonReplicaSet.TryGetChannel"/>); disposed once its state is final.
    /// </summary>
    public GrpcChannel Channel { get; } = channel;

    private int _channelReleased;

    /// <summary>Whether <see cref="Channel"/> has been disposed (the replica left discovery and its last request ended).</summary>
    public bool IsChannelReleased => Volatile.Read(ref _channelReleased) != 0;

    /// <summary>Disposes <see cref="Channel"/> (its connections close); true the first time only.</summary>
    internal bool ReleaseChannel()
    {
        if (Interlocked.Exchange(ref _channelReleased, 1) != 0)
        {
            return false;
        }
        Channel.Dispose();
        return true;
    }

    /// <summary>Requests of this gateway running on the replica (from routing until the stream ends).</summary>
    public int InFlight => Volatile.Read(ref _state) & ~RemovedFlag;

    /// <summary>Prompt tokens plus tokens still to generate, over this gateway's in-flight requests.</summary>
    public long InFlightTokens => Interlocked.Read(ref _inFlightTokens);

    public bool IsEjected => Volatile.Read(ref _health).Ejected;

    /// <summary>Why it was last ejected (for logs).</summary>
    public string? EjectionReason => Volatile.Read(ref _health).Reason;

    /// <summary>The latest scraped load, or null before the first scrape (or without a metrics endpoint).</summary>
    public ReplicaLoad? Load { get; private set; }

    /// <summary>Whether the replica left discovery (it takes no new requests; those in flight run to their end).</summary>
    public bool IsRemoved => (Volatile.Read(ref _state) & RemovedFlag) != 0;

    /// <summary>When the router last leased this replica (a sequence number; 0 = never). Breaks ties so idle traffic rotates.</summary>
    public long LastPicked => Volatile.Read(ref _lastPicked);

    private long _lastPicked;

    private PrefixBlockTable? _prefixes;

    /// <summary>The combined score it had when last picked (the per-replica score metric).</summary>
    public double LastScore
    {
        get => Volatile.Read(ref _lastScore);
        internal set => Volatile.Write(ref _lastScore, value);
    }

    private double _lastScore;

    /// <summary>The prompt blocks recently sent here (created on first use with <paramref name="capacity"/> keys).</summary>
    internal PrefixBlockTable Prefixes(int capacity) =>
        Volatile.Read(ref _prefixes) ?? Interlocked.CompareExchange(ref _prefixes, new PrefixBlockTable(capacity), null) ?? _prefixes!;

    /// <summary>The prompt blocks recently sent here; null before any.</summary>
    internal PrefixBlockTable? PeekPrefixes() => Volatile.Read(ref _prefixes);

    /// <summary>Its KV cache is gone or unknown (left discovery, restarted, broken connection): no prefix affinity until it is sent prompts again.</summary>
    internal void ForgetPrefixes() => Volatile.Read(ref _prefixes)?.Clear();

    /// <summary>Counts one more request; false (nothing counted) when the replica has left discovery.</summary>
    internal bool TryAddRequest(long tokens, long sequence)
    {
        var state = Volatile.Read(ref _state);
        while (true)
        {
            if ((state & RemovedFlag) != 0)
            {
                return false;
            }
            var seen = Interlocked.CompareExchange(ref _state, state + 1, state);
            if (seen == state)
            {
                break;
            }
            state = seen;
        }
        Volatile.Write(ref _lastPicked, sequence);
        Interlocked.Add(ref _inFlightTokens, tokens);
        return true;
    }

    internal void RemoveTokens(long tokens) => Interlocked.Add(ref _inFlightTokens, -tokens);

    /// <summary>One request ended; true when it was the last one of a replica that left discovery (its channel is to be released).</summary>
    internal bool RemoveRequest(long remainingTokens)
    {
        Interlocked.Add(ref _inFlightTokens, -remainingTokens);
        return Interlocked.Decrement(ref _state) == RemovedFlag;
    }

    /// <summary>The replica left discovery; true when nothing is in flight (its channel is to be released now).</summary>
    internal bool MarkRemoved()
    {
        ForgetPrefixes();
        return Interlocked.Or(ref _state, RemovedFlag) == 0;
    }

    /// <summary>
    /// The address is discovered again while requests still run on the replica: it takes requests
    /// again. False when its last request has already ended (final; the address needs a new replica).
    /// </summary>
    internal bool TryRestore()
    {
        var state = Volatile.Read(ref _state);
        while (true)
        {
            if ((state & RemovedFlag) == 0)
            {
                return true;
            }
            if (state == RemovedFlag)
            {
                return false;
            }
            var seen = Interlocked.CompareExchange(ref _state, state & ~RemovedFlag, state);
            if (seen == state)
            {
                return true;
            }
            state = seen;
        }
    }

    /// <summary>
    /// Whether the replica may take requests for Triton model <paramref name="model"/> /
    /// <paramref name="version"/>: false when its last probe found that model not ready or missing.
    /// An empty <paramref name="model"/> asks for none in particular.
    /// </summary>
    public bool Serves(string model, string version)
    {
        var unready = _unreadyModels;
        for (var i = 0; i < unready.Length; i++)
        {
            if (string.Equals(unready[i].Model, model, StringComparison.Ordinal) && string.Equals(unready[i].Version, version, StringComparison.Ordinal))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The models a healthy probe found not ready (or missing); true when that differs from the last probe.</summary>
    internal bool SetUnreadyModels((string Model, string Version)[] unready)
    {
        var previous = _unreadyModels;
        _unreadyModels = unready;
        return !previous.AsSpan().SequenceEqual(unready);
    }

    /// <summary>
    /// Takes the replica out of rotation; returns false when it already was. An ejection of an
    /// ejected replica keeps its start time (MinEjection runs from the first) but is a new state, so
    /// a probe that succeeded before it cannot readmit the replica.
    /// </summary>
    internal bool Eject(long timestamp, string reason)
    {
        ForgetPrefixes();
        var current = Volatile.Read(ref _health);
        while (true)
        {
            var next = new Health(true, current.Ejected ? current.EjectedAt : timestamp, reason);
            var seen = Interlocked.CompareExchange(ref _health, next, current);
            if (ReferenceEquals(seen, current))
            {
                return !current.Ejected;
            }
            current = seen;
        }
    }

    /// <summary>
    /// A successful probe: back in rotation once <paramref name="minEjection"/> has passed. Returns
    /// true when it came back; false when it was not ejected, too recently, or ejected again while
    /// this probe was deciding (the failure is newer than the probe's answer).
    /// </summary>
    internal bool ProbeSucceeded(TimeProvider time, TimeSpan minEjection)
    {
        var current = Volatile.Read(ref _health);
        if (!current.Ejected || time.GetElapsedTime(current.EjectedAt) < minEjection)
        {
            return false;
        }
        return ReferenceEquals(Interlocked.CompareExchange(ref _health, Health.Serving, current), current);
    }

    /// <summary>Records one scrape. Counter deltas need the previous scrape; a counter reset (restart) gives no queue-time signal once.</summary>
    internal void Record(TritonMetricsSample sample, long timestamp)
    {
        var averageQueueUs = 0d;
        if (sample.HasQueueCounters)
        {
            var queued = sample.QueueDurationUs - _lastQueueUs;
            var succeeded = sample.RequestSuccess - _lastSuccess;
            // NaN on the first scrape, negative after a restart: no signal this time.
            if (queued >= 0 && succeeded >= 0)
            {
                averageQueueUs = queued / Math.Max(1, succeeded);
            }
            else if (succeeded < 0)
            {
                ForgetPrefixes(); // the counters went back: a new process, with an empty KV cache
            }
            _lastQueueUs = sample.QueueDurationUs;
            _lastSuccess = sample.RequestSuccess;
        }
        var pending = Math.Max(sample.PendingRequests, sample.TrtWaiting);
        var batch = sample.TrtMax > 0 ? Math.Max(sample.TrtActive, sample.TrtScheduled) / sample.TrtMax : 0;
        var kv = sample.HasKvFraction ? sample.KvFraction : sample.KvBlocksMax > 0 ? sample.KvBlocksUsed / sample.KvBlocksMax : 0;
        Load = new ReplicaLoad(timestamp, pending, averageQueueUs, batch, kv);
    }

    /// <summary>The scraped load when it is recent enough to trust, else null.</summary>
    internal ReplicaLoad? FreshLoad(TimeProvider time, TimeSpan maxAge) =>
        Load is { } load && time.GetElapsedTime(load.Timestamp) <= maxAge ? load : null;

    public override string ToString() => Grpc.ToString();

    /// <summary>One health state; never mutated (each change is a new object, compared by reference).</summary>
    private sealed class Health(bool ejected, long ejectedAt, string? reason)
    {
        public static readonly Health Serving = new(false, 0, null);

        public bool Ejected { get; } = ejected;
        public long EjectedAt { get; } = ejectedAt;
        public string? Reason { get; } = reason;
    }
}
