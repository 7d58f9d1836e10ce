using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;
using Gateway.Triton.Contracts;
using Google.Protobuf;
using Triton.Inference;

namespace Gateway.Tests.Triton;

public sealed class VllmContractTests
{
    private static readonly VllmContract Contract = new();

    private static TritonGenerationInput Input(SamplingParameters? sampling = null, IReadOnlyList<string>? stops = null, int maxTokens = 8, int priority = 0) =>
        new("req-1", "tiny", "1", [1, 2, 3], maxTokens, sampling ?? new SamplingParameters(), [], 50256, 50256, priority)
        {
            Prompt = "<|im_start|>user\nHi ü<|im_end|>\n",
            StopStrings = stops ?? [],
        };

    private static (ModelInferRequest.Types.InferInputTensor Tensor, ByteString Raw) Tensor(ModelInferRequest request, string name)
    {
        var index = request.Inputs.ToList().FindIndex(t => t.Name == name);
        Assert.True(index >= 0, $"input {name} missing");
        return (request.Inputs[index], request.RawInputContents[index]);
    }

    private static JsonElement Sampling(ModelInferRequest request) =>
        JsonDocument.Parse(Assert.Single(TensorCodec.DecodeStrings(Tensor(request, "sampling_parameters").Raw.Span))).RootElement;

    [Fact]
    public void CreateRequest_HasTheVllmInputsWithoutBatchDimension()
    {
        var request = Contract.CreateRequest(Input()).ToMessage();

        Assert.Equal("tiny", request.ModelName);
        Assert.Equal("1", request.ModelVersion);
        Assert.Equal("req-1", request.Id);
        Assert.Equal(
            ["text_input", "stream", "sampling_parameters", "exclude_input_in_output", "return_finish_reason", "return_num_input_tokens", "return_num_output_tokens"],
            request.Inputs.Select(static t => t.Name));
        Assert.Equal(request.Inputs.Count, request.RawInputContents.Count);
        foreach (var tensor in request.Inputs)
        {
            Assert.Equal([1L], tensor.Shape);
            Assert.Equal(tensor.Name is "text_input" or "sampling_parameters" ? "BYTES" : "BOOL", tensor.Datatype);
        }
        Assert.Equal(["<|im_start|>user\nHi ü<|im_end|>\n"], TensorCodec.DecodeStrings(Tensor(request, "text_input").Raw.Span));
        foreach (var flag in (string[])["stream", "exclude_input_in_output", "return_finish_reason", "return_num_input_tokens", "return_num_output_tokens"])
        {
            Assert.Equal([true], TensorCodec.DecodeBool(Tensor(request, flag).Raw.Span));
        }
        Assert.Equal(["text_output", "finish_reason", "num_input_tokens", "num_output_tokens"], request.Outputs.Select(static o => o.Name));
        Assert.True(request.Parameters["triton_enable_empty_final_response"].BoolParam);
        Assert.False(request.Parameters.ContainsKey("priority"));
    }

    [Fact]
    public void CreateRequest_Defaults_SendOnlyMaxTokens()
    {
        var json = Sampling(Contract.CreateRequest(Input(maxTokens: 12)).ToMessage());

        Assert.Equal("""{"max_tokens":12}""", json.GetRawText());
    }

    [Fact]
    public void CreateRequest_Sampling_MapsEveryOpenAiParameterToVllmNames()
    {
        var sampling = new SamplingParameters { Temperature = 0.5, TopP = 0.9, TopK = 40, Seed = -3, PresencePenalty = 0.25, FrequencyPenalty = -1 };
        var json = Sampling(Contract.CreateRequest(Input(sampling, ["\n\n", "</s>"], maxTokens: 7)).ToMessage());

        Assert.Equal(7, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.5, json.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, json.GetProperty("top_p").GetDouble());
        Assert.Equal(40, json.GetProperty("top_k").GetInt32());
        Assert.Equal(-3, json.GetProperty("seed").GetInt64());
        Assert.Equal(0.25, json.GetProperty("presence_penalty").GetDouble());
        Assert.Equal(-1, json.GetProperty("frequency_penalty").GetDouble());
        Assert.Equal(["\n\n", "</s>"], json.GetProperty("stop").EnumerateArray().Select(static e => e.GetString()));
    }

    [Fact]
    public void CreateRequest_TemperatureZero_IsPassedAsVllmGreedy_TopKZero_IsVllmsOff()
    {
        var json = Sampling(Contract.CreateRequest(Input(new SamplingParameters { Temperature = 0, TopK = 0 })).ToMessage());

        Assert.Equal(0, json.GetProperty("temperature").GetDouble());
        Assert.Equal(-1, json.GetProperty("top_k").GetInt32());
    }

    [Fact]
    public void CreateRequest_Priority_IsARequestParameter()
    {
        Assert.Equal(2, Contract.CreateRequest(Input(priority: 2)).ToMessage().Parameters["priority"].Int64Param);
    }

    private static ModelInferResponse Response(string text, string finish, uint inputTokens, uint outputTokens, bool? final)
    {
        var response = new ModelInferResponse { ModelName = "tiny", Id = "req-1" };
        void Add(string name, string datatype, ByteString raw)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(1);
            response.Outputs.Add(tensor);
            response.RawOutputContents.Add(raw);
        }
        Add("text_output", "BYTES", TensorCodec.EncodeStrings(text));
        Add("finish_reason", "BYTES", TensorCodec.EncodeStrings(finish));
        Add("num_input_tokens", "UINT32", TensorCodec.EncodeUInt32([inputTokens]));
        Add("num_output_tokens", "UINT32", TensorCodec.EncodeUInt32([outputTokens]));
        if (final is { } f)
        {
            response.Parameters["triton_final_response"] = new InferParameter { BoolParam = f };
        }
        return response;
    }

    [Fact]
    public void Decoder_AppendsDeltasAndReportsTheBackendsCountsAndFinishReason()
    {
        var decoder = Contract.CreateDecoder(Input());
        Assert.True(decoder.StreamsText);
        var output = new TritonOutput();
        var text = output.Text;

        var first = decoder.Decode(Response(" d", "None", 4, 1, final: false).ToWire(), output);
        var last = decoder.Decode(Response(" e", "length", 4, 1, final: true).ToWire(), output);

        Assert.Equal(" d e", text.ToString());
        Assert.Equal(new TritonStep(false, OutputTokens: 1, PromptTokens: 4), first);
        Assert.Equal(new TritonStep(true, OutputTokens: 1, PromptTokens: 4, FinishReason: FinishReason.Length), last);
    }

    [Fact]
    public void Decoder_WithoutFinalFlag_EndsAtAFinishReason()
    {
        var decoder = Contract.CreateDecoder(Input());
        var output = new TritonOutput();

        Assert.False(decoder.Decode(Response(" d", "None", 4, 1, final: null).ToWire(), output).IsFinal);
        var last = decoder.Decode(Response("", "stop", 4, 1, final: null).ToWire(), output);

        Assert.True(last.IsFinal);
        Assert.Equal(FinishReason.Stop, last.FinishReason);
    }

    [Fact]
    public void Decoder_FewerRawContentsThanOutputs_IsAFormatError()
    {
        var decoder = Contract.CreateDecoder(Input());
        var response = Response(" d", "None", 4, 1, final: false);
        response.RawOutputContents.RemoveAt(3);

        Assert.ThrowsAny<FormatException>(() => decoder.Decode(response.ToWire(), new TritonOutput()));
    }

    [Fact]
    public void CreateRequest_Guide_IsTheStructuredOutputsKeyAsAJsonString()
    {
        const string schema = """{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}""";
        var request = Contract.CreateRequest(Input() with { Guide = new Structured.OutputGuide(Structured.GuideKind.JsonSchema, schema) }).ToMessage();
        var value = Sampling(request).GetProperty("structured_outputs");
        // vllm_backend json.loads the value into StructuredOutputsParams: a string, not an object.
        Assert.Equal(JsonValueKind.String, value.ValueKind);
        using var parameters = JsonDocument.Parse(value.GetString()!);
        Assert.Equal(schema, parameters.RootElement.GetProperty("json").GetRawText());
        Assert.True(parameters.RootElement.GetProperty("disable_any_whitespace").GetBoolean());

        var any = Contract.CreateRequest(Input() with { Guide = Structured.OutputGuide.AnyJsonObject }).ToMessage();
        using var anyParameters = JsonDocument.Parse(Sampling(any).GetProperty("structured_outputs").GetString()!);
        Assert.True(anyParameters.RootElement.GetProperty("json_object").GetBoolean());
        Assert.False(Sampling(Contract.CreateRequest(Input()).ToMessage()).TryGetProperty("structured_outputs", out _));
    }
}
