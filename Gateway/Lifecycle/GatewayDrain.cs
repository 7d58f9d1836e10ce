using Gateway.Errors;
using Microsoft.Extensions.Options;

namespace Gateway.Lifecycle;

/// <summary>Where the gateway is in its life: serving, stopping but still accepting, refusing, past the deadline.</summary>
internal enum DrainPhase
{
    Serving,
    Accepting,
    Refusing,
    Expired,
}

/// <summary>
/// The drain's shared state: the phase, the requests in flight (REST and gRPC generation calls)
/// and <see cref="Deadline"/>, the token that fires when open requests must end. Host shutdown
/// never cancels a request's own token: a face tells "the client hung up" (its request token) from
/// "the server is stopping" (this deadline), so neither is reported as the other.
/// </summary>
internal sealed class GatewayDrain(IOptions<ShutdownOptions> options) : IDisposable
{
    private readonly CancellationTokenSource _deadline = new();
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _phase;
    private int _inFlight;

    public DrainPhase Phase => (DrainPhase)Volatile.Read(ref _phase);

    /// <summary>Readiness: false from the moment the shutdown signal arrives.</summary>
    public bool IsReady => Phase == DrainPhase.Serving;

    /// <summary>Fires at the drain deadline: requests still open end with <c>server_shutting_down</c>.</summary>
    public CancellationToken Deadline => _deadline.Token;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Completes when nothing is in flight any more after refusals began.</summary>
    public Task Idle => _idle.Task;

    /// <summary>Counts a new request in, unless the gateway refuses new ones (then the caller answers 503).</summary>
    public bool TryEnter()
    {
        Interlocked.Increment(ref _inFlight);
        if (Phase >= DrainPhase.Refusing)
        {
            Exit();
            return false;
        }
        return true;
    }

    public void Exit()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && Phase >= DrainPhase.Refusing)
        {
            _idle.TrySetResult();
        }
    }

    internal void BeginStopping() => Advance(DrainPhase.Accepting);

    internal void BeginRefusing()
    {
        Advance(DrainPhase.Refusing);
        if (InFlight == 0)
        {
            _idle.TrySetResult();
        }
    }

    internal void Expire()
    {
        BeginRefusing();
        Advance(DrainPhase.Expired);
        _deadline.Cancel();
    }

    private void Advance(DrainPhase phase)
    {
        var current = Volatile.Read(ref _phase);
        while (current < (int)phase)
        {
            var seen = Interlocked.CompareExchange(ref _phase, (int)phase, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }

    /// <summary>What a refused request, or one cut at the deadline, is told.</summary>
    public GatewayException ShuttingDown(bool refused) => new(GatewayError.ShuttingDown,
        refused
            ? "The gateway is shutting down and takes no new requests; retry, another replica will serve it."
            : "The gateway shut down before the generation finished; retry the request.",
        null, "server_shutting_down", options.Value.RetryAfter);

    public void Dispose() => _deadline.Dispose();
}
