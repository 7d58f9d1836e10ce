using Gateway.Grpc.Tensors;
using Gateway.Triton.Contracts;
using Triton.Inference;

namespace Gateway.Tests.Triton;

/// <summary>The tensorrtllm contract's tensors and decoding (TensorRT-LLM's ensemble wire names).</summary>
public sealed class TensorRtLlmContractTests
{
    private static TritonGenerationInput Input(SamplingParameters sampling, params string[] stops) =>
        new("req-1", "ensemble", "", [1, 2, 3], 16, sampling, [], 50256, 50256, 0) { Prompt = "Hello", StopStrings = stops };

    private static Dictionary<string, (string Type, long[] Shape, byte[] Raw)> Tensors(ModelInferRequest request) =>
        request.Inputs.Select((input, i) => (input, i)).ToDictionary(
            static p => p.input.Name, p => (p.input.Datatype, p.input.Shape.ToArray(), request.RawInputContents[p.i].ToByteArray()));

    [Fact]
    public void CreateRequest_MapsOpenAiParametersOntoTheEnsemblesInputs()
    {
        var request = new TensorRtLlmContract().CreateRequest(Input(new SamplingParameters
        {
            Temperature = 0.7, TopP = 0.9, TopK = 40, Seed = -1, PresencePenalty = 0.5, FrequencyPenalty = -0.25,
        }, "\nUser:", "###")).ToMessage();
        var tensors = Tensors(request);

        Assert.Equal("BYTES", tensors["text_input"].Type);
        Assert.Equal([1L, 1L], tensors["text_input"].Shape);
        Assert.Equal(["Hello"], TensorCodec.DecodeStrings(tensors["text_input"].Raw));
        Assert.Equal(("INT32", 16), (tensors["max_tokens"].Type, TensorCodec.DecodeInt32(tensors["max_tokens"].Raw)[0]));
        Assert.True(TensorCodec.DecodeBool(tensors["stream"].Raw)[0]);
        Assert.True(TensorCodec.DecodeBool(tensors["exclude_input_in_output"].Raw)[0]);
        Assert.Equal(0.7f, TensorCodec.DecodeFloat32(tensors["temperature"].Raw)[0]);
        Assert.Equal(0.9f, TensorCodec.DecodeFloat32(tensors["top_p"].Raw)[0]);
        Assert.Equal(40, TensorCodec.DecodeInt32(tensors["top_k"].Raw)[0]);
        Assert.Equal(ulong.MaxValue, TensorCodec.DecodeUInt64(tensors["seed"].Raw)[0]);
        Assert.Equal(0.5f, TensorCodec.DecodeFloat32(tensors["presence_penalty"].Raw)[0]);
        Assert.Equal(-0.25f, TensorCodec.DecodeFloat32(tensors["frequency_penalty"].Raw)[0]);
        Assert.Equal([1L, 2L], tensors["stop_words"].Shape);
        Assert.Equal(["\nUser:", "###"], TensorCodec.DecodeStrings(tensors["stop_words"].Raw));
        Assert.Equal(50256, TensorCodec.DecodeInt32(tensors["end_id"].Raw)[0]);
        Assert.True(request.Parameters["triton_enable_empty_final_response"].BoolParam);
    }

    [Fact]
    public void CreateRequest_TemperatureZeroIsGreedy_AndSamplingAlwaysSendsTopP()
    {
        var greedy = Tensors(new TensorRtLlmContract().CreateRequest(Input(new SamplingParameters { Temperature = 0 })).ToMessage());
        var sampled = Tensors(new TensorRtLlmContract().CreateRequest(Input(new SamplingParameters { Temperature = 1.5 })).ToMessage());

        Assert.Equal(1, TensorCodec.DecodeInt32(greedy["top_k"].Raw)[0]);
        Assert.Equal(1f, TensorCodec.DecodeFloat32(greedy["temperature"].Raw)[0]);
        Assert.Equal(1f, TensorCodec.DecodeFloat32(sampled["top_p"].Raw)[0]);
        Assert.False(sampled.ContainsKey("top_k"));
        Assert.False(sampled.ContainsKey("stop_words"));
        Assert.False(sampled.ContainsKey("presence_penalty"));
    }

    [Fact]
    public void Decode_TextDeltaAndOneTokenPerLogProbability_UntilTheFinalFlag()
    {
        var decoder = new TensorRtLlmContract().CreateDecoder(Input(new SamplingParameters()));
        Assert.True(decoder.StreamsText);
        var output = new TritonOutput();
        var text = output.Text;
        ModelInferResponse Response(string delta, int tokens, bool final)
        {
            var response = new ModelInferResponse { Id = "req-1" };
            response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "text_output", Datatype = "BYTES", Shape = { 1, 1 } });
            response.RawOutputContents.Add(TensorCodec.EncodeStrings(delta));
            response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "output_log_probs", Datatype = "FP32", Shape = { 1, 1, tokens } });
            response.RawOutputContents.Add(TensorCodec.EncodeFloat32(new float[tokens]));
            response.Parameters["triton_final_response"] = new InferParameter { BoolParam = final };
            return response;
        }

        var first = decoder.Decode(Response(" sunny", 1, false).ToWire(), output);
        var second = decoder.Decode(Response(" and", 2, false).ToWire(), output);
        var last = decoder.Decode(new ModelInferResponse { Parameters = { ["triton_final_response"] = new InferParameter { BoolParam = true } } }.ToWire(), output);

        Assert.Equal(" sunny and", text.ToString());
        Assert.Equal((false, 1, false, 2, true, 0), (first.IsFinal, first.OutputTokens, second.IsFinal, second.OutputTokens, last.IsFinal, last.OutputTokens));
        Assert.Null(last.PromptTokens);
    }

    [Fact]
    public void CreateRequest_Guide_IsTheGuidedDecodingInputs()
    {
        const string schema = """{"type":"object"}""";
        var tensors = Tensors(new TensorRtLlmContract().CreateRequest(Input(new SamplingParameters()) with { Guide = new Gateway.Structured.OutputGuide(Gateway.Structured.GuideKind.JsonSchema, schema) }).ToMessage());
        Assert.Equal("BYTES", tensors["guided_decoding_guide_type"].Type);
        Assert.Equal([1L, 1L], tensors["guided_decoding_guide_type"].Shape);
        Assert.Equal("json_schema", Assert.Single(TensorCodec.DecodeStrings(tensors["guided_decoding_guide_type"].Raw)));
        Assert.Equal(schema, Assert.Single(TensorCodec.DecodeStrings(tensors["guided_decoding_guide"].Raw)));
        Assert.DoesNotContain("guided_decoding_guide", Tensors(new TensorRtLlmContract().CreateRequest(Input(new SamplingParameters())).ToMessage()).Keys);
    }
}
