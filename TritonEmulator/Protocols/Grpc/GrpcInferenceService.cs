using System.Threading.Channels;
using Grpc.Core;
using Gateway.Grpc.Tensors;
using Triton.Inference;
using TritonEmulator.Models;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Protocols.Grpc;

/// <summary>Triton's <c>inference.GRPCInferenceService</c> over the engine.</summary>
internal sealed class GrpcInferenceService(InferenceServer server, IHostApplicationLifetime lifetime)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = server.IsLive });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = server.IsReady });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        var model = server.Find(request.Name);
        return Task.FromResult(new ModelReadyResponse { Ready = model is not null && model.IsReady && model.HasVersion(request.Version) });
    }

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerMetadataResponse
        {
            Name = InferenceServer.ServerName,
            Version = InferenceServer.ServerVersion,
            Extensions = { InferenceServer.Extensions },
        });

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(Run(() => ModelDescriptions.Metadata(server.GetReadyModel(request.Name, request.Version))));

    public override Task<ModelConfigResponse> ModelConfig(ModelConfigRequest request, ServerCallContext context) =>
        Task.FromResult(Run(() => new ModelConfigResponse { Config = server.GetReadyModel(request.Name, request.Version).Config }));

    public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context) =>
        Task.FromResult(Run(() => ModelDescriptions.Statistics(server, request.Name, request.Version)));

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        var response = new RepositoryIndexResponse();
        foreach (var model in server.Models)
        {
            if (request.Ready && !model.IsReady)
            {
                continue;
            }
            response.Models.Add(new RepositoryIndexResponse.Types.ModelIndex
            {
                Name = model.Name,
                Version = model.IsReady ? model.Version : "",
                State = model.IsReady ? "READY" : model.State,
                Reason = model.Reason,
            });
        }
        return Task.FromResult(response);
    }

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        try
        {
            var model = server.GetReadyModel(request.ModelName, request.ModelVersion);
            if (model.Decoupled)
            {
                throw new InferenceException(InferenceErrorCode.Unsupported,
                    "ModelInfer RPC doesn't support models with decoupled transaction policy");
            }
            ModelInferResponse? last = null;
            await foreach (var response in server.InferAsync(model, request, context.CancellationToken))
            {
                last = response;
            }
            if (last is null)
            {
                throw new InferenceException(InferenceErrorCode.Internal, "the model sent no response");
            }
            last.Parameters.Remove(ResponseStream.FinalResponseParameter);
            return last;
        }
        catch (InferenceException exception)
        {
            throw exception.ToRpc();
        }
    }

    /// <summary>
    /// Many requests per stream, run concurrently; responses are matched by <c>id</c>. A failed
    /// request becomes an <c>error_message</c> on the stream, which stays open.
    /// </summary>
    public override async Task ModelStreamInfer(IAsyncStreamReader<ModelInferRequest> requestStream,
        IServerStreamWriter<ModelStreamInferResponse> responseStream, ServerCallContext context)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var cancellationToken = linked.Token;
        var outgoing = Channel.CreateUnbounded<ModelStreamInferResponse>(new UnboundedChannelOptions { SingleReader = true });
        var writer = WriteAllAsync(outgoing.Reader, responseStream, cancellationToken);
        var running = new List<Task>();
        var clientFinished = false;
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(cancellationToken))
            {
                running.Add(RunStreamRequestAsync(request, outgoing.Writer, cancellationToken));
            }
            // The client half-closed (WritesDone): like Triton, finish every request already sent.
            await Task.WhenAll(running);
            clientFinished = true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (IOException) when (context.CancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (!clientFinished)
            {
                linked.Cancel();
            }
            await Task.WhenAll(running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            outgoing.Writer.TryComplete();
        }
        // Drain what the requests produced before the call ends (cancelled only if the call was).
        await writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunStreamRequestAsync(ModelInferRequest request, ChannelWriter<ModelStreamInferResponse> outgoing, CancellationToken cancellationToken)
    {
        // Leave the reader loop at once: the request runs beside the others on this stream.
        await Task.Yield();
        try
        {
            var model = server.GetReadyModel(request.ModelName, request.ModelVersion);
            await foreach (var response in server.InferAsync(model, request, cancellationToken))
            {
                outgoing.TryWrite(new ModelStreamInferResponse { InferResponse = response });
            }
        }
        catch (InferenceException exception)
        {
            outgoing.TryWrite(new ModelStreamInferResponse
            {
                ErrorMessage = exception.Message,
                // Like Triton, repopulate the id so that the client knows which request failed.
                InferResponse = new ModelInferResponse { Id = request.Id, ModelName = request.ModelName, ModelVersion = request.ModelVersion },
            });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // A response written while another is already queued is buffered, not flushed (up to
    // MaxBufferedInARow in a row): a step that produces many responses at once (a batch, or a
    // zero-cost timing model) goes out in one flush with the last of them. Every message is still its own gRPC message on the wire.
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    // At most this many responses in a row wait for a later flush: a producer faster than the socket (a
    // tiny model, a long generation) still reaches the client every few tokens, never only at its end.
    internal const int MaxBufferedInARow = 8;

    private static async Task WriteAllAsync(ChannelReader<ModelStreamInferResponse> reader, IServerStreamWriter<ModelStreamInferResponse> writer, CancellationToken cancellationToken)
    {
        var buffered = 0;
        await foreach (var response in reader.ReadAllAsync(cancellationToken))
        {
            var hold = buffered < MaxBufferedInARow && reader.TryPeek(out _);
            buffered = hold ? buffered + 1 : 0;
            writer.WriteOptions = hold ? Buffered : null;
            await writer.WriteAsync(response, cancellationToken);
        }
    }

    private static T Run<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (InferenceException exception)
        {
            throw exception.ToRpc();
        }
    }
}

/// <summary>Model metadata and statistics shared by the gRPC and HTTP faces.</summary>
internal static class ModelDescriptions
{
    public static ModelMetadataResponse Metadata(ServedModel model)
    {
        var config = model.Config!;
        var response = new ModelMetadataResponse
        {
            Name = model.Name,
            Platform = string.IsNullOrEmpty(config.Platform) ? config.Backend : config.Platform,
        };
        response.Versions.AddRange(model.Versions.Select(static v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        foreach (var input in config.Input)
        {
            response.Inputs.Add(Tensor(config, input.Name, input.DataType, input.Dims));
        }
        foreach (var output in config.Output)
        {
            response.Outputs.Add(Tensor(config, output.Name, output.DataType, output.Dims));
        }
        return response;
    }

    private static ModelMetadataResponse.Types.TensorMetadata Tensor(ModelConfig config, string name, DataType type, IEnumerable<long> dims)
    {
        var tensor = new ModelMetadataResponse.Types.TensorMetadata { Name = name, Datatype = type.ToProtocolName() };
        if (config.MaxBatchSize > 0)
        {
            tensor.Shape.Add(-1);
        }
        tensor.Shape.AddRange(dims);
        return tensor;
    }

    public static ModelStatisticsResponse Statistics(InferenceServer server, string name, string version)
    {
        var response = new ModelStatisticsResponse();
        if (string.IsNullOrEmpty(name))
        {
            foreach (var model in server.Models)
            {
                if (model.Statistics is { } statistics)
                {
                    response.ModelStats.Add(statistics.Snapshot());
                }
            }
            return response;
        }
        var served = server.GetReadyModel(name, version);
        response.ModelStats.Add(served.Statistics!.Snapshot());
        return response;
    }
}
