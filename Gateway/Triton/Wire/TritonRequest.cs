using System.Buffers.Binary;
using System.Text;
using Gateway.Grpc.Tensors;
using Triton.Inference;

namespace Gateway.Triton.Wire;

/// <summary>
/// One <c>ModelInferRequest</c> as the gateway sends it on <c>ModelStreamInfer</c>, encoded as it is
/// built: parameters, input descriptors and requested outputs into one buffer, each input's raw
/// contents framed into another and filled in place; gRPC's buffer then gets the header and both.
/// No Google.Protobuf object graph (a map, a tensor object, a shape list and a <c>ByteString</c> per
/// input) and no per-input object per request. The bytes are the message Google.Protobuf would write
/// (fields in number order, packed shapes, one <c>raw_input_contents</c> entry per input), so the order
/// of calls is fixed: parameters, inputs, outputs. <see cref="ToMessage"/> parses them back (tests).
/// </summary>
public sealed class TritonRequest
{
    private const int LengthDelimited = 2;
    private const int VarintWire = 0;

    // parameters (field 4), then inputs (5), then outputs (6), each written as added: no per-input objects.
    private byte[] _meta = new byte[512];
    private int _metaLength;
    // raw_input_contents (7), each entry framed as added, its contents filled in place.
    private byte[] _raw;
    private int _rawLength;
    private Section _section;

    private enum Section { Parameters, Inputs, Outputs }

    public TritonRequest(string modelName, string modelVersion, string id, int rawCapacity = 256)
    {
        ModelName = modelName;
        ModelVersion = modelVersion;
        Id = id;
        _raw = new byte[rawCapacity];
    }

    public string ModelName { get; }

    public string ModelVersion { get; }

    public string Id { get; }

    public int InputCount { get; private set; }

    /// <summary>A request parameter (each key once), before any input.</summary>
    public void AddParameter(string key, bool value) => AddParameter(key, isBool: true, value ? 1 : 0);

    /// <summary>A request parameter (each key once), before any input.</summary>
    public void AddParameter(string key, long value) => AddParameter(key, isBool: false, value);

    /// <summary>A requested output, after every input.</summary>
    public void AddOutput(string name)
    {
        _section = Section.Outputs;
        var size = StringField(name);
        var writer = MetaWriter(Embedded(size));
        writer.Header(6, size);
        writer.String(1, name);
        _metaLength += writer.Position;
    }

    /// <summary>Adds an input of <paramref name="byteLength"/> raw bytes and returns them to fill (little-endian, Triton's layout).</summary>
    public Span<byte> AddInput(string name, string datatype, ReadOnlySpan<long> shape, int byteLength)
    {
        if (shape.IsEmpty)
        {
            throw new ArgumentOutOfRangeException(nameof(shape), "An input has at least one dimension.");
        }
        if (_section == Section.Outputs)
        {
            throw new InvalidOperationException("Inputs come before the requested outputs.");
        }
        _section = Section.Inputs;
        var shapeSize = 0;
        foreach (var dimension in shape)
        {
            shapeSize += VarintSize((ulong)dimension);
        }
        var tensorSize = StringField(name) + StringField(datatype) + Embedded(shapeSize);
        var writer = MetaWriter(Embedded(tensorSize));
        writer.Header(5, tensorSize);
        writer.String(1, name);
        writer.String(2, datatype);
        writer.Header(3, shapeSize);
        foreach (var dimension in shape)
        {
            writer.RawVarint((ulong)dimension);
        }
        _metaLength += writer.Position;

        var framed = Embedded(byteLength);
        if (_rawLength + framed > _raw.Length)
        {
            Array.Resize(ref _raw, Math.Max(_raw.Length * 2, _rawLength + framed));
        }
        var raw = new ProtoWriter(_raw.AsSpan(_rawLength));
        raw.Header(7, byteLength);
        var contents = _raw.AsSpan(_rawLength + raw.Position, byteLength);
        _rawLength += framed;
        InputCount++;
        return contents;
    }

    public void AddUInt32(string name, ReadOnlySpan<long> shape, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(AddInput(name, TensorDataTypes.UInt32, shape, 4), value);

    public void AddInt32(string name, ReadOnlySpan<long> shape, int value) =>
        BinaryPrimitives.WriteInt32LittleEndian(AddInput(name, TensorDataTypes.Int32, shape, 4), value);

    public void AddUInt64(string name, ReadOnlySpan<long> shape, ulong value) =>
        BinaryPrimitives.WriteUInt64LittleEndian(AddInput(name, TensorDataTypes.UInt64, shape, 8), value);

    public void AddFp32(string name, ReadOnlySpan<long> shape, float value) =>
        BinaryPrimitives.WriteSingleLittleEndian(AddInput(name, TensorDataTypes.Fp32, shape, 4), value);

    public void AddBool(string name, ReadOnlySpan<long> shape, bool value) =>
        AddInput(name, TensorDataTypes.Bool, shape, 1)[0] = value ? (byte)1 : (byte)0;

    /// <summary>Token ids as UINT32 <c>[1, ids.Count]</c>.</summary>
    public void AddUInt32Row(string name, IReadOnlyList<int> ids)
    {
        var contents = AddInput(name, TensorDataTypes.UInt32, [1, ids.Count], 4 * ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(contents[(4 * i)..], (uint)ids[i]);
        }
    }

    public void AddInt32s(string name, ReadOnlySpan<long> shape, ReadOnlySpan<int> values)
    {
        var contents = AddInput(name, TensorDataTypes.Int32, shape, 4 * values.Length);
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(contents[(4 * i)..], values[i]);
        }
    }

    /// <summary>A BYTES input of one element: Triton's 4-byte little-endian length, then the UTF-8 text.</summary>
    public void AddString(string name, ReadOnlySpan<long> shape, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        var contents = AddInput(name, TensorDataTypes.Bytes, shape, 4 + length);
        BinaryPrimitives.WriteUInt32LittleEndian(contents, (uint)length);
        Encoding.UTF8.GetBytes(value, contents[4..]);
    }

    /// <summary>A BYTES input of <paramref name="values"/>, each length-prefixed.</summary>
    public void AddStrings(string name, ReadOnlySpan<long> shape, IReadOnlyList<string> values)
    {
        var total = 0;
        foreach (var value in values)
        {
            total += 4 + Encoding.UTF8.GetByteCount(value);
        }
        var contents = AddInput(name, TensorDataTypes.Bytes, shape, total);
        var at = 0;
        foreach (var value in values)
        {
            var written = Encoding.UTF8.GetBytes(value, contents[(at + 4)..]);
            BinaryPrimitives.WriteUInt32LittleEndian(contents[at..], (uint)written);
            at += 4 + written;
        }
    }

    /// <summary>The message's encoded size.</summary>
    public int CalculateSize() => StringField(ModelName) + StringField(ModelVersion) + StringField(Id) + _metaLength + _rawLength;

    /// <summary>Writes the message into <paramref name="destination"/>, exactly <see cref="CalculateSize"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var writer = new ProtoWriter(destination);
        writer.String(1, ModelName);
        writer.String(2, ModelVersion);
        writer.String(3, Id);
        var at = writer.Position;
        if (at + _metaLength + _rawLength != destination.Length)
        {
            throw new InvalidOperationException($"TritonRequest is {at + _metaLength + _rawLength} bytes, not {destination.Length}.");
        }
        _meta.AsSpan(0, _metaLength).CopyTo(destination[at..]);
        _raw.AsSpan(0, _rawLength).CopyTo(destination[(at + _metaLength)..]);
    }

    /// <summary>The request as Google.Protobuf reads the bytes this class sends (tests, diagnostics).</summary>
    public ModelInferRequest ToMessage()
    {
        var bytes = new byte[CalculateSize()];
        WriteTo(bytes);
        return ModelInferRequest.Parser.ParseFrom(bytes);
    }

    private void AddParameter(string key, bool isBool, long value)
    {
        if (_section != Section.Parameters)
        {
            throw new InvalidOperationException("Parameters come before the inputs.");
        }
        // A oneof member is written even when it holds its default.
        var valueSize = 1 + VarintSize((ulong)value);
        var entrySize = StringField(key) + Embedded(valueSize);
        var writer = MetaWriter(Embedded(entrySize));
        writer.Header(4, entrySize);
        writer.String(1, key);
        writer.Header(2, valueSize);
        writer.Varint(isBool ? 1 : 2, (ulong)value);
        _metaLength += writer.Position;
    }

    /// <summary>A writer at the end of the metadata, with room for <paramref name="bytes"/> more.</summary>
    private ProtoWriter MetaWriter(int bytes)
    {
        if (_metaLength + bytes > _meta.Length)
        {
            Array.Resize(ref _meta, Math.Max(_meta.Length * 2, _metaLength + bytes));
        }
        return new ProtoWriter(_meta.AsSpan(_metaLength));
    }

    /// <summary>A string field's bytes with its tag; 0 for an empty string (proto3 leaves defaults out).</summary>
    private static int StringField(string value)
    {
        if (value.Length == 0)
        {
            return 0;
        }
        var length = Encoding.UTF8.GetByteCount(value);
        return 1 + VarintSize((ulong)length) + length;
    }

    /// <summary>A length-delimited field (tag ≤ 15) around <paramref name="length"/> bytes.</summary>
    private static int Embedded(int length) => 1 + VarintSize((ulong)length) + length;

    private static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    /// <summary>Protocol-buffer primitives into a span (field numbers ≤ 15, so every tag is one byte).</summary>
    private ref struct ProtoWriter(Span<byte> destination)
    {
        private readonly Span<byte> _buffer = destination;

        public int Position { get; private set; }

        public void Header(int field, int length)
        {
            _buffer[Position++] = (byte)((field << 3) | LengthDelimited);
            RawVarint((ulong)length);
        }

        public void String(int field, string value)
        {
            if (value.Length == 0)
            {
                return;
            }
            Header(field, Encoding.UTF8.GetByteCount(value));
            Position += Encoding.UTF8.GetBytes(value, _buffer[Position..]);
        }

        public void Bytes(int field, ReadOnlySpan<byte> value)
        {
            Header(field, value.Length);
            value.CopyTo(_buffer[Position..]);
            Position += value.Length;
        }

        public void Varint(int field, ulong value)
        {
            _buffer[Position++] = (byte)((field << 3) | VarintWire);
            RawVarint(value);
        }

        public void RawVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _buffer[Position++] = (byte)(value | 0x80);
                value >>= 7;
            }
            _buffer[Position++] = (byte)value;
        }
    }
}
