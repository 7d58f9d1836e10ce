using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using Gateway.Errors;
using Gateway.Ledger;
using Gateway.Routing;
using Gateway.Telemetry;
using Gateway.Text;
using Gateway.Triton;
using Gateway.Triton.Contracts;
using Gateway.Triton.Wire;

namespace Gateway.Generation;

/// <summary>
/// New text since the previous delta (whole characters only) and the tokens it took.
/// <see cref="Chars"/> is the stream's reused buffer: valid until the stream moves on.
/// </summary>
public readonly record struct GenerationDelta(ReadOnlyMemory<char> Chars, int TokenCount)
{
    /// <summary>The text as a string (allocates; for callers that keep it).</summary>
    public string Text => Chars.ToString();
}

/// <summary>
/// A started generation: Triton's responses turned into text deltas with stop strings applied.
/// Read it once with <see cref="ReadAllAsync"/>; afterwards <see cref="FinishReason"/> and
/// <see cref="Usage"/> are set. Dispose ends it: the quota is settled, metrics are recorded and an
/// unfinished Triton call is cancelled.
/// </summary>
internal sealed partial class GenerationStream : IAsyncDisposable
{
    private readonly GenerationContext _context;
    private readonly TritonCall _call;
    private readonly ReplicaLease _lease;
    private readonly Activity? _callActivity;
    private readonly ITritonResponseDecoder _decoder;
    private readonly TritonOptions _options;
    private readonly GatewayTelemetry _telemetry;
    private readonly IUsageLedger _ledger;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IIncrementalDetokenizer _detokenizer;
    private readonly StopStringMatcher _stops;
    private readonly TritonOutput _step = new();
    private readonly StringBuilder _decoded = new();
    private readonly StringBuilder _output = new();
    private char[] _delta = new char[64];
    private TritonResponse? _pending;
    private TimeSpan _backendWait;
    private long _firstTokenTimestamp;
    private bool _final;
    private bool _stopMatched;
    private bool _flushed;
    private bool _completed;
    private GatewayException? _failure;
    private int _promptTokens;

    public GenerationStream(GenerationContext context, TritonCall call, ReplicaLease lease, Activity? callActivity, ITritonResponseDecoder decoder,
        TritonResponse first, TimeSpan backendWait, TritonOptions options, GatewayTelemetry telemetry, IUsageLedger ledger, TimeProvider time, ILogger logger)
    {
        _ledger = ledger;
        _context = context;
        _call = call;
        _lease = lease;
        _callActivity = callActivity;
        _decoder = decoder;
        _promptTokens = context.PromptTokens;
        _pending = first;
        _backendWait = backendWait;
        _options = options;
        _telemetry = telemetry;
        _time = time;
        _logger = logger;
        _detokenizer = context.Model.Tokenizer.CreateDetokenizer();
        _stops = new StopStringMatcher(context.Stops);
        _firstTokenTimestamp = time.GetTimestamp();
        TimeToFirstToken = time.GetElapsedTime(context.StartedTimestamp);
        Created = time.GetUtcNow().ToUnixTimeSeconds();
        telemetry.RecordTimeToFirstToken(context.Operation, context.Model.Id, TimeToFirstToken);
    }

    public string Id => _context.Id;

    public string Model => _context.Model.Id;

    /// <summary>The model's tool-call format (how its answers are parsed for tool calls).</summary>
    public string ToolCallParser => _context.Model.Options.ToolCallParser;

    /// <summary>Unix seconds, the same for every chunk of the stream.</summary>
    public long Created { get; }

    public int MaxTokens => _context.MaxTokens;

    public TimeSpan TimeToFirstToken { get; }

    public FinishReason? FinishReason { get; private set; }

    public int CompletionTokens { get; private set; }

    /// <summary>Prompt tokens: the gateway's count, or the backend's exact count for a text contract.</summary>
    public int PromptTokens => _promptTokens;

    public TokenUsage Usage => new(_promptTokens, CompletionTokens);

    /// <summary>Time spent in the gateway so far that was not spent waiting on Triton.</summary>
    public TimeSpan Overhead
    {
        get
        {
            var overhead = _time.GetElapsedTime(_context.StartedTimestamp) - _backendWait;
            return overhead < TimeSpan.Zero ? TimeSpan.Zero : overhead;
        }
    }

    /// <summary>
    /// Text deltas until the generation ends. A failure after the first token is a
    /// <see cref="GatewayException"/> (idle timeout, backend failure); client cancellation is an
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public async IAsyncEnumerable<GenerationDelta> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_pending is { } response)
            {
                _pending = null;
                int tokens;
                try
                {
                    tokens = Process(response);
                }
                finally
                {
                    response.Return();
                }
                _lease.TokensGenerated(tokens);
                if (_output.Length > 0 || tokens > 0)
                {
                    yield return new GenerationDelta(TakeOutput(), tokens);
                }
                if (_final || _stopMatched)
                {
                    break;
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            _pending = await ReadNextAsync().ConfigureAwait(false);
            if (_pending is null)
            {
                // Triton closed the stream. After the end (end id / length) that is fine.
                if (FinishReason is null)
                {
                    throw Fail(new GatewayException(GatewayError.BackendFailed, "The backend closed the stream before the generation finished.", null, "backend_error"));
                }
                _final = true;
                Flush();
                if (_output.Length > 0)
                {
                    yield return new GenerationDelta(TakeOutput(), 0);
                }
                break;
            }
        }
        // Triton's close is awaited at dispose, after the face has sent the end to its client.
        _completed = true;
    }

    // Once per token: pooled async state instead of a box per call.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TritonResponse?> ReadNextAsync()
    {
        var started = _time.GetTimestamp();
        try
        {
            return await _call.ReadAsync(_options.IdleTimeout).ConfigureAwait(false);
        }
        catch (TritonCallException) when (FinishReason is not null)
        {
            // Every token is already out (end id or length); only the final flag was missing: that is the end.
            return null;
        }
        catch (TritonCallException ex)
        {
            LogStreamFailed(_logger, _context.Id, ex.Failure, ex.Message);
            _lease.Failed(ex.Failure, ex.Message);
            throw Fail(ex.ToGateway(streaming: true, _options.IdleTimeout));
        }
        finally
        {
            _backendWait += _time.GetElapsedTime(started);
        }
    }

    /// <summary>Moves the pending output into the reused delta buffer (no string per token).</summary>
    private ReadOnlyMemory<char> TakeOutput()
    {
        var length = _output.Length;
        if (length > _delta.Length)
        {
            _delta = new char[Math.Max(length, _delta.Length * 2)];
        }
        _output.CopyTo(0, _delta, length);
        _output.Clear();
        return _delta.AsMemory(0, length);
    }

    /// <summary>Runs one response through decoder, detokenizer and stop matcher; returns the tokens it consumed.</summary>
    private int Process(TritonResponse response)
    {
        _step.Clear();
        TritonStep step;
        try
        {
            step = _decoder.Decode(response, _step);
        }
        catch (FormatException ex)
        {
            throw Fail(new GatewayException(GatewayError.BackendFailed, "The backend sent a malformed response: " + ex.Message, null, "backend_error", inner: ex));
        }
        return _decoder.StreamsText ? ProcessText(step) : ProcessTokens(step);
    }

    /// <summary>A token contract's response: ids through the detokenizer and the stop matcher, counted here.</summary>
    private int ProcessTokens(TritonStep step)
    {
        var consumed = 0;
        foreach (var id in _step.Tokens)
        {
            if (FinishReason is not null)
            {
                break;
            }
            CompletionTokens++;
            consumed++;
            _detokenizer.Append(id, _decoded);
            if (_decoded.Length > 0)
            {
                foreach (var chunk in _decoded.GetChunks())
                {
                    _stops.Process(chunk.Span, _output);
                }
                _decoded.Clear();
            }
            if (_stops.Stopped)
            {
                FinishReason = Triton.Contracts.FinishReason.Stop;
                _stopMatched = true;
            }
            else if (CompletionTokens >= _context.MaxTokens)
            {
                FinishReason = Triton.Contracts.FinishReason.Length;
            }
        }
        if (step.EndOfText && FinishReason is null)
        {
            FinishReason = Triton.Contracts.FinishReason.Stop;
        }
        if (step.IsFinal)
        {
            _final = true;
            // Ended without end id or length: a backend stop word matched.
            FinishReason ??= CompletionTokens >= _context.MaxTokens ? Triton.Contracts.FinishReason.Length : Triton.Contracts.FinishReason.Stop;
        }
        if (FinishReason is not null && !_stopMatched)
        {
            Flush();
        }
        return consumed;
    }

    /// <summary>
    /// A text contract's response: the backend's text delta through the stop matcher; token counts,
    /// prompt length and finish reason are the backend's own.
    /// </summary>
    private int ProcessText(TritonStep step)
    {
        if (step.PromptTokens is { } prompt)
        {
            _promptTokens = prompt;
        }
        if (FinishReason is not null)
        {
            return 0;
        }
        CompletionTokens += step.OutputTokens;
        foreach (var chunk in _step.Text.GetChunks())
        {
            _stops.Process(chunk.Span, _output);
        }
        if (_stops.Stopped)
        {
            FinishReason = Triton.Contracts.FinishReason.Stop;
            _stopMatched = true;
        }
        if (step.IsFinal)
        {
            _final = true;
            FinishReason ??= step.FinishReason ?? (CompletionTokens >= _context.MaxTokens ? Triton.Contracts.FinishReason.Length : Triton.Contracts.FinishReason.Stop);
        }
        if (FinishReason is not null && !_stopMatched)
        {
            Flush();
        }
        return step.OutputTokens;
    }

    /// <summary>Emits what detokenizer and stop matcher still hold, once, at a natural end.</summary>
    private void Flush()
    {
        if (_flushed)
        {
            return;
        }
        _flushed = true;
        _detokenizer.Flush(_decoded);
        foreach (var chunk in _decoded.GetChunks())
        {
            _stops.Process(chunk.Span, _output);
        }
        _decoded.Clear();
        if (_stops.Stopped)
        {
            _stopMatched = true;
            FinishReason = Triton.Contracts.FinishReason.Stop;
        }
        else
        {
            _stops.Flush(_output);
        }
    }

    private GatewayException Fail(GatewayException exception)
    {
        _failure = exception;
        return exception;
    }

    /// <summary>
    /// Tells the stream why its face ended it early (the drain deadline, an unexpected failure), so
    /// it is recorded as that and not as a client cancellation.
    /// </summary>
    public void EndedWith(GatewayException failure) => _failure ??= failure;

    /// <summary>
    /// Ends the generation, whatever throws on the way: a finished call is half-closed and Triton's
    /// close awaited (bounded), an unfinished one cancelled; then the replica lease is released, the
    /// quota settled to the tokens used and the request recorded.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            try
            {
                if (_completed && _final)
                {
                    await _call.CompleteAsync(_options.IdleTimeout).ConfigureAwait(false);
                }
            }
            finally
            {
                await _call.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            try
            {
                // After the call: the last lease of a departed replica releases its channel.
                _lease.Dispose();
                await _context.Reservation.SettleAsync(_promptTokens + CompletionTokens).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogSettleFailed(_logger, ex, _context.Id);
            }
            finally
            {
                Record();
            }
        }
    }

    private void Record()
    {
        var duration = _time.GetElapsedTime(_context.StartedTimestamp);
        var model = _context.Model.Id;
        _telemetry.RecordTokens(_context.Operation, model, _promptTokens, CompletionTokens);
        if (CompletionTokens > 1)
        {
            _telemetry.RecordTimePerOutputToken(_context.Operation, model, _time.GetElapsedTime(_firstTokenTimestamp) / (CompletionTokens - 1));
        }
        var outcome = _completed ? "success" : _failure?.Outcome ?? "cancelled";
        _telemetry.RecordRequest(_context.Operation, model, _context.Caller.Tenant, outcome, duration, _completed ? null : outcome);
        if (_callActivity is not null)
        {
            if (!_completed)
            {
                _callActivity.SetStatus(ActivityStatusCode.Error, outcome);
            }
            _callActivity.Dispose();
        }
        if (_context.Activity is { } activity)
        {
            activity.SetTag("gen_ai.usage.output_tokens", CompletionTokens);
            activity.SetTag("gen_ai.response.finish_reasons", FinishReason is { } reason ? new[] { reason == Triton.Contracts.FinishReason.Stop ? "stop" : "length" } : null);
            activity.SetTag("gateway.outcome", outcome);
            if (!_completed)
            {
                activity.SetStatus(ActivityStatusCode.Error, outcome);
            }
            activity.Dispose();
        }
        LogFinished(_logger, _context.Id, model, _context.Caller.Tenant, outcome, _promptTokens, CompletionTokens, duration.TotalMilliseconds);
        // Billed once, here, with the counts the response reported (or, cut short, the tokens generated until it stopped).
        var caller = _context.Caller;
        var endpoint = _lease.Replica.Grpc;
        _ledger.Record(new UsageRecord
        {
            RequestId = _context.Id,
            KeyId = caller.LedgerKeyId,
            KeyName = caller.LedgerKeyName,
            Tenant = caller.Tenant,
            Model = model,
            Operation = _context.Operation,
            Gateway = UsageRecord.ThisGateway,
            Replica = endpoint.Authority,
            Status = _completed ? UsageStatus.Ok : _failure is null ? UsageStatus.Cancelled : UsageStatus.Failed,
            Reason = _completed ? null : outcome,
            PromptTokens = _promptTokens,
            CompletionTokens = CompletionTokens,
            TtftMs = TimeToFirstToken.TotalMilliseconds,
            DurationMs = duration.TotalMilliseconds,
            StartedAtMs = (_time.GetUtcNow() - duration).ToUnixTimeMilliseconds(),
        });
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId}: releasing the replica or settling the quota failed")]
    private static partial void LogSettleFailed(ILogger logger, Exception exception, string requestId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: Triton stream failed ({Failure}): {Reason}")]
    private static partial void LogStreamFailed(ILogger logger, string requestId, TritonFailure failure, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} model {Model} tenant {Tenant}: {Outcome}, {PromptTokens} prompt + {CompletionTokens} completion tokens in {DurationMs:0.0} ms")]
    private static partial void LogFinished(ILogger logger, string requestId, string model, string tenant, string outcome, int promptTokens, int completionTokens, double durationMs);
}
