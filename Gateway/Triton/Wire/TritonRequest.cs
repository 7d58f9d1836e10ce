using System.Buffers.Binary;
using System.Text;
using Gateway.Grpc.Tensors;
using Triton.Inference;

namespace Gateway.Triton.Wire;

/// <summary>
/// One <c>ModelInferRequest</c> as the gateway sends it on <c>ModelStreamInfer</c>, kept as flat arrays
/// (header, parameters, inputs with their raw contents in one buffer, requested outputs) and written
/// straight into gRPC's buffer by hand: no Google.Protobuf object graph (a map, a tensor object, a shape
/// list and a <c>ByteString</c> per input) per request. The bytes are the message Google.Protobuf would
/// write (fields in number order, packed shapes, one <c>raw_input_contents</c> entry per input);
/// <see cref="ToMessage"/> parses them back, for tests and diagnostics.
/// </summary>
public sealed class TritonRequest
{
    private const int LengthDelimited = 2;
    private const int VarintWire = 0;
    private const int MaxRank = 4;

    private Input[] _inputs = new Input[12];
    private int _inputCount;
    private Parameter[] _parameters = new Parameter[2];
    private int _parameterCount;
    private string[] _outputs = new string[4];
    private int _outputCount;
    private byte[] _raw;
    private int _rawLength;
    private int _size = -1;

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

    public int InputCount => _inputCount;

    public void AddParameter(string key, bool value) => AddParameter(new Parameter(key, IsBool: true, value ? 1 : 0));

    public void AddParameter(string key, long value) => AddParameter(new Parameter(key, IsBool: false, value));

    public void AddOutput(string name)
    {
        Grow(ref _outputs, _outputCount);
        _outputs[_outputCount++] = name;
        _size = -1;
    }

    /// <summary>Adds an input of <paramref name="byteLength"/> raw bytes and returns them to fill (little-endian, Triton's layout).</summary>
    public Span<byte> AddInput(string name, string datatype, ReadOnlySpan<long> shape, int byteLength)
    {
        if (shape.Length is 0 or > MaxRank)
        {
            throw new ArgumentOutOfRangeException(nameof(shape), shape.Length, $"An input has 1 to {MaxRank} dimensions.");
        }
        Grow(ref _inputs, _inputCount);
        if (_rawLength + byteLength > _raw.Length)
        {
            Array.Resize(ref _raw, Math.Max(_raw.Length * 2, _rawLength + byteLength));
        }
        var input = new Input { Name = name, Datatype = datatype, Rank = shape.Length, Offset = _rawLength, Length = byteLength };
        for (var i = 0; i < shape.Length; i++)
        {
            input.Shape[i] = shape[i];
        }
        _inputs[_inputCount++] = input;
        var contents = _raw.AsSpan(_rawLength, byteLength);
        _rawLength += byteLength;
        _size = -1;
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

    /// <summary>The message's encoded size (cached until the next change).</summary>
    public int CalculateSize()
    {
        if (_size >= 0)
        {
            return _size;
        }
        var size = StringField(ModelName) + StringField(ModelVersion) + StringField(Id);
        for (var i = 0; i < _parameterCount; i++)
        {
            size += Embedded(_parameters[i].EntrySize());
        }
        for (var i = 0; i < _inputCount; i++)
        {
            size += Embedded(_inputs[i].TensorSize());
        }
        for (var i = 0; i < _outputCount; i++)
        {
            size += Embedded(StringField(_outputs[i]));
        }
        for (var i = 0; i < _inputCount; i++)
        {
            size += Embedded(_inputs[i].Length);
        }
        return _size = size;
    }

    /// <summary>Writes the message into <paramref name="destination"/>, exactly <see cref="CalculateSize"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var writer = new ProtoWriter(destination);
        writer.String(1, ModelName);
        writer.String(2, ModelVersion);
        writer.String(3, Id);
        for (var i = 0; i < _parameterCount; i++)
        {
            ref readonly var parameter = ref _parameters[i];
            writer.Header(4, parameter.EntrySize());
            writer.String(1, parameter.Key);
            writer.Header(2, parameter.ValueSize());
            writer.Varint(parameter.IsBool ? 1 : 2, (ulong)parameter.Value);
        }
        for (var i = 0; i < _inputCount; i++)
        {
            ref readonly var input = ref _inputs[i];
            writer.Header(5, input.TensorSize());
            writer.String(1, input.Name);
            writer.String(2, input.Datatype);
            writer.Header(3, input.ShapeSize());
            for (var d = 0; d < input.Rank; d++)
            {
                writer.RawVarint((ulong)input.Shape[d]);
            }
        }
        for (var i = 0; i < _outputCount; i++)
        {
            writer.Header(6, StringField(_outputs[i]));
            writer.String(1, _outputs[i]);
        }
        for (var i = 0; i < _inputCount; i++)
        {
            ref readonly var input = ref _inputs[i];
            writer.Bytes(7, _raw.AsSpan(input.Offset, input.Length));
        }
        if (writer.Position != destination.Length)
        {
            throw new InvalidOperationException($"TritonRequest wrote {writer.Position} bytes of {destination.Length}.");
        }
    }

    /// <summary>The request as Google.Protobuf reads the bytes this class sends (tests, diagnostics).</summary>
    public ModelInferRequest ToMessage()
    {
        var bytes = new byte[CalculateSize()];
        WriteTo(bytes);
        return ModelInferRequest.Parser.ParseFrom(bytes);
    }

    private void AddParameter(Parameter parameter)
    {
        for (var i = 0; i < _parameterCount; i++)
        {
            if (_parameters[i].Key == parameter.Key)
            {
                _parameters[i] = parameter;
                _size = -1;
                return;
            }
        }
        Grow(ref _parameters, _parameterCount);
        _parameters[_parameterCount++] = parameter;
        _size = -1;
    }

    private static void Grow<T>(ref T[] items, int count)
    {
        if (count == items.Length)
        {
            Array.Resize(ref items, items.Length * 2);
        }
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

    private record struct Parameter(string Key, bool IsBool, long Value)
    {
        // A oneof member is written even when it holds its default.
        public readonly int ValueSize() => 1 + VarintSize((ulong)Value);

        public readonly int EntrySize() => StringField(Key) + Embedded(ValueSize());
    }

    [System.Runtime.CompilerServices.InlineArray(MaxRank)]
    private struct Dimensions
    {
        private long _first;
    }

    private struct Input
    {
        public string Name;
        public string Datatype;
        public Dimensions Shape;
        public int Rank;
        public int Offset;
        public int Length;

        public readonly int ShapeSize()
        {
            var size = 0;
            for (var d = 0; d < Rank; d++)
            {
                size += VarintSize((ulong)Shape[d]);
            }
            return size;
        }

        public readonly int TensorSize() => StringField(Name) + StringField(Datatype) + Embedded(ShapeSize());
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
