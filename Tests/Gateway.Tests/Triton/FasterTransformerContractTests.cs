using Gateway.Grpc.Tensors;
using Gateway.Triton.Contracts;
using Google.Protobuf;
using Triton.Inference;

namespace Gateway.Tests.Triton;

public sealed class FasterTransformerContractTests
{
    private static readonly FasterTransformerContract Contract = new();

    private static TritonGenerationInput Input(SamplingParameters? sampling = null, IReadOnlyList<IReadOnlyList<int>>? stops = null, int maxTokens = 8, int priority = 0) =>
        new("req-1", "fastertransformer", "", [464, 2068, 7586], maxTokens, sampling ?? new SamplingParameters(), stops ?? [], 50256, 50256, priority);

    private static (ModelInferRequest.Types.InferInputTensor Tensor, ByteString Raw) Tensor(ModelInferRequest request, string name)
    {
        var index = request.Inputs.ToList().FindIndex(t => t.Name == name);
        Assert.True(index >= 0, $"input {name} missing");
        return (request.Inputs[index], request.RawInputContents[index]);
    }

    [Fact]
    public void EncodeWordList_TwoPhrases_IdsRowThenCumulativeOffsetsPadded()
    {
        var (flat, length) = FasterTransformerContract.EncodeWordList([[11, 22], [33]]);
        Assert.Equal(3, length);
        Assert.Equal([11, 22, 33, 2, 3, -1], flat);
    }

    [Fact]
    public void EncodeWordList_SingleTokenPhrase_HasWidthOne()
    {
        var (flat, length) = FasterTransformerContract.EncodeWordList([[7]]);
        Assert.Equal(1, length);
        Assert.Equal([7, 1], flat);
    }

    [Fact]
    public void CreateRequest_StopWords_AreInt32TensorOfShape1x2xN()
    {
        var request = Contract.CreateRequest(Input(stops: [[11, 22], [33]])).ToMessage();
        var (tensor, raw) = Tensor(request, "stop_words_list");
        Assert.Equal(TensorDataTypes.Int32, tensor.Datatype);
        Assert.Equal([1L, 2, 3], tensor.Shape);
        Assert.Equal([11, 22, 33, 2, 3, -1], TensorCodec.DecodeInt32(raw.Span));
    }

    [Fact]
    public void CreateRequest_NoStops_SendsNoStopWordsList()
    {
        var request = Contract.CreateRequest(Input()).ToMessage();
        Assert.DoesNotContain(request.Inputs, t => t.Name == "stop_words_list");
    }

    [Fact]
    public void CreateRequest_Basics_IdPromptLengthsAndEmptyFinalResponse()
    {
        var request = Contract.CreateRequest(Input(maxTokens: 12, priority: 1)).ToMessage();
        Assert.Equal("req-1", request.Id);
        Assert.Equal("fastertransformer", request.ModelName);
        Assert.True(request.Parameters[TritonContracts.EnableEmptyFinalResponse].BoolParam);
        Assert.Equal(1, request.Parameters["priority"].Int64Param);
        var (ids, idsRaw) = Tensor(request, "input_ids");
        Assert.Equal([1L, 3], ids.Shape);
        Assert.Equal([464u, 2068, 7586], TensorCodec.DecodeUInt32(idsRaw.Span));
        Assert.Equal([3u], TensorCodec.DecodeUInt32(Tensor(request, "input_lengths").Raw.Span));
        Assert.Equal([12u], TensorCodec.DecodeUInt32(Tensor(request, "request_output_len").Raw.Span));
        Assert.Equal([50256u], TensorCodec.DecodeUInt32(Tensor(request, "end_id").Raw.Span));
        Assert.Equal(request.Inputs.Count, request.RawInputContents.Count);
        Assert.Equal(["output_ids", "sequence_length"], request.Outputs.Select(o => o.Name));
    }

    [Fact]
    public void MapSampling_Defaults_AreOpenAiDefaults()
    {
        var mapped = FasterTransformerContract.MapSampling(new SamplingParameters());
        Assert.Equal(new FasterTransformerContract.FtSampling(0, 1.0f, 1.0f, null, null), mapped);
    }

    [Fact]
    public void MapSampling_TemperatureZero_IsGreedyTopK1()
    {
        var mapped = FasterTransformerContract.MapSampling(new SamplingParameters { Temperature = 0, TopP = 0.9 });
        Assert.Equal(1u, mapped.TopK);
        Assert.Equal(1.0f, mapped.Temperature);
        Assert.Equal(0.9f, mapped.TopP);
    }

    [Theory]
    [InlineData(0.0, 0.0, null)]
    [InlineData(2.0, 2.0, 2.0f)]
    [InlineData(-2.0, -2.0, 0.5f)]
    [InlineData(1.0, 1.0, 1.41421354f)]
    public void MapSampling_Penalties_AreRepetitionPenaltyPowerOfTwo(double presence, double frequency, float? expected)
    {
        var mapped = FasterTransformerContract.MapSampling(new SamplingParameters { PresencePenalty = presence, FrequencyPenalty = frequency });
        Assert.Equal(expected, mapped.RepetitionPenalty);
    }

    [Fact]
    public void MapSampling_SeedTopKTemperature_PassThrough()
    {
        var mapped = FasterTransformerContract.MapSampling(new SamplingParameters { Seed = -1, TopK = 40, Temperature = 0.7 });
        Assert.Equal(ulong.MaxValue, mapped.RandomSeed);
        Assert.Equal(40u, mapped.TopK);
        Assert.Equal(0.7f, mapped.Temperature);
    }

    [Fact]
    public void CreateRequest_SamplingTensors_HaveFtTypes()
    {
        var request = Contract.CreateRequest(Input(new SamplingParameters { Seed = 42, PresencePenalty = 1, TopK = 5, TopP = 0.5, Temperature = 0.25 })).ToMessage();
        Assert.Equal([42ul], TensorCodec.DecodeUInt64(Tensor(request, "random_seed").Raw.Span));
        Assert.Equal(TensorDataTypes.UInt64, Tensor(request, "random_seed").Tensor.Datatype);
        Assert.Equal([5u], TensorCodec.DecodeUInt32(Tensor(request, "runtime_top_k").Raw.Span));
        Assert.Equal([0.5f], TensorCodec.DecodeFloat32(Tensor(request, "runtime_top_p").Raw.Span));
        Assert.Equal([0.25f], TensorCodec.DecodeFloat32(Tensor(request, "temperature").Raw.Span));
        Assert.Equal(TensorDataTypes.Fp32, Tensor(request, "repetition_penalty").Tensor.Datatype);
    }

    internal static ModelInferResponse CumulativeResponse(uint[] ids, bool? final)
    {
        var response = new ModelInferResponse { Id = "req-1", ModelName = "fastertransformer" };
        var outputIds = new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = "UINT32" };
        outputIds.Shape.Add([1, 1, ids.Length]);
        var lengths = new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = "UINT32" };
        lengths.Shape.Add([1, 1]);
        response.Outputs.Add(outputIds);
        response.Outputs.Add(lengths);
        response.RawOutputContents.Add(TensorCodec.EncodeUInt32(ids));
        response.RawOutputContents.Add(TensorCodec.EncodeUInt32([(uint)ids.Length]));
        if (final is { } f)
        {
            response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = f };
        }
        return response;
    }

    [Fact]
    public void Decode_CumulativeResponses_ForwardOnlyNewTokens()
    {
        var decoder = Contract.CreateDecoder(Input());
        var output = new TritonOutput();
        var tokens = output.Tokens;
        Assert.False(decoder.Decode(CumulativeResponse([464, 2068, 7586, 10], false).ToWire(), output).IsFinal);
        Assert.False(decoder.Decode(CumulativeResponse([464, 2068, 7586, 10, 11], false).ToWire(), output).IsFinal);
        var last = decoder.Decode(CumulativeResponse([464, 2068, 7586, 10, 11, 12], false).ToWire(), output);
        Assert.Equal([10, 11, 12], tokens);
        Assert.False(last.IsFinal);
        var empty = new ModelInferResponse { Id = "req-1" };
        empty.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = true };
        Assert.True(decoder.Decode(empty.ToWire(), output).IsFinal);
        Assert.Equal([10, 11, 12], tokens);
    }

    [Fact]
    public void Decode_EndId_EndsTextWithoutForwardingIt()
    {
        var decoder = Contract.CreateDecoder(Input());
        var output = new TritonOutput();
        var tokens = output.Tokens;
        var step = decoder.Decode(CumulativeResponse([464, 2068, 7586, 10, 50256], false).ToWire(), output);
        Assert.Equal([10], tokens);
        Assert.True(step.EndOfText);
        Assert.False(step.IsFinal); // with the final flag protocol the end waits for triton_final_response
    }

    [Fact]
    public void Decode_LegacyTritonWithoutFinalFlag_EndsAtEndIdOrLength()
    {
        var byEndId = Contract.CreateDecoder(Input());
        var output = new TritonOutput();
        var tokens = output.Tokens;
        Assert.False(byEndId.Decode(CumulativeResponse([464, 2068, 7586, 10], null).ToWire(), output).IsFinal);
        Assert.True(byEndId.Decode(CumulativeResponse([464, 2068, 7586, 10, 50256], null).ToWire(), output).IsFinal);

        var byLength = Contract.CreateDecoder(Input(maxTokens: 2));
        tokens.Clear();
        Assert.False(byLength.Decode(CumulativeResponse([464, 2068, 7586, 10], null).ToWire(), output).IsFinal);
        Assert.True(byLength.Decode(CumulativeResponse([464, 2068, 7586, 10, 11], null).ToWire(), output).IsFinal);
        Assert.Equal([10, 11], tokens);
    }
}
