using Grpc.Core;
using Grpc.Health.V1;
using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Protocols;

public sealed class GrpcProtocolTests : IAsyncLifetime
{
    private TestEmulator _emulator = null!;

    public async Task InitializeAsync() => _emulator = await TestEmulator.StartAsync(
        [FasterTransformer(), FasterTransformer(name: "ft_unary", decoupled: false)], profile: "zero-latency");

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task Health_LiveReadyAndModelReady()
    {
        Assert.True((await _emulator.Client.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.True((await _emulator.Client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.True((await _emulator.Client.ModelReadyAsync(new ModelReadyRequest { Name = "fastertransformer" })).Ready);
        Assert.False((await _emulator.Client.ModelReadyAsync(new ModelReadyRequest { Name = "nope" })).Ready);
        var health = new Health.HealthClient(_emulator.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task Metadata_HasLeadingBatchDimAndProtocolDatatypes()
    {
        var server = await _emulator.Client.ServerMetadataAsync(new ServerMetadataRequest());
        Assert.Equal("triton", server.Name);
        Assert.StartsWith("2.", server.Version);

        var model = await _emulator.Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "fastertransformer" });
        var inputIds = model.Inputs.Single(i => i.Name == "input_ids");
        Assert.Equal("UINT32", inputIds.Datatype);
        Assert.Equal([-1L, -1L], inputIds.Shape);
        Assert.Equal([-1L, 2L, -1L], model.Inputs.Single(i => i.Name == "stop_words_list").Shape);
        Assert.Equal("FP32", model.Outputs.Single(o => o.Name == "cum_log_probs").Datatype);
    }

    [Fact]
    public async Task ConfigAndIndex_DescribeTheModels()
    {
        var config = (await _emulator.Client.ModelConfigAsync(new ModelConfigRequest { Name = "fastertransformer" })).Config;
        Assert.True(config.ModelTransactionPolicy.Decoupled);
        Assert.Equal(8, config.MaxBatchSize);

        var index = await _emulator.Client.RepositoryIndexAsync(new RepositoryIndexRequest());
        Assert.Equal(["fastertransformer", "ft_unary"], index.Models.Select(m => m.Name).Order());
        Assert.All(index.Models, m => Assert.Equal("READY", m.State));
    }

    [Fact]
    public async Task UnknownModel_IsNotFound()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => _emulator.Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("'nope'", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_OnDecoupledModel_IsRefusedLikeTriton()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => _emulator.Client.ModelInferAsync(Request("x")).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Equal("ModelInfer RPC doesn't support models with decoupled transaction policy", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_OnNonDecoupledModel_ReturnsTheWholeOutputOnce()
    {
        var response = await _emulator.Client.ModelInferAsync(Request("u", outputLength: 6, model: "ft_unary"));
        Assert.Equal("u", response.Id);
        Assert.Equal(Prompt.Length + 6, OutputIds(response).Length);
    }

    [Fact]
    public async Task Validation_MissingInput_IsWordedLikeTriton()
    {
        var request = Request("m");
        var index = request.Inputs.ToList().FindIndex(i => i.Name == "input_lengths");
        request.Inputs.RemoveAt(index);
        request.RawInputContents.RemoveAt(index);

        var error = await Assert.ThrowsAsync<RpcException>(() => _emulator.Client.ModelInferAsync(WithModel(request, "ft_unary")).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("[request id: m] expected 3 inputs but got 5 inputs for model 'ft_unary'", error.Status.Detail);
        Assert.Contains("missing required input(s) ['input_lengths']", error.Status.Detail);
    }

    [Fact]
    public async Task Validation_WrongDatatype_ShapeAndRawSize_AreStreamErrors()
    {
        await using var stream = new StreamRecorder(_emulator.Client);
        var datatype = Request("dt");
        datatype.Inputs[0].Datatype = "FP32";
        var shape = Request("shape");
        shape.Inputs.Single(i => i.Name == "input_lengths").Shape.Add(3);
        var size = Request("size");
        size.RawInputContents[0] = Google.Protobuf.ByteString.CopyFrom(new byte[7]);
        var count = Request("count");
        count.RawInputContents.RemoveAt(count.RawInputContents.Count - 1);
        var unknown = Request("unknown");
        Add(unknown, "nonsense", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32([1]), 1, 1);
        foreach (var request in new[] { datatype, shape, size, count, unknown })
        {
            await stream.SendAsync(request);
        }
        await stream.WaitUntilAsync(s => new[] { "dt", "shape", "size", "count", "unknown" }.All(s.IsFinished));

        Assert.Equal("[request id: dt] unexpected datatype TYPE_FP32 for inference input 'input_ids', expecting TYPE_UINT32 for model 'fastertransformer'", stream.ErrorFor("dt"));
        Assert.Contains("unexpected shape for input 'input_lengths'", stream.ErrorFor("shape"));
        Assert.Contains("input byte size mismatch for input 'input_ids'", stream.ErrorFor("size"));
        Assert.Contains("raw input contents", stream.ErrorFor("count"));
        Assert.Contains("unexpected inference input 'nonsense'", stream.ErrorFor("unknown"));
    }

    [Fact]
    public async Task Statistics_CountSuccessesAndExecutions()
    {
        await using var stream = new StreamRecorder(_emulator.Client);
        await stream.SendAsync(Request("s", outputLength: 3));
        await stream.WaitUntilAsync(s => s.IsFinished("s"));
        await WaitForSuccessAsync();

        var stats = (await _emulator.Client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "fastertransformer" })).ModelStats.Single();

        Assert.True(stats.InferenceStats.Success.Count >= 1);
        Assert.True(stats.ExecutionCount >= 1);
        Assert.True(stats.InferenceCount >= 1);
        Assert.Contains("2", stats.ResponseStats.Keys);
        Assert.NotEmpty(stats.BatchStats);
    }

    private async Task WaitForSuccessAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (_emulator.Server.Find("fastertransformer")!.Statistics!.Snapshot().InferenceStats.Success.Count == 0)
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    private static ModelInferRequest WithModel(ModelInferRequest request, string model)
    {
        request.ModelName = model;
        return request;
    }
}
