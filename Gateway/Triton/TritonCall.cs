using System.Diagnostics;
using System.Runtime.CompilerServices;
using Gateway.Errors;
using Gateway.Triton.Wire;
using Grpc.Core;
using Triton.Inference;

namespace Gateway.Triton;

/// <summary>How a read from Triton failed.</summary>
internal enum TritonFailure
{
    /// <summary>No connection or the connection broke (Unavailable, reset).</summary>
    Transport,
    /// <summary>
    /// Triton answered with <c>error_message</c> for this request, or a status that says the request
    /// itself is at fault (INVALID_ARGUMENT, NOT_FOUND, ...): deterministic, never retried.
    /// </summary>
    Backend,
    /// <summary>Nothing arrived within the first-token or idle timeout.</summary>
    Timeout,
    /// <summary>The stream ended before the final response.</summary>
    EndedEarly,
}

internal sealed class TritonCallException(TritonFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public TritonFailure Failure { get; } = failure;

    /// <summary>
    /// The one mapping of a Triton failure to what the gateway's faces answer: before the first token
    /// (<paramref name="streaming"/> false) a timeout is the first-token timeout, a transport failure
    /// means no backend is ready; once streaming, a timeout is the idle timeout and a transport failure
    /// a broken stream.
    /// </summary>
    public GatewayException ToGateway(bool streaming, TimeSpan timeout) => (Failure, streaming) switch
    {
        (TritonFailure.Timeout, false) => new GatewayException(GatewayError.FirstTokenTimeout,
            $"The model produced no token within {timeout.TotalSeconds:0.###} s.", null, "first_token_timeout", inner: this),
        (TritonFailure.Timeout, true) => new GatewayException(GatewayError.IdleTimeout,
            $"The model produced no token for {timeout.TotalSeconds:0.###} s.", null, "idle_timeout", inner: this),
        (TritonFailure.Backend, false) => new GatewayException(GatewayError.BackendFailed,
            "The backend rejected the request: " + Message, null, "backend_error", inner: this),
        (TritonFailure.Backend, true) => new GatewayException(GatewayError.BackendFailed, "The backend failed: " + Message, null, "backend_error", inner: this),
        (_, false) => new GatewayException(GatewayError.BackendUnavailable,
            "No Triton backend is ready: " + Message, null, "backend_unavailable", TimeSpan.FromSeconds(1), this),
        (_, true) => new GatewayException(GatewayError.BackendFailed, "The backend connection failed mid-stream: " + Message, null, "backend_error", inner: this),
    };
}

/// <summary>
/// One <c>ModelStreamInfer</c> call carrying exactly one request. Every read has its own timeout
/// (first token, then idle), driven by the injected <see cref="TimeProvider"/>; there is no total
/// timeout. Disposing cancels the call at once (HTTP/2 RST_STREAM), which Triton counts as a
/// cancelled request.
/// </summary>
internal sealed class TritonCall : IAsyncDisposable
{
    private readonly CancellationToken _requestAborted;
    private readonly CancellationTokenSource _timeout;
    private readonly CancellationTokenSource _linked;
    private readonly AsyncDuplexStreamingCall<TritonRequest, TritonResponse> _call;
    private bool _completed;

    private TritonCall(CallInvoker invoker, Metadata headers, TimeProvider time, CancellationToken requestAborted)
    {
        _requestAborted = requestAborted;
        _timeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, _timeout.Token);
        _call = invoker.AsyncDuplexStreamingCall(TritonWire.ModelStreamInfer, null, new CallOptions(headers, cancellationToken: _linked.Token));
    }

    public static async Task<TritonCall> StartAsync(
        CallInvoker invoker, TritonRequest request, Activity? activity,
        TimeProvider time, TimeSpan firstTokenTimeout, CancellationToken cancellationToken)
    {
        var headers = new Metadata();
        // W3C trace context for Triton's own tracing (and the emulator's).
        DistributedContextPropagator.Current.Inject(activity ?? Activity.Current, headers, static (carrier, key, value) =>
        {
            if (carrier is Metadata metadata && key is not null && value is not null)
            {
                metadata.Add(key, value);
            }
        });
        var call = new TritonCall(invoker, headers, time, cancellationToken);
        try
        {
            call._timeout.CancelAfter(firstTokenTimeout);
            await call._call.RequestStream.WriteAsync(request, call._linked.Token).ConfigureAwait(false);
            return call;
        }
        catch (Exception ex)
        {
            var translated = call.Translate(ex);
            await call.DisposeAsync().ConfigureAwait(false);
            throw translated;
        }
    }

    /// <summary>
    /// The next response, or null when Triton closed the stream. The caller owns it and gives it
    /// back with <see cref="TritonResponse.Return"/> once decoded.
    /// </summary>
    /// <remarks>Called once per token: its async state is pooled, not allocated per call.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TritonResponse?> ReadAsync(TimeSpan? timeout)
    {
        if (timeout is { } t)
        {
            _timeout.CancelAfter(t);
        }
        bool moved;
        try
        {
            moved = await _call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Translate(ex);
        }
        // The timeouts measure Triton's silence only: while the caller writes to a slow client, no clock runs.
        _timeout.CancelAfter(Timeout.InfiniteTimeSpan);
        if (!moved)
        {
            return null;
        }
        var message = _call.ResponseStream.Current;
        if (message.ErrorMessage is { } error)
        {
            message.Return();
            throw new TritonCallException(TritonFailure.Backend, error);
        }
        return message;
    }

    /// <summary>
    /// After the final response: half-closes the request side and waits (bounded) for Triton to
    /// close the stream, so a finished request is never reported as cancelled.
    /// </summary>
    public async ValueTask CompleteAsync(TimeSpan drainTimeout)
    {
        _completed = true;
        try
        {
            _timeout.CancelAfter(drainTimeout);
            await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
            while (await _call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
            {
                // Nothing more is expected for a single-request stream.
                _call.ResponseStream.Current.Return();
            }
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException or OperationCanceledException)
        {
            // The server closed first or the drain timed out: the request itself had already finished.
        }
    }

    private Exception Translate(Exception ex)
    {
        if (_requestAborted.IsCancellationRequested)
        {
            return new OperationCanceledException("The client cancelled the request.", ex, _requestAborted);
        }
        if (_timeout.IsCancellationRequested)
        {
            return new TritonCallException(TritonFailure.Timeout, "Triton sent nothing within the timeout.", ex);
        }
        return ex switch
        {
            RpcException rpc => new TritonCallException(IsDeterministic(rpc.StatusCode) ? TritonFailure.Backend : TritonFailure.Transport,
                $"Triton call failed: {rpc.StatusCode} {rpc.Status.Detail}", ex),
            TritonCallException => ex,
            _ => new TritonCallException(TritonFailure.Transport, "Triton call failed: " + ex.Message, ex),
        };
    }

    /// <summary>Statuses that another replica would answer the same way: never worth a retry.</summary>
    private static bool IsDeterministic(StatusCode code) => code is StatusCode.InvalidArgument or StatusCode.NotFound
        or StatusCode.FailedPrecondition or StatusCode.OutOfRange or StatusCode.Unimplemented or StatusCode.AlreadyExists
        or StatusCode.PermissionDenied or StatusCode.Unauthenticated;

    public async ValueTask DisposeAsync()
    {
        if (!_completed)
        {
            // Not finished cleanly: cancel so Triton stops generating at once.
            await _linked.CancelAsync().ConfigureAwait(false);
        }
        _call.Dispose();
        _linked.Dispose();
        _timeout.Dispose();
    }
}
