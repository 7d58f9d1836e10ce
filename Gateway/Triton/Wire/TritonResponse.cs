using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Gateway.Grpc.Tensors;
using Microsoft.Extensions.ObjectPool;

namespace Gateway.Triton.Wire;

/// <summary>
/// One <c>ModelStreamInferResponse</c> as it came off the wire, read in place: the message bytes sit
/// in a pooled buffer and only what a contract needs is located (outputs' names, datatypes and last
/// dimension, where each <c>raw_output_contents</c> entry lies, <c>error_message</c> and the
/// <c>triton_final_response</c> flag). Nothing else is parsed, no object is built per tensor, and a
/// contract reads only the elements it wants (FasterTransformer's cumulative <c>output_ids</c>: the
/// new tail). Rented by the call's marshaller, returned by <see cref="Return"/> once decoded.
/// </summary>
/// <remarks>
/// Field numbers (grpc_service.proto): ModelStreamInferResponse {error_message 1, infer_response 2};
/// ModelInferResponse {model_name 1, model_version 2, id 3, parameters 4 (map), outputs 5,
/// raw_output_contents 6}; InferOutputTensor {name 1, datatype 2, shape 3 (packed or not),
/// parameters 4, contents 5}; map entry {key 1, value 2}; InferParameter {bool_param 1, ...}.
/// </remarks>
public sealed class TritonResponse
{
    private const int MaxRetainedBytes = 64 * 1024;
    private const int MaxOutputs = 32;

    private static readonly ObjectPool<TritonResponse> Pool =
        new DefaultObjectPool<TritonResponse>(new PoolPolicy(), maximumRetained: 256);

    private static ReadOnlySpan<byte> FinalResponseKey => "triton_final_response"u8;

    private byte[] _buffer = [];
    private int _length;
    private readonly Output[] _outputs = new Output[MaxOutputs];
    private readonly Range[] _raw = new Range[MaxOutputs];
    private int _outputCount;
    private int _rawCount;
    private Range _error;

    /// <summary>Whether the message carried <c>infer_response</c>.</summary>
    public bool HasInferResponse { get; private set; }

    /// <summary><c>triton_final_response</c> when the server sent it (Triton ≥ 23.06); null otherwise.</summary>
    public bool? FinalFlag { get; private set; }

    /// <summary>Outputs in the message, in order.</summary>
    public int OutputCount => _outputCount;

    /// <summary>The <c>error_message</c>, or null when empty (allocates: errors are rare).</summary>
    public string? ErrorMessage => _error.Length == 0 ? null : Encoding.UTF8.GetString(Span(_error));

    /// <summary>Reads a serialized <c>ModelStreamInferResponse</c> into a rented instance.</summary>
    public static TritonResponse Read(ReadOnlySequence<byte> payload)
    {
        var response = Pool.Get();
        try
        {
            response.Load(payload);
            return response;
        }
        catch
        {
            Pool.Return(response);
            throw;
        }
    }

    /// <summary>Reads a serialized <c>ModelStreamInferResponse</c> (tests, tools).</summary>
    public static TritonResponse Read(byte[] payload) => Read(new ReadOnlySequence<byte>(payload));

    /// <summary>Gives the instance back to the pool; it must not be used afterwards.</summary>
    public void Return() => Pool.Return(this);

    /// <summary>Finds an output by its UTF-8 name: its index, or -1.</summary>
    public int IndexOf(ReadOnlySpan<byte> utf8Name)
    {
        for (var i = 0; i < _outputCount; i++)
        {
            if (Span(_outputs[i].Name).SequenceEqual(utf8Name))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Whether output <paramref name="index"/>'s name is <paramref name="utf8Name"/>.</summary>
    public bool NameIs(int index, ReadOnlySpan<byte> utf8Name) => Span(_outputs[index].Name).SequenceEqual(utf8Name);

    /// <summary>The last dimension of output <paramref name="index"/>'s shape, or -1 when it has none.</summary>
    public long LastDimension(int index) => _outputs[index].LastDimension;

    /// <summary>The output's <c>raw_output_contents</c> entry (outputs and raw contents pair by position).</summary>
    public ReadOnlySpan<byte> Raw(int index)
    {
        if (index >= _rawCount)
        {
            throw new TensorFormatException("the response has fewer raw_output_contents than outputs");
        }
        return Span(_raw[index]);
    }

    private ReadOnlySpan<byte> Span(Range range) => _buffer.AsSpan(range.Start, range.Length);

    private void Load(ReadOnlySequence<byte> payload)
    {
        var length = checked((int)payload.Length);
        if (_buffer.Length < length)
        {
            _buffer = new byte[Math.Max(length, Math.Min(Math.Max(_buffer.Length * 2, 256), int.MaxValue / 2))];
        }
        payload.CopyTo(_buffer);
        _length = length;
        _outputCount = 0;
        _rawCount = 0;
        _error = default;
        FinalFlag = null;
        HasInferResponse = false;

        var reader = new WireReader(_buffer, 0, length);
        while (reader.TryReadTag(out var field, out var wireType))
        {
            if (field == 1 && wireType == WireReader.LengthDelimited)
            {
                _error = reader.ReadLengthDelimited();
            }
            else if (field == 2 && wireType == WireReader.LengthDelimited)
            {
                HasInferResponse = true;
                ReadInferResponse(reader.ReadLengthDelimited());
            }
            else
            {
                reader.Skip(wireType);
            }
        }
    }

    private void ReadInferResponse(Range message)
    {
        var reader = new WireReader(_buffer, message.Start, message.End);
        while (reader.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 4 when wireType == WireReader.LengthDelimited:
                    ReadParameter(reader.ReadLengthDelimited());
                    break;
                case 5 when wireType == WireReader.LengthDelimited:
                    if (_outputCount == MaxOutputs)
                    {
                        throw new TensorFormatException($"the response has more than {MaxOutputs} outputs");
                    }
                    _outputs[_outputCount++] = ReadOutput(reader.ReadLengthDelimited());
                    break;
                case 6 when wireType == WireReader.LengthDelimited:
                    var raw = reader.ReadLengthDelimited();
                    if (_rawCount < MaxOutputs)
                    {
                        _raw[_rawCount++] = raw;
                    }
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }
    }

    /// <summary>A <c>parameters</c> map entry: only <c>triton_final_response</c>'s bool is kept.</summary>
    private void ReadParameter(Range entry)
    {
        var reader = new WireReader(_buffer, entry.Start, entry.End);
        Range key = default, value = default;
        while (reader.TryReadTag(out var field, out var wireType))
        {
            if (field == 1 && wireType == WireReader.LengthDelimited)
            {
                key = reader.ReadLengthDelimited();
            }
            else if (field == 2 && wireType == WireReader.LengthDelimited)
            {
                value = reader.ReadLengthDelimited();
            }
            else
            {
                reader.Skip(wireType);
            }
        }
        if (!Span(key).SequenceEqual(FinalResponseKey))
        {
            return;
        }
        var parameter = new WireReader(_buffer, value.Start, value.End);
        while (parameter.TryReadTag(out var field, out var wireType))
        {
            if (field == 1 && wireType == WireReader.Varint)
            {
                FinalFlag = parameter.ReadVarint() != 0;
            }
            else
            {
                parameter.Skip(wireType);
            }
        }
    }

    private Output ReadOutput(Range message)
    {
        var reader = new WireReader(_buffer, message.Start, message.End);
        Range name = default;
        long last = -1;
        while (reader.TryReadTag(out var field, out var wireType))
        {
            switch (field)
            {
                case 1 when wireType == WireReader.LengthDelimited:
                    name = reader.ReadLengthDelimited();
                    break;
                case 3 when wireType == WireReader.Varint:
                    last = (long)reader.ReadVarint();
                    break;
                case 3 when wireType == WireReader.LengthDelimited:
                    var packed = reader.ReadLengthDelimited();
                    var dims = new WireReader(_buffer, packed.Start, packed.End);
                    while (dims.HasMore)
                    {
                        last = (long)dims.ReadVarint();
                    }
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }
        return new Output(name, last);
    }

    private readonly record struct Range(int Start, int Length)
    {
        public int End => Start + Length;
    }

    private readonly record struct Output(Range Name, long LastDimension);

    /// <summary>A forward-only protobuf reader over a slice of the buffer (varints, tags, lengths, skips).</summary>
    private ref struct WireReader(byte[] buffer, int start, int end)
    {
        public const int Varint = 0;
        public const int Fixed64 = 1;
        public const int LengthDelimited = 2;
        public const int Fixed32 = 5;

        private readonly ReadOnlySpan<byte> _span = buffer.AsSpan(0, end);
        private int _at = start;

        public readonly bool HasMore => _at < _span.Length;

        public bool TryReadTag(out int field, out int wireType)
        {
            if (_at >= _span.Length)
            {
                field = 0;
                wireType = 0;
                return false;
            }
            var tag = ReadVarint();
            field = (int)(tag >> 3);
            wireType = (int)(tag & 7);
            if (field == 0)
            {
                throw new TensorFormatException("the response is not a valid protobuf message (field 0)");
            }
            return true;
        }

        public ulong ReadVarint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_at >= _span.Length)
                {
                    throw new TensorFormatException("the response ends inside a varint");
                }
                var b = _span[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }
            throw new TensorFormatException("the response has a varint longer than 10 bytes");
        }

        public Range ReadLengthDelimited()
        {
            var length = ReadVarint();
            if (length > (ulong)(_span.Length - _at))
            {
                throw new TensorFormatException("the response ends inside a length-delimited field");
            }
            var range = new Range(_at, (int)length);
            _at += (int)length;
            return range;
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case Varint:
                    ReadVarint();
                    break;
                case Fixed64:
                    Advance(8);
                    break;
                case LengthDelimited:
                    ReadLengthDelimited();
                    break;
                case Fixed32:
                    Advance(4);
                    break;
                default:
                    throw new TensorFormatException($"the response has an unsupported wire type {wireType}");
            }
        }

        private void Advance(int count)
        {
            if (_span.Length - _at < count)
            {
                throw new TensorFormatException("the response ends inside a fixed-size field");
            }
            _at += count;
        }
    }

    private sealed class PoolPolicy : PooledObjectPolicy<TritonResponse>
    {
        public override TritonResponse Create() => new();

        // A response far larger than usual does not keep its buffer alive in the pool.
        public override bool Return(TritonResponse obj)
        {
            if (obj._buffer.Length > MaxRetainedBytes)
            {
                obj._buffer = [];
            }
            obj._length = 0;
            return true;
        }
    }
}

/// <summary>Element reads from a raw tensor blob, little-endian, bounds-checked.</summary>
internal static class RawTensor
{
    public static uint UInt32(ReadOnlySpan<byte> raw, int index) =>
        (uint)index < (uint)(raw.Length / sizeof(uint))
            ? BinaryPrimitives.ReadUInt32LittleEndian(raw[(index * sizeof(uint))..])
            : throw new TensorFormatException($"element {index} is outside the tensor ({raw.Length} bytes)");

    /// <summary>
    /// Appends every element of a BYTES tensor (4-byte little-endian length, then that many UTF-8
    /// bytes) to <paramref name="text"/>, decoding straight into the builder (no string per element).
    /// Returns whether any element was non-empty.
    /// </summary>
    public static bool AppendUtf8Strings(ReadOnlySpan<byte> raw, StringBuilder text)
    {
        var any = false;
        Span<char> chars = stackalloc char[256];
        while (raw.Length > 0)
        {
            if (raw.Length < sizeof(uint))
            {
                throw new TensorFormatException("a BYTES element is missing its 4-byte length");
            }
            var length = BinaryPrimitives.ReadUInt32LittleEndian(raw);
            raw = raw[sizeof(uint)..];
            if (length > (uint)raw.Length)
            {
                throw new TensorFormatException($"a BYTES element says {length} bytes but {raw.Length} remain");
            }
            var element = raw[..(int)length];
            raw = raw[(int)length..];
            any |= element.Length > 0;
            while (element.Length > 0)
            {
                // Whole UTF-8 sequences per chunk: a chunk boundary never splits a character.
                var take = Math.Min(element.Length, chars.Length / 2);
                while (take < element.Length && take > 0 && (element[take] & 0xC0) == 0x80)
                {
                    take--;
                }
                if (take == 0)
                {
                    take = Math.Min(element.Length, 4);
                }
                var written = Encoding.UTF8.GetChars(element[..take], chars);
                text.Append(chars[..written]);
                element = element[take..];
            }
        }
        return any;
    }

    /// <summary>The first element of a BYTES tensor as UTF-8, compared without decoding.</summary>
    public static ReadOnlySpan<byte> FirstUtf8(ReadOnlySpan<byte> raw)
    {
        if (raw.Length < sizeof(uint))
        {
            return [];
        }
        var length = BinaryPrimitives.ReadUInt32LittleEndian(raw);
        return length <= (uint)(raw.Length - sizeof(uint))
            ? raw.Slice(sizeof(uint), (int)length)
            : throw new TensorFormatException($"a BYTES element says {length} bytes but {raw.Length - sizeof(uint)} remain");
    }
}
