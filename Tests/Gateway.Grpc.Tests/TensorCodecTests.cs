using Gateway.Grpc.Tensors;
using Triton.Inference;

namespace Gateway.Grpc.Tests;

public sealed class TensorCodecTests
{
    [Fact]
    public void EncodeUInt32_ReferenceExample_MatchesLittleEndianBytes()
    {
        // triton-contract.md §1.5: input_ids [1,3] = [50256, 464, 3290].
        var raw = TensorCodec.EncodeUInt32([50256u, 464u, 3290u]);

        Assert.Equal(
            new byte[] { 0x50, 0xc4, 0x00, 0x00, 0xd0, 0x01, 0x00, 0x00, 0xda, 0x0c, 0x00, 0x00 },
            raw.ToByteArray());
    }

    [Fact]
    public void DecodeUInt32_ReferenceExample_RoundTrips()
    {
        byte[] raw = [0x50, 0xc4, 0x00, 0x00, 0xd0, 0x01, 0x00, 0x00, 0xda, 0x0c, 0x00, 0x00];

        Assert.Equal([50256u, 464u, 3290u], TensorCodec.DecodeUInt32(raw));
        Assert.Equal(3290u, TensorCodec.ReadUInt32(raw, 2));
    }

    [Fact]
    public void EncodeStrings_ReferenceExample_PrefixesFourByteLittleEndianLength()
    {
        // triton-contract.md §1.5: "hi" is sent as 02 00 00 00 68 69.
        var raw = TensorCodec.EncodeStrings("hi");

        Assert.Equal(new byte[] { 0x02, 0x00, 0x00, 0x00, 0x68, 0x69 }, raw.ToByteArray());
    }

    [Fact]
    public void DecodeStrings_SeveralElements_IncludingEmptyAndMultibyte()
    {
        var raw = TensorCodec.EncodeStrings("hi", "", "héllo 👋");

        Assert.Equal(["hi", "", "héllo 👋"], TensorCodec.DecodeStrings(raw.Span));
    }

    [Fact]
    public void DecodeBytes_TruncatedLengthPrefix_Throws()
    {
        byte[] raw = [0x02, 0x00, 0x00];

        var error = Assert.Throws<TensorFormatException>(() => TensorCodec.DecodeBytes(raw));
        Assert.Contains("length prefix", error.Message);
    }

    [Fact]
    public void DecodeBytes_LengthBeyondData_Throws()
    {
        byte[] raw = [0x05, 0x00, 0x00, 0x00, 0x68, 0x69];

        Assert.Throws<TensorFormatException>(() => TensorCodec.DecodeBytes(raw));
    }

    [Fact]
    public void Bool_EncodesOneBytePerElement()
    {
        var raw = TensorCodec.EncodeBool([true, false, true]);

        Assert.Equal(new byte[] { 1, 0, 1 }, raw.ToByteArray());
        Assert.Equal([true, false, true], TensorCodec.DecodeBool(raw.Span));
    }

    [Fact]
    public void Int32_StopWordsExample_RoundTripsNegativeValues()
    {
        // triton-contract.md §3.5: [[11, 22, 33], [2, 3, -1]].
        int[] words = [11, 22, 33, 2, 3, -1];
        var raw = TensorCodec.EncodeInt32(words);

        Assert.Equal(24, raw.Length);
        Assert.Equal(new byte[] { 0xff, 0xff, 0xff, 0xff }, raw.Span[20..].ToArray());
        Assert.Equal(words, TensorCodec.DecodeInt32(raw.Span));
    }

    [Fact]
    public void UInt64_AndFloat32_RoundTripLittleEndian()
    {
        var seed = TensorCodec.EncodeUInt64([0x0102030405060708UL]);
        Assert.Equal(new byte[] { 8, 7, 6, 5, 4, 3, 2, 1 }, seed.ToByteArray());
        Assert.Equal([0x0102030405060708UL], TensorCodec.DecodeUInt64(seed.Span));

        var temperature = TensorCodec.EncodeFloat32([1.0f, 0.5f]);
        Assert.Equal(new byte[] { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x3f }, temperature.ToByteArray());
        Assert.Equal([1.0f, 0.5f], TensorCodec.DecodeFloat32(temperature.Span));
    }

    [Fact]
    public void DecodeFixed_SizeNotMultipleOfElement_Throws()
    {
        Assert.Throws<TensorFormatException>(() => TensorCodec.DecodeUInt32(new byte[5]));
    }

    [Theory]
    [InlineData(DataType.TypeString, "BYTES", -1)]
    [InlineData(DataType.TypeUint32, "UINT32", 4)]
    [InlineData(DataType.TypeBool, "BOOL", 1)]
    [InlineData(DataType.TypeFp16, "FP16", 2)]
    [InlineData(DataType.TypeUint64, "UINT64", 8)]
    public void DataTypes_MapBetweenConfigEnumAndProtocolName(DataType type, string name, int size)
    {
        Assert.Equal(name, type.ToProtocolName());
        Assert.True(TensorDataTypes.TryParseProtocolName(name, out var parsed));
        Assert.Equal(type, parsed);
        Assert.Equal(size, type.ElementSize());
    }

    [Fact]
    public void ElementCount_ScalarShapeIsOne()
    {
        Assert.Equal(1, TensorCodec.ElementCount([]));
        Assert.Equal(24, TensorCodec.ElementCount([2, 3, 4]));
    }
}
