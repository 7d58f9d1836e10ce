using System.Collections.Concurrent;
using System.Net;
using Gateway.Grpc.Tensors;
using Gateway.Triton.Contracts;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Triton.Inference;

namespace Gateway.Tests.Functional;

/// <summary>
/// A real gRPC server (Kestrel, h2c, loopback port 0) speaking Triton's <c>ModelStreamInfer</c>
/// whose answers a test scripts: exact token sequences, stalls, errors and broken connections
/// that the emulator cannot be asked for. The gateway cannot tell it from Triton on the wire.
/// </summary>
internal sealed class ScriptedTriton : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ScriptedTriton(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>Runs for each call; the default sends nothing.</summary>
    public Func<ScriptedCall, Task> Script { get; set; } = _ => Task.CompletedTask;

    public ConcurrentQueue<ScriptedCall> Calls { get; } = new();

    private readonly TaskCompletionSource<ScriptedCall> _firstCall = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the first call arrives.</summary>
    public Task<ScriptedCall> FirstCall => _firstCall.Task;

    private readonly SemaphoreSlim _recorded = new(0);

    internal void Record(ScriptedCall call)
    {
        Calls.Enqueue(call);
        _firstCall.TrySetResult(call);
        _recorded.Release();
    }

    /// <summary>Completes when <paramref name="count"/> calls have arrived in all; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public async Task WaitForCallsAsync(int count, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (Calls.Count < count)
        {
            try
            {
                await _recorded.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"{Calls.Count} of {count} calls arrived within {timeout}");
            }
        }
    }

    public static async Task<ScriptedTriton> StartAsync(Func<ScriptedCall, Task>? script = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var holder = new Holder();
        builder.Services.AddSingleton(holder);
        var app = builder.Build();
        app.MapGrpcService<Service>();
        await app.StartAsync();
        var address = new Uri(app.Urls.First().Replace("[::1]", "127.0.0.1", StringComparison.Ordinal));
        var triton = new ScriptedTriton(app, address);
        if (script is not null)
        {
            triton.Script = script;
        }
        holder.Owner = triton;
        return triton;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(new CancellationToken(canceled: true));
        await _app.DisposeAsync();
    }

    private sealed class Holder
    {
        public ScriptedTriton Owner { get; set; } = null!;
    }

    /// <summary>What ServerReady and ModelReady answer (the gateway's health probes read them).</summary>
    public bool Ready { get; set; } = true;

    /// <summary>When set, RepositoryIndex accepts the call and never answers (until the caller gives up).</summary>
    public bool HangRepositoryIndex { get; set; }

    private int _repositoryIndexCalls;

    /// <summary>RepositoryIndex calls received.</summary>
    public int RepositoryIndexCalls => Volatile.Read(ref _repositoryIndexCalls);

    private readonly TaskCompletionSource _repositoryIndexReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the first RepositoryIndex call arrives.</summary>
    public Task RepositoryIndexReceived => _repositoryIndexReceived.Task;

    internal void CountRepositoryIndex()
    {
        Interlocked.Increment(ref _repositoryIndexCalls);
        _repositoryIndexReceived.TrySetResult();
    }

    /// <summary>Per model (ModelReady's name): true = ready, false = not ready, null = not in this server's repository (NotFound).</summary>
    public Func<string, bool?> ModelState { get; set; } = _ => true;

    private sealed class Service(Holder holder) : GRPCInferenceService.GRPCInferenceServiceBase
    {
        public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
            Task.FromResult(new ServerReadyResponse { Ready = holder.Owner.Ready });

        public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
            holder.Owner.ModelState(request.Name) is { } ready
                ? Task.FromResult(new ModelReadyResponse { Ready = holder.Owner.Ready && ready })
                : throw new RpcException(new Status(StatusCode.NotFound, $"Request for unknown model: '{request.Name}' is not found"));

        public override async Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
        {
            holder.Owner.CountRepositoryIndex();
            if (holder.Owner.HangRepositoryIndex)
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            return new RepositoryIndexResponse();
        }

        public override async Task ModelStreamInfer(IAsyncStreamReader<ModelInferRequest> requestStream, IServerStreamWriter<ModelStreamInferResponse> responseStream, ServerCallContext context)
        {
            if (!await requestStream.MoveNext(context.CancellationToken))
            {
                return;
            }
            var call = new ScriptedCall(requestStream.Current, context.RequestHeaders, responseStream, context.CancellationToken, () => context.GetHttpContext().Abort());
            context.CancellationToken.Register(() => call.SetCancelled());
            holder.Owner.Record(call);
            try
            {
                await holder.Owner.Script(call);
                // Like Triton: the stream stays open until the client half-closes it.
                while (await requestStream.MoveNext(context.CancellationToken))
                {
                }
                call.SetCompletedCleanly();
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
            }
            catch (IOException) when (context.CancellationToken.IsCancellationRequested)
            {
            }
        }
    }
}

/// <summary>One <c>ModelStreamInfer</c> call as the scripted server sees it.</summary>
internal sealed class ScriptedCall(ModelInferRequest request, Metadata headers, IServerStreamWriter<ModelStreamInferResponse> writer, CancellationToken aborted, Action kill)
{
    // FT requests start the cumulative sequence with the prompt ids; vLLM (text) requests have none.
    private readonly List<uint> _sequence = request.Inputs.ToList().FindIndex(t => t.Name == "input_ids") is var ids and >= 0
        ? [.. TensorCodec.DecodeUInt32(request.RawInputContents[ids].Span)]
        : [];
    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ModelInferRequest Request { get; } = request;

    public Metadata Headers { get; } = headers;

    public CancellationToken Aborted { get; } = aborted;

    /// <summary>Completes when the gateway cancels the call (client gone, deadline, stop string).</summary>
    public Task Cancelled => _cancelled.Task;

    /// <summary>Completes when the gateway half-closed the call after the final response.</summary>
    public Task CompletedCleanly => _completed.Task;

    public uint[] InputIds(string name) =>
        TensorCodec.DecodeUInt32(Request.RawInputContents[Request.Inputs.ToList().FindIndex(t => t.Name == name)].Span);

    /// <summary>The single string of a BYTES input (vLLM's <c>text_input</c>, <c>sampling_parameters</c>).</summary>
    public string InputString(string name) =>
        Assert.Single(TensorCodec.DecodeStrings(Request.RawInputContents[Request.Inputs.ToList().FindIndex(t => t.Name == name)].Span));

    public int[] InputInt32(string name) =>
        TensorCodec.DecodeInt32(Request.RawInputContents[Request.Inputs.ToList().FindIndex(t => t.Name == name)].Span);

    internal void SetCancelled() => _cancelled.TrySetResult();

    /// <summary>Resets the HTTP/2 stream as a crashing server would.</summary>
    public void Kill() => kill();

    internal void SetCompletedCleanly() => _completed.TrySetResult();

    /// <summary>Sends one FT-style cumulative response per token (prompt + everything so far).</summary>
    public async Task SendTokensAsync(IEnumerable<int> tokens, bool finalFlag = true)
    {
        foreach (var token in tokens)
        {
            _sequence.Add((uint)token);
            await writer.WriteAsync(new ModelStreamInferResponse { InferResponse = Cumulative(finalFlag ? false : null) }, Aborted);
        }
    }

    /// <summary>The empty final response Triton ≥ 23.06 sends when asked for it.</summary>
    public Task SendEmptyFinalAsync()
    {
        var response = new ModelInferResponse { Id = Request.Id, ModelName = Request.ModelName };
        response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = true };
        return writer.WriteAsync(new ModelStreamInferResponse { InferResponse = response }, Aborted);
    }

    /// <summary>One vLLM-contract streaming response: a text delta, its token count, the finish reason and the final flag.</summary>
    public Task SendVllmDeltaAsync(string text, uint outputTokens, string finishReason = "None", bool final = false, uint inputTokens = 3)
    {
        var response = new ModelInferResponse { Id = Request.Id, ModelName = Request.ModelName };
        void Add(string name, string datatype, Google.Protobuf.ByteString raw)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(1);
            response.Outputs.Add(tensor);
            response.RawOutputContents.Add(raw);
        }
        Add("text_output", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(text));
        Add("finish_reason", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(finishReason));
        Add("num_input_tokens", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([inputTokens]));
        Add("num_output_tokens", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([outputTokens]));
        response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = final };
        return writer.WriteAsync(new ModelStreamInferResponse { InferResponse = response }, Aborted);
    }

    /// <summary>
    /// A message built beforehand, written with no per-write allocation of its own (no wrapper
    /// message, no cancellation registration): for tests that count what the gateway allocates.
    /// </summary>
    /// With <paramref name="flush"/> false it is buffered (gRPC's BufferHint) until a later write flushes.
    public Task SendPrebuiltAsync(ModelStreamInferResponse response, bool flush = true)
    {
        writer.WriteOptions = flush ? null : Buffered;
        return writer.WriteAsync(response);
    }

    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    /// <summary>Any response as it is, for malformed-response tests.</summary>
    public Task SendRawAsync(ModelInferResponse response) =>
        writer.WriteAsync(new ModelStreamInferResponse { InferResponse = response }, Aborted);

    public Task SendErrorAsync(string message) =>
        writer.WriteAsync(new ModelStreamInferResponse { ErrorMessage = message }, Aborted);

    private ModelInferResponse Cumulative(bool? final)
    {
        var response = new ModelInferResponse { Id = Request.Id, ModelName = Request.ModelName };
        var ids = new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = TensorDataTypes.UInt32 };
        ids.Shape.Add([1, 1, _sequence.Count]);
        var length = new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = TensorDataTypes.UInt32 };
        length.Shape.Add([1, 1]);
        response.Outputs.Add(ids);
        response.Outputs.Add(length);
        response.RawOutputContents.Add(TensorCodec.EncodeUInt32(_sequence.ToArray()));
        response.RawOutputContents.Add(TensorCodec.EncodeUInt32([(uint)_sequence.Count]));
        if (final is { } f)
        {
            response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = f };
        }
        return response;
    }
}
