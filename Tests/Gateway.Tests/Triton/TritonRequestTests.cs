using Gateway.Grpc.Tensors;
using Gateway.Triton.Wire;
using Google.Protobuf;
using Triton.Inference;

namespace Gateway.Tests.Triton;

/// <summary>The hand-written request bytes against Google.Protobuf's for the same message.</summary>
public sealed class TritonRequestTests
{
    [Theory]
    [InlineData(3, "Hello")]
    [InlineData(300, "Grüße, 世界 — a prompt long enough that every length takes two varint bytes. " + "0123456789")]
    public void WriteTo_IsByteForByteWhatGoogleProtobufWrites(int promptTokens, string text)
    {
        var ids = Enumerable.Range(0, promptTokens).Select(i => 50_000 + i).ToArray();
        var request = new TritonRequest("fastertransformer", "", "req-ü-1");
        request.AddParameter("triton_enable_empty_final_response", true);
        request.AddParameter("priority", 2L);
        request.AddUInt32Row("input_ids", ids);
        request.AddUInt32("request_output_len", [1, 1], 16);
        request.AddFp32("temperature", [1, 1], 0.25f);
        request.AddUInt64("random_seed", [1, 1], ulong.MaxValue);
        request.AddInt32s("stop_words_list", [1, 2, 2], [11, 22, 2, -1]);
        request.AddBool("stream", [1], true);
        request.AddString("text_input", [1], text);
        request.AddStrings("stop_words", [1, 2], ["\n\n", "</s>"]);
        request.AddOutput("output_ids");
        request.AddOutput("sequence_length");

        var expected = new ModelInferRequest { ModelName = "fastertransformer", Id = "req-ü-1" };
        expected.Parameters["triton_enable_empty_final_response"] = new InferParameter { BoolParam = true };
        expected.Parameters["priority"] = new InferParameter { Int64Param = 2 };
        void Add(string name, string datatype, long[] shape, ByteString contents)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(shape);
            expected.Inputs.Add(tensor);
            expected.RawInputContents.Add(contents);
        }
        Add("input_ids", TensorDataTypes.UInt32, [1, promptTokens], TensorCodec.EncodeUInt32(ids.Select(i => (uint)i).ToArray()));
        Add("request_output_len", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([16u]));
        Add("temperature", TensorDataTypes.Fp32, [1, 1], TensorCodec.EncodeFloat32([0.25f]));
        Add("random_seed", TensorDataTypes.UInt64, [1, 1], TensorCodec.EncodeUInt64([ulong.MaxValue]));
        Add("stop_words_list", TensorDataTypes.Int32, [1, 2, 2], TensorCodec.EncodeInt32([11, 22, 2, -1]));
        Add("stream", TensorDataTypes.Bool, [1], TensorCodec.EncodeBool([true]));
        Add("text_input", TensorDataTypes.Bytes, [1], TensorCodec.EncodeStrings(text));
        Add("stop_words", TensorDataTypes.Bytes, [1, 2], TensorCodec.EncodeStrings("\n\n", "</s>"));
        expected.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "output_ids" });
        expected.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "sequence_length" });

        var bytes = new byte[request.CalculateSize()];
        request.WriteTo(bytes);
        Assert.Equal(expected.CalculateSize(), bytes.Length);
        Assert.Equal(expected.ToByteArray(), bytes);
        Assert.Equal(expected, request.ToMessage());
    }

    [Fact]
    public void AZeroInt64Parameter_IsStillSent_AndTheOrderOfCallsIsEnforced()
    {
        var request = new TritonRequest("m", "1", "r");
        request.AddParameter("priority", 0L);
        request.AddInt32("a", [1, 1], 1);

        Assert.Throws<InvalidOperationException>(() => request.AddParameter("late", true));
        request.AddOutput("out");
        Assert.Throws<InvalidOperationException>(() => request.AddInt32("b", [1, 1], 2));

        var message = request.ToMessage();
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.Int64Param, message.Parameters["priority"].ParameterChoiceCase);
        Assert.Equal(0, message.Parameters["priority"].Int64Param);
        Assert.Equal("1", message.ModelVersion);
        Assert.Single(message.Inputs);
        Assert.Equal("out", Assert.Single(message.Outputs).Name);
    }

    [Fact]
    public void ManyInputs_GrowTheBuffers_AndKeepEveryInputsBytes()
    {
        var request = new TritonRequest("m", "", "r", rawCapacity: 4); // both buffers grow many times
        for (var i = 0; i < 40; i++)
        {
            request.AddInt32("t" + i, [1, 1], i * 1000);
        }

        var message = request.ToMessage();
        Assert.Equal(40, message.Inputs.Count);
        Assert.Equal(40, message.RawInputContents.Count);
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal("t" + i, message.Inputs[i].Name);
            Assert.Equal([i * 1000], TensorCodec.DecodeInt32(message.RawInputContents[i].Span));
        }
    }
}
