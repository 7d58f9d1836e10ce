using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text.Json.Serialization.Metadata;
using Gateway.Errors;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.OpenAi;

/// <summary>The client's side of a stream is gone (a flush found its connection closed).</summary>
internal sealed class ClientDisconnectedException() : OperationCanceledException("The client closed the connection.");

/// <summary>
/// One SSE response: the headers, every event through <see cref="SseWriter"/> under one gate, and
/// the keep-alive timer that writes <c>: keep-alive</c> comments while the stream is silent, from
/// before the first token (then it also sends the 200 and the headers) to the end. Failures end
/// the stream the same way wherever they happen: a status with an OpenAI error while nothing was
/// sent, else a final error event and <c>[DONE]</c>.
/// </summary>
internal sealed class SseResponse : IAsyncDisposable
{
    private static ReadOnlySpan<byte> KeepAliveComment => ": keep-alive\n\n"u8;

    private readonly HttpContext _context;
    private readonly SseWriter _writer;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ITimer _timer;
    private readonly TimeSpan _after;
    private readonly TimeSpan _interval;
    private bool _closed;

    public SseResponse(HttpContext context, SseOptions options, TimeProvider time)
    {
        _context = context;
        _writer = new SseWriter(context.Response.BodyWriter);
        _after = options.KeepAliveAfter;
        _interval = options.KeepAliveInterval;
        _timer = time.CreateTimer(static state => _ = ((SseResponse)state!).KeepAliveAsync(), this, _after, _interval);
    }

    /// <summary>Comments sent so far (telemetry, tests).</summary>
    public int KeepAlivesSent { get; private set; }

    /// <summary>Sends the 200 and the headers unless a keep-alive already did; the request id goes along when still possible.</summary>
    public async ValueTask StartAsync(string requestId, string overheadMs, CancellationToken cancellationToken)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_context.Response.HasStarted)
            {
                _context.Response.Headers["x-request-id"] = requestId;
                _context.Response.Headers[OpenAiEndpoints.OverheadHeader] = overheadMs;
                await StartResponseAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            Leave();
        }
    }

    public async ValueTask WriteAsync<T>(T value, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureOpen(await _writer.WriteAsync(value, typeInfo, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>One delta event (per token: no allocation on the synchronous path, pooled state otherwise).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteDeltaAsync(DeltaFrame frame, ReadOnlyMemory<char> text, CancellationToken cancellationToken)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            EnsureOpen(await _writer.WriteDeltaAsync(frame, text.Span, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>
    /// Writes and flushes <c>[DONE]</c> and stops the keep-alives. The body itself ends when the
    /// request does, after the stream's bookkeeping: a client that reads to the end knows the
    /// request is fully accounted; SDKs stop at <c>[DONE]</c> and are not delayed.
    /// </summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        await EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _closed = true;
            EnsureOpen(await _writer.WriteDoneAsync(cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>
    /// Ends the stream with <paramref name="error"/>: its status and body while nothing was sent,
    /// else the error event and <c>[DONE]</c>. A client that already left is not written to.
    /// </summary>
    public async ValueTask FailAsync(GatewayException error)
    {
        var aborted = _context.RequestAborted;
        try
        {
            await _gate.WaitAsync(aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        try
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            if (!_context.Response.HasStarted)
            {
                await OpenAiErrors.WriteAsync(_context, error).ConfigureAwait(false);
                return;
            }
            await _writer.WriteAsync(OpenAiErrors.ToBody(error), OpenAiJsonContext.Default.ErrorResponse, aborted).ConfigureAwait(false);
            await _writer.WriteDoneAsync(aborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The client went away while the end was written: nothing left to tell it.
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// A flush the server answered as completed (the client's connection is gone) or cancelled ends the
    /// stream now, before the request's abort signal arrives: the generation stops at the disconnect.
    /// </summary>
    private static void EnsureOpen(FlushResult result)
    {
        if (result.IsCompleted || result.IsCanceled)
        {
            throw new ClientDisconnectedException();
        }
    }

    private ValueTask StartResponseAsync(CancellationToken cancellationToken)
    {
        var response = _context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        _context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return new ValueTask(response.StartAsync(cancellationToken));
    }

    private ValueTask EnterAsync(CancellationToken cancellationToken) =>
        _gate.Wait(0) ? ValueTask.CompletedTask : new ValueTask(_gate.WaitAsync(cancellationToken));

    /// <summary>Something was just sent: the silence starts again.</summary>
    private void Leave()
    {
        if (!_closed)
        {
            _timer.Change(_after, _interval);
        }
        _gate.Release();
    }

    private async Task KeepAliveAsync()
    {
        if (!_gate.Wait(0))
        {
            return; // an event is being written: that is traffic
        }
        try
        {
            if (_closed)
            {
                return;
            }
            var aborted = _context.RequestAborted;
            if (!_context.Response.HasStarted)
            {
                await StartResponseAsync(aborted).ConfigureAwait(false);
            }
            var pipe = _context.Response.BodyWriter;
            pipe.Write(KeepAliveComment);
            await pipe.FlushAsync(aborted).ConfigureAwait(false);
            KeepAlivesSent++;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The client left; the request's own path notices and ends the generation.
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _timer.DisposeAsync().ConfigureAwait(false);
        // A keep-alive under way finishes before the response is left to the server.
        await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        _closed = true;
        _gate.Release();
        _gate.Dispose();
    }
}
