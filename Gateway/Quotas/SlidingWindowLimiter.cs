using System.Threading.RateLimiting;

namespace Gateway.Quotas;

/// <summary>
/// A one-window sliding-window <see cref="RateLimiter"/> on an injected <see cref="TimeProvider"/>,
/// with <see cref="Release"/> to give unused permits back. The BCL's own window and bucket limiters
/// read <c>Stopwatch</c> even when replenished manually, so they cannot run on fake time and cannot
/// return permits; this one keeps their API (leases, <see cref="MetadataName.RetryAfter"/>).
/// Permits are counted per segment; a segment's permits return once it leaves the window.
/// </summary>
internal sealed class SlidingWindowLimiter : RateLimiter
{
    private readonly TimeProvider _time;
    private int _limit;
    private readonly long _segmentTicks;
    private readonly long[] _segments;
    private readonly long _origin;
    private readonly Lock _lock = new();
    private long _currentSegment;
    private long _used;
    private long _idleSince;

    public SlidingWindowLimiter(TimeProvider time, int limit, TimeSpan window, int segments)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(segments, 1);
        _time = time;
        _limit = limit;
        _segments = new long[segments];
        _segmentTicks = window.Ticks / segments;
        _origin = time.GetTimestamp();
        _idleSince = _origin;
    }

    /// <summary>The permits per window; a new limit applies from the next acquisition, the permits in the window stay counted.</summary>
    public int Limit
    {
        get => Volatile.Read(ref _limit);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref _limit, value);
        }
    }

    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                Advance();
                return _used == 0 ? _time.GetElapsedTime(_idleSince) : null;
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            Advance();
            return new RateLimiterStatistics { CurrentAvailablePermits = _limit - _used };
        }
    }

    /// <summary>Gives back <paramref name="permits"/> taken earlier (newest segments first).</summary>
    public void Release(int permits)
    {
        lock (_lock)
        {
            Advance();
            for (var i = 0; i < _segments.Length && permits > 0; i++)
            {
                var slot = (int)((_currentSegment - i) % _segments.Length);
                var take = Math.Min(_segments[slot], permits);
                _segments[slot] -= take;
                _used -= take;
                permits -= (int)take;
            }
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(permitCount, _limit);
        lock (_lock)
        {
            Advance();
            if (_used + permitCount <= _limit)
            {
                _segments[(int)(_currentSegment % _segments.Length)] += permitCount;
                _used += permitCount;
                return Lease.Acquired;
            }
            return new Lease(false, RetryAfter(permitCount));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    /// <summary>Time until enough of the oldest segments have left the window.</summary>
    private TimeSpan RetryAfter(int permitCount)
    {
        var needed = _used + permitCount - _limit;
        var elapsedInSegment = _time.GetElapsedTime(_origin).Ticks - (_currentSegment * _segmentTicks);
        for (var age = _segments.Length - 1; age >= 0; age--)
        {
            var slot = (int)((_currentSegment - age + _segments.Length * 2L) % _segments.Length);
            needed -= _segments[slot];
            if (needed <= 0)
            {
                // This segment leaves the window (segments - age) segment lengths from its start.
                return TimeSpan.FromTicks(((_segments.Length - age) * _segmentTicks) - elapsedInSegment);
            }
        }
        return TimeSpan.FromTicks(_segments.Length * _segmentTicks);
    }

    private void Advance()
    {
        var segment = _time.GetElapsedTime(_origin).Ticks / _segmentTicks;
        if (segment == _currentSegment)
        {
            return;
        }
        var steps = Math.Min(segment - _currentSegment, _segments.Length);
        for (var i = 1; i <= steps; i++)
        {
            var slot = (int)((_currentSegment + i) % _segments.Length);
            _used -= _segments[slot];
            _segments[slot] = 0;
        }
        _currentSegment = segment;
        if (_used == 0)
        {
            _idleSince = _time.GetTimestamp();
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public static readonly Lease Acquired = new(true, null);

        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } after && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = after;
                return true;
            }
            metadata = null;
            return false;
        }
    }
}
