using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using Triton.Inference;
using TritonEmulator.Protocols.Grpc;

namespace TritonEmulator.Tests.Protocols;

/// <summary>The hand-written response encoding writes exactly the bytes the generated serializer writes.</summary>
public sealed class InferResponseWireTests
{
    public static TheoryData<string> Cases => [.. Responses().Keys];

    [Theory]
    [MemberData(nameof(Cases))]
    public void StreamResponse_SameBytesAsGenerated(string name)
    {
        var response = Responses()[name];
        var stream = new ModelStreamInferResponse { InferResponse = response };
        Assert.Equal(stream.ToByteArray(), Serialize(InferResponseWire.StreamMarshaller, stream));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void InferResponse_SameBytesAsGenerated(string name)
    {
        var response = Responses()[name];
        Assert.Equal(response.ToByteArray(), Serialize(InferResponseWire.InferMarshaller, response));
    }

    [Fact]
    public void StreamError_SameBytesAsGenerated()
    {
        var withId = new ModelStreamInferResponse { ErrorMessage = "[request id: 7] unexpected shape", InferResponse = new ModelInferResponse { Id = "7", ModelName = "m" } };
        var alone = new ModelStreamInferResponse { ErrorMessage = "in-flight batching: überfüllt" };
        var empty = new ModelStreamInferResponse();
        foreach (var message in new[] { withId, alone, empty })
        {
            Assert.Equal(message.ToByteArray(), Serialize(InferResponseWire.StreamMarshaller, message));
        }
    }

    private static Dictionary<string, ModelInferResponse> Responses()
    {
        var ids = new byte[4 * 300];
        Random.Shared.NextBytes(ids);
        var fasterTransformer = new ModelInferResponse { ModelName = "fastertransformer", ModelVersion = "1", Id = "42" };
        fasterTransformer.Parameters["triton_final_response"] = new InferParameter { BoolParam = false };
        fasterTransformer.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = "UINT32", Shape = { 1, 1, 300 } });
        fasterTransformer.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = "UINT32", Shape = { 1, 1 } });
        fasterTransformer.RawOutputContents.Add(ByteString.CopyFrom(ids));
        fasterTransformer.RawOutputContents.Add(ByteString.CopyFrom(44, 1, 0, 0));

        var parameters = new ModelInferResponse { ModelName = "módel", Id = "ünïcode id" };
        parameters.Parameters["b"] = new InferParameter { BoolParam = false };
        parameters.Parameters["i"] = new InferParameter { Int64Param = -5 };
        parameters.Parameters["z"] = new InferParameter { Int64Param = 0 };
        parameters.Parameters["s"] = new InferParameter { StringParam = "naïve" };
        parameters.Parameters["e"] = new InferParameter { StringParam = "" };
        parameters.Parameters["d"] = new InferParameter { DoubleParam = 1.5 };
        parameters.Parameters["u"] = new InferParameter { Uint64Param = ulong.MaxValue };
        parameters.Parameters["unset"] = new InferParameter();
        parameters.Parameters[""] = new InferParameter { BoolParam = true };
        var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = "text_output", Datatype = "BYTES", Shape = { -1, 0, 1L << 40 } };
        tensor.Parameters["binary_data_size"] = new InferParameter { Int64Param = 1 << 20 };
        parameters.Outputs.Add(tensor);
        parameters.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor());
        parameters.RawOutputContents.Add(ByteString.Empty);
        parameters.RawOutputContents.Add(ByteString.CopyFrom(new byte[200]));

        var contents = new ModelInferResponse { ModelName = "m" };
        contents.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "x", Datatype = "INT32", Shape = { 2 }, Contents = new InferTensorContents { IntContents = { 1, -2 } } });

        return new()
        {
            ["fastertransformer"] = fasterTransformer,
            ["parameters"] = parameters,
            ["contents"] = contents,
            ["empty"] = new ModelInferResponse(),
        };
    }

    private static byte[] Serialize<T>(Marshaller<T> marshaller, T message)
    {
        var context = new BufferContext();
        marshaller.ContextualSerializer(message, context);
        Assert.True(context.Completed);
        Assert.Equal(context.PayloadLength, context.Buffer.WrittenCount);
        return context.Buffer.WrittenSpan.ToArray();
    }

    private sealed class BufferContext : SerializationContext
    {
        public ArrayBufferWriter<byte> Buffer { get; } = new();

        public int PayloadLength { get; private set; } = -1;

        public bool Completed { get; private set; }

        public override void SetPayloadLength(int payloadLength) => PayloadLength = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter() => Buffer;

        public override void Complete() => Completed = true;

        public override void Complete(byte[] payload)
        {
            Buffer.Write(payload);
            Completed = true;
        }
    }
}
