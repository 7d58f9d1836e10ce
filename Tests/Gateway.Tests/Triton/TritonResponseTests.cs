using Gateway.Grpc.Tensors;
using Gateway.Triton.Contracts;
using Gateway.Triton.Wire;
using Google.Protobuf;
using Triton.Inference;

namespace Gateway.Tests.Triton;

/// <summary>The gateway's in-place reader of ModelStreamInferResponse agrees with Google.Protobuf and refuses malformed bytes.</summary>
public sealed class TritonResponseTests
{
    [Fact]
    public void RandomResponses_ReadInPlace_AgreeWithTheGeneratedParser()
    {
        var random = new Random(7);
        for (var n = 0; n < 300; n++)
        {
            var response = new ModelInferResponse { ModelName = "m" + n, ModelVersion = "1", Id = "req-" + n };
            var outputs = random.Next(0, 6);
            for (var i = 0; i < outputs; i++)
            {
                var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = $"out_{i}_{random.Next(1000)}", Datatype = "UINT32" };
                var rank = random.Next(0, 4);
                for (var d = 0; d < rank; d++)
                {
                    tensor.Shape.Add(random.Next(0, 5000));
                }
                if (random.Next(3) == 0)
                {
                    tensor.Parameters["p"] = new InferParameter { StringParam = "x" }; // a field the reader skips
                }
                response.Outputs.Add(tensor);
                var bytes = new byte[random.Next(0, 300)];
                random.NextBytes(bytes);
                response.RawOutputContents.Add(ByteString.CopyFrom(bytes));
            }
            bool? final = random.Next(3) switch { 0 => null, 1 => false, _ => true };
            if (final is { } f)
            {
                response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = f };
            }
            if (random.Next(2) == 0)
            {
                response.Parameters["sequence_id"] = new InferParameter { Int64Param = random.Next() };
                response.Parameters["triton_final_response_not"] = new InferParameter { BoolParam = true };
            }
            var message = new ModelStreamInferResponse { InferResponse = response };
            if (random.Next(10) == 0)
            {
                message.ErrorMessage = "boom " + n;
            }

            var wire = TritonResponse.Read(message.ToByteArray());
            try
            {
                Assert.Equal(message.ErrorMessage.Length == 0 ? null : message.ErrorMessage, wire.ErrorMessage);
                Assert.Equal(final, wire.FinalFlag);
                Assert.Equal(outputs, wire.OutputCount);
                for (var i = 0; i < outputs; i++)
                {
                    var expected = response.Outputs[i];
                    Assert.True(wire.NameIs(i, System.Text.Encoding.UTF8.GetBytes(expected.Name)));
                    Assert.Equal(i, wire.IndexOf(System.Text.Encoding.UTF8.GetBytes(expected.Name)));
                    Assert.Equal(expected.Shape.Count > 0 ? expected.Shape[^1] : -1, wire.LastDimension(i));
                    Assert.Equal(response.RawOutputContents[i].ToByteArray(), wire.Raw(i).ToArray());
                }
            }
            finally
            {
                wire.Return();
            }
        }
    }

    [Fact]
    public void UnpackedShape_IsReadLikeAPackedOne()
    {
        // shape written unpacked (one varint per dim, as proto2-era writers may): [1, 1, 9]
        var output = new List<byte> { 0x0A, 0x01, (byte)'x', 0x18, 0x01, 0x18, 0x01, 0x18, 0x09 };
        var infer = new List<byte> { 0x2A, (byte)output.Count };
        infer.AddRange(output);
        var message = new List<byte> { 0x12, (byte)infer.Count };
        message.AddRange(infer);

        var wire = TritonResponse.Read([.. message]);
        Assert.Equal(9, wire.LastDimension(0));
        Assert.True(wire.HasInferResponse);
        wire.Return();
    }

    [Theory]
    [InlineData(new byte[] { 0x12, 0x05, 0x2A, 0x03, 0x0A })]             // ends inside a length-delimited field
    [InlineData(new byte[] { 0x12, 0x02, 0x20, 0xFF })]                   // ends inside a varint
    [InlineData(new byte[] { 0x12, 0x02, 0x2B, 0x00 })]                   // wire type 3 (groups) is not in this protocol
    [InlineData(new byte[] { 0x00 })]                                     // field number 0
    public void MalformedBytes_AreAFormatError(byte[] bytes)
    {
        Assert.ThrowsAny<FormatException>(() => TritonResponse.Read(bytes));
    }

    [Fact]
    public void MoreOutputsThanRawContents_IsAFormatErrorWhenRead()
    {
        var response = new ModelInferResponse();
        response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids" });
        var wire = response.ToWire();
        Assert.ThrowsAny<FormatException>(() => wire.Raw(0).Length);
        wire.Return();
    }

    [Fact]
    public void PooledInstances_AreReusedAndRereadCleanly()
    {
        var big = new ModelInferResponse();
        big.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "text_output", Shape = { 1, 1 } });
        big.RawOutputContents.Add(TensorCodec.EncodeStrings("a long delta"));
        big.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = true };
        var first = big.ToWire();
        first.Return();

        var second = new ModelInferResponse().ToWire(); // no outputs, no flag: nothing left over from the first
        Assert.Equal(0, second.OutputCount);
        Assert.Null(second.FinalFlag);
        Assert.Null(second.ErrorMessage);
        second.Return();
    }

    [Fact]
    public void Utf8Strings_SplitAcrossTheDecodeChunk_AreWholeCharacters()
    {
        var text = string.Concat(Enumerable.Repeat("héllo 🦊 wörld ", 40)); // > 128 bytes: several chunks
        var output = new System.Text.StringBuilder();
        Assert.True(RawTensor.AppendUtf8Strings(TensorCodec.EncodeStrings(text, "", "✓").Span, output));
        Assert.Equal(text + "✓", output.ToString());
    }
}
