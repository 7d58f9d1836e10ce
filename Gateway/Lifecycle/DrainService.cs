using Microsoft.Extensions.Options;

namespace Gateway.Lifecycle;

/// <summary>
/// Runs the drain when the host stops. <see cref="StoppingAsync"/> runs before any hosted service
/// (Kestrel included) stops, so the server keeps serving through the accept window and the drain;
/// it returns once nothing is in flight, or at the deadline after the cut requests wrote their end.
/// </summary>
internal sealed partial class DrainService(
    GatewayDrain drain,
    IOptions<ShutdownOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<DrainService> logger) : IHostedLifecycleService
{
    private long _signalled;

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        // SIGTERM fires ApplicationStopping before the host stops its services: readiness goes false at once.
        lifetime.ApplicationStopping.Register(static state => ((DrainService)state!).OnStopping(), this);
        return Task.CompletedTask;
    }

    private void OnStopping()
    {
        if (Interlocked.CompareExchange(ref _signalled, time.GetTimestamp(), 0) == 0)
        {
            drain.BeginStopping();
            LogStopping(logger, drain.InFlight, options.Value.AcceptWindow.TotalSeconds, options.Value.DrainTimeout.TotalSeconds);
        }
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        OnStopping();
        var settings = options.Value;
        var signalled = Interlocked.Read(ref _signalled);
        try
        {
            var acceptLeft = settings.AcceptWindow - time.GetElapsedTime(signalled);
            if (acceptLeft > TimeSpan.Zero)
            {
                await Task.Delay(acceptLeft, time, cancellationToken).ConfigureAwait(false);
            }
            drain.BeginRefusing();
            LogRefusing(logger, drain.InFlight);
            var drainLeft = settings.DrainTimeout - time.GetElapsedTime(signalled);
            if (drainLeft > TimeSpan.Zero)
            {
                await drain.Idle.WaitAsync(drainLeft, time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
        }
        if (drain.Idle.IsCompleted)
        {
            LogDrained(logger, time.GetElapsedTime(signalled).TotalSeconds);
            return;
        }
        var open = drain.InFlight;
        drain.Expire();
        LogExpired(logger, open);
        try
        {
            // The cut requests write their error event / status now; then the server may stop.
            await drain.Idle.WaitAsync(settings.FinalWriteTimeout, time, CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogFinalWriteTimedOut(logger, drain.InFlight);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutdown signalled: readiness is off; {InFlight} requests in flight; accepting new requests for {AcceptWindowSeconds} s, draining for up to {DrainTimeoutSeconds} s")]
    private static partial void LogStopping(ILogger logger, int inFlight, double acceptWindowSeconds, double drainTimeoutSeconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Accept window over: new requests get 503; waiting for {InFlight} open requests")]
    private static partial void LogRefusing(ILogger logger, int inFlight);

    [LoggerMessage(Level = LogLevel.Information, Message = "Drained: every request finished {ElapsedSeconds:0.0} s after the signal")]
    private static partial void LogDrained(ILogger logger, double elapsedSeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Drain deadline reached: ending {Open} open requests with server_shutting_down")]
    private static partial void LogExpired(ILogger logger, int open);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Open} requests had not written their end when the server stopped")]
    private static partial void LogFinalWriteTimedOut(ILogger logger, int open);
}
