using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Grpc.Core;
using Triton.Inference;
using TritonEmulator.Models;

namespace TritonEmulator.Protocols.Grpc;

/// <summary>
/// Hand-written protobuf encoding of <see cref="ModelInferResponse"/> and
/// <see cref="ModelStreamInferResponse"/>, the messages the engine writes once per generated token.
/// The generated serializer walks the tree once for the size and again at every nesting level
/// (each nested message's length is computed anew), encoding every string's UTF-8 length each time.
/// This one measures each tensor once, asks the transport for one span of the exact size and writes
/// into it: the same bytes (field order and proto3 defaults as the generated code writes them;
/// <c>InferResponseWireTests</c> compares), with the generated path kept for what it does not
/// handle (tensor <c>contents</c>).
/// </summary>
internal static class InferResponseWire
{
    public static readonly Marshaller<ModelStreamInferResponse> StreamMarshaller = new(SerializeStream, DeserializeStream);

    public static readonly Marshaller<ModelInferResponse> InferMarshaller = new(SerializeInfer, DeserializeInfer);

    private const int MaxOutputs = 32;

    private static ModelStreamInferResponse DeserializeStream(DeserializationContext context) =>
        ModelStreamInferResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence());

    private static ModelInferResponse DeserializeInfer(DeserializationContext context) =>
        ModelInferResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence());

    private static void SerializeStream(ModelStreamInferResponse message, SerializationContext context)
    {
        var infer = message.InferResponse;
        if (infer is not null && !Handles(infer))
        {
            Generated(message, context);
            return;
        }
        Span<int> sizes = stackalloc int[1 + (infer?.Outputs.Count ?? 0)];
        var inferSize = infer is null ? 0 : Measure(infer, sizes[1..]);
        var size = StringField(message.ErrorMessage) + (infer is null ? 0 : 1 + VarintSize((uint)inferSize) + inferSize);
        context.SetPayloadLength(size);
        var writer = context.GetBufferWriter();
        var span = writer.GetSpan(size);
        var at = 0;
        WriteString(span, ref at, 0x0A, message.ErrorMessage);
        if (infer is not null)
        {
            span[at++] = 0x12;
            WriteVarint(span, ref at, (uint)inferSize);
            WriteInfer(span, ref at, infer, sizes[1..]);
        }
        writer.Advance(size);
        context.Complete();
    }

    private static void SerializeInfer(ModelInferResponse message, SerializationContext context)
    {
        if (!Handles(message))
        {
            Generated(message, context);
            return;
        }
        Span<int> sizes = stackalloc int[message.Outputs.Count];
        var size = Measure(message, sizes);
        context.SetPayloadLength(size);
        var writer = context.GetBufferWriter();
        var span = writer.GetSpan(size);
        var at = 0;
        WriteInfer(span, ref at, message, sizes);
        writer.Advance(size);
        context.Complete();
    }

    private static void Generated(IBufferMessage message, SerializationContext context)
    {
        context.SetPayloadLength(((IMessage)message).CalculateSize());
        ((IMessage)message).WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    /// <summary>Everything but tensor contents (which the engine's responses never carry: they use raw contents).</summary>
    private static bool Handles(ModelInferResponse message)
    {
        if (message.Outputs.Count > MaxOutputs)
        {
            return false;
        }
        for (var i = 0; i < message.Outputs.Count; i++)
        {
            if (message.Outputs[i].Contents is not null)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The response's encoded size; <paramref name="outputSizes"/> receives each output tensor's.</summary>
    private static int Measure(ModelInferResponse message, Span<int> outputSizes)
    {
        var size = StringField(message.ModelName) + StringField(message.ModelVersion) + StringField(message.Id) + MapSize(message.Parameters);
        for (var i = 0; i < message.Outputs.Count; i++)
        {
            var output = message.Outputs[i];
            var tensor = StringField(output.Name) + StringField(output.Datatype) + MapSize(output.Parameters);
            if (output.Shape.Count > 0)
            {
                var packed = PackedSize(output.Shape);
                tensor += 1 + VarintSize((uint)packed) + packed;
            }
            outputSizes[i] = tensor;
            size += 1 + VarintSize((uint)tensor) + tensor;
        }
        for (var i = 0; i < message.RawOutputContents.Count; i++)
        {
            var length = message.RawOutputContents[i].Length;
            size += 1 + VarintSize((uint)length) + length;
        }
        return size;
    }

    private static void WriteInfer(Span<byte> span, ref int at, ModelInferResponse message, ReadOnlySpan<int> outputSizes)
    {
        WriteString(span, ref at, 0x0A, message.ModelName);
        WriteString(span, ref at, 0x12, message.ModelVersion);
        WriteString(span, ref at, 0x1A, message.Id);
        WriteMap(span, ref at, 0x22, message.Parameters);
        for (var i = 0; i < message.Outputs.Count; i++)
        {
            var output = message.Outputs[i];
            span[at++] = 0x2A;
            WriteVarint(span, ref at, (uint)outputSizes[i]);
            WriteString(span, ref at, 0x0A, output.Name);
            WriteString(span, ref at, 0x12, output.Datatype);
            if (output.Shape.Count > 0)
            {
                span[at++] = 0x1A;
                WriteVarint(span, ref at, (uint)PackedSize(output.Shape));
                for (var d = 0; d < output.Shape.Count; d++)
                {
                    WriteVarint(span, ref at, (ulong)output.Shape[d]);
                }
            }
            WriteMap(span, ref at, 0x22, output.Parameters);
        }
        for (var i = 0; i < message.RawOutputContents.Count; i++)
        {
            var raw = message.RawOutputContents[i].Span;
            span[at++] = 0x32;
            WriteVarint(span, ref at, (uint)raw.Length);
            raw.CopyTo(span[at..]);
            at += raw.Length;
        }
    }

    private static int PackedSize(RepeatedField<long> values)
    {
        var size = 0;
        for (var i = 0; i < values.Count; i++)
        {
            size += VarintSize((ulong)values[i]);
        }
        return size;
    }

    // A map field is a repeated entry message { key = 1; value = 2 }; as the generated code writes
    // them, a key equal to "" and a null value are left out of the entry.
    private static int MapSize(MapField<string, InferParameter> map)
    {
        if (map.Count == 0)
        {
            return 0; // no enumerator (MapField's is a class) for the empty maps of every tensor
        }
        if (map.Count == 1 && map.TryGetValue(ResponseStream.FinalResponseParameter, out var final))
        {
            var finalSize = EntrySize(ResponseStream.FinalResponseParameter, final);
            return 1 + VarintSize((uint)finalSize) + finalSize;
        }
        var size = 0;
        foreach (var entry in map)
        {
            var entrySize = EntrySize(entry.Key, entry.Value);
            size += 1 + VarintSize((uint)entrySize) + entrySize;
        }
        return size;
    }

    private static int EntrySize(string key, InferParameter? value)
    {
        var size = StringField(key);
        if (value is not null)
        {
            var valueSize = ParameterSize(value);
            size += 1 + VarintSize((uint)valueSize) + valueSize;
        }
        return size;
    }

    private static void WriteMap(Span<byte> span, ref int at, byte tag, MapField<string, InferParameter> map)
    {
        if (map.Count == 0)
        {
            return;
        }
        // Every engine response carries exactly this one parameter: look it up, no enumeration.
        if (map.Count == 1 && map.TryGetValue(ResponseStream.FinalResponseParameter, out var final))
        {
            WriteEntry(span, ref at, tag, ResponseStream.FinalResponseParameter, final);
            return;
        }
        foreach (var entry in map)
        {
            WriteEntry(span, ref at, tag, entry.Key, entry.Value);
        }
    }

    private static void WriteEntry(Span<byte> span, ref int at, byte tag, string key, InferParameter? value)
    {
        span[at++] = tag;
        WriteVarint(span, ref at, (uint)EntrySize(key, value));
        WriteString(span, ref at, 0x0A, key);
        if (value is not null)
        {
            span[at++] = 0x12;
            WriteVarint(span, ref at, (uint)ParameterSize(value));
            WriteParameter(span, ref at, value);
        }
    }

    // The oneof member that is set is written even when it holds its type's default.
    private static int ParameterSize(InferParameter parameter) => parameter.ParameterChoiceCase switch
    {
        InferParameter.ParameterChoiceOneofCase.BoolParam => 2,
        InferParameter.ParameterChoiceOneofCase.Int64Param => 1 + VarintSize((ulong)parameter.Int64Param),
        InferParameter.ParameterChoiceOneofCase.StringParam => 1 + LengthDelimited(Encoding.UTF8.GetByteCount(parameter.StringParam)),
        InferParameter.ParameterChoiceOneofCase.DoubleParam => 9,
        InferParameter.ParameterChoiceOneofCase.Uint64Param => 1 + VarintSize(parameter.Uint64Param),
        _ => 0,
    };

    private static void WriteParameter(Span<byte> span, ref int at, InferParameter parameter)
    {
        switch (parameter.ParameterChoiceCase)
        {
            case InferParameter.ParameterChoiceOneofCase.BoolParam:
                span[at++] = 0x08;
                span[at++] = parameter.BoolParam ? (byte)1 : (byte)0;
                break;
            case InferParameter.ParameterChoiceOneofCase.Int64Param:
                span[at++] = 0x10;
                WriteVarint(span, ref at, (ulong)parameter.Int64Param);
                break;
            case InferParameter.ParameterChoiceOneofCase.StringParam:
                span[at++] = 0x1A;
                WriteStringValue(span, ref at, parameter.StringParam);
                break;
            case InferParameter.ParameterChoiceOneofCase.DoubleParam:
                span[at++] = 0x21;
                BinaryPrimitives.WriteDoubleLittleEndian(span[at..], parameter.DoubleParam);
                at += 8;
                break;
            case InferParameter.ParameterChoiceOneofCase.Uint64Param:
                span[at++] = 0x28;
                WriteVarint(span, ref at, parameter.Uint64Param);
                break;
        }
    }

    /// <summary>A proto3 string field: nothing when empty, else tag, length and UTF-8.</summary>
    private static int StringField(string value) => value.Length == 0 ? 0 : 1 + LengthDelimited(Encoding.UTF8.GetByteCount(value));

    private static int LengthDelimited(int length) => VarintSize((uint)length) + length;

    private static void WriteString(Span<byte> span, ref int at, byte tag, string value)
    {
        if (value.Length == 0)
        {
            return;
        }
        span[at++] = tag;
        WriteStringValue(span, ref at, value);
    }

    private static void WriteStringValue(Span<byte> span, ref int at, string value)
    {
        // ASCII (every name, datatype and id the engine writes) is one byte a char: no second count.
        var length = Ascii.IsValid(value) ? value.Length : Encoding.UTF8.GetByteCount(value);
        WriteVarint(span, ref at, (uint)length);
        at += Encoding.UTF8.GetBytes(value, span[at..]);
    }

    private static int VarintSize(ulong value) => (BitOperations.Log2(value | 1) / 7) + 1;

    private static void WriteVarint(Span<byte> span, ref int at, ulong value)
    {
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[at++] = (byte)value;
    }
}
