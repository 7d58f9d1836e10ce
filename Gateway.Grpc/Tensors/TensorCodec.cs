using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;

namespace Gateway.Grpc.Tensors;

/// <summary>
/// Encodes and decodes Triton's <c>raw_input_contents</c> / <c>raw_output_contents</c> blobs:
/// tensors flattened row-major, each element little-endian in its native size; BOOL is one byte
/// (0/1); BYTES elements are a 4-byte little-endian length followed by that many bytes.
/// </summary>
public static class TensorCodec
{
    public static ByteString EncodeBool(ReadOnlySpan<bool> values)
    {
        var bytes = new byte[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            bytes[i] = values[i] ? (byte)1 : (byte)0;
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static ByteString EncodeUInt32(ReadOnlySpan<uint> values)
    {
        var bytes = new byte[values.Length * sizeof(uint)];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * sizeof(uint)), values[i]);
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static ByteString EncodeInt32(ReadOnlySpan<int> values)
    {
        var bytes = new byte[values.Length * sizeof(int)];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * sizeof(int)), values[i]);
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static ByteString EncodeUInt64(ReadOnlySpan<ulong> values)
    {
        var bytes = new byte[values.Length * sizeof(ulong)];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * sizeof(ulong)), values[i]);
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static ByteString EncodeInt64(ReadOnlySpan<long> values)
    {
        var bytes = new byte[values.Length * sizeof(long)];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * sizeof(long)), values[i]);
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static ByteString EncodeFloat32(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>Encodes BYTES elements, each as a 4-byte LE length then the bytes.</summary>
    public static ByteString EncodeBytes(IReadOnlyList<ReadOnlyMemory<byte>> elements)
    {
        var total = 0;
        for (var i = 0; i < elements.Count; i++)
        {
            total = checked(total + sizeof(uint) + elements[i].Length);
        }
        var bytes = new byte[total];
        var offset = 0;
        for (var i = 0; i < elements.Count; i++)
        {
            var element = elements[i].Span;
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), (uint)element.Length);
            offset += sizeof(uint);
            element.CopyTo(bytes.AsSpan(offset));
            offset += element.Length;
        }
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>Encodes strings as UTF-8 BYTES elements.</summary>
    public static ByteString EncodeStrings(params IReadOnlyList<string> elements)
    {
        var encoded = new ReadOnlyMemory<byte>[elements.Count];
        for (var i = 0; i < elements.Count; i++)
        {
            encoded[i] = Encoding.UTF8.GetBytes(elements[i]);
        }
        return EncodeBytes(encoded);
    }

    public static bool[] DecodeBool(ReadOnlySpan<byte> raw)
    {
        var values = new bool[raw.Length];
        for (var i = 0; i < raw.Length; i++)
        {
            values[i] = raw[i] != 0;
        }
        return values;
    }

    public static uint[] DecodeUInt32(ReadOnlySpan<byte> raw)
    {
        var values = new uint[CountFixed(raw, sizeof(uint), "UINT32")];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw[(i * sizeof(uint))..]);
        }
        return values;
    }

    public static int[] DecodeInt32(ReadOnlySpan<byte> raw)
    {
        var values = new int[CountFixed(raw, sizeof(int), "INT32")];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadInt32LittleEndian(raw[(i * sizeof(int))..]);
        }
        return values;
    }

    public static ulong[] DecodeUInt64(ReadOnlySpan<byte> raw)
    {
        var values = new ulong[CountFixed(raw, sizeof(ulong), "UINT64")];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadUInt64LittleEndian(raw[(i * sizeof(ulong))..]);
        }
        return values;
    }

    public static long[] DecodeInt64(ReadOnlySpan<byte> raw)
    {
        var values = new long[CountFixed(raw, sizeof(long), "INT64")];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadInt64LittleEndian(raw[(i * sizeof(long))..]);
        }
        return values;
    }

    public static float[] DecodeFloat32(ReadOnlySpan<byte> raw)
    {
        var values = new float[CountFixed(raw, sizeof(float), "FP32")];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(i * sizeof(float))..]);
        }
        return values;
    }

    /// <summary>Reads element <paramref name="index"/> of a UINT32 blob without allocating (hot path).</summary>
    public static uint ReadUInt32(ReadOnlySpan<byte> raw, int index) =>
        BinaryPrimitives.ReadUInt32LittleEndian(raw.Slice(index * sizeof(uint), sizeof(uint)));

    /// <summary>Reads element <paramref name="index"/> of an INT32 blob without allocating.</summary>
    public static int ReadInt32(ReadOnlySpan<byte> raw, int index) =>
        BinaryPrimitives.ReadInt32LittleEndian(raw.Slice(index * sizeof(int), sizeof(int)));

    /// <summary>Decodes BYTES elements (4-byte LE length prefix each).</summary>
    public static byte[][] DecodeBytes(ReadOnlySpan<byte> raw)
    {
        var elements = new List<byte[]>();
        var reader = new BytesElementReader(raw);
        while (reader.TryRead(out var element))
        {
            elements.Add(element.ToArray());
        }
        return [.. elements];
    }

    /// <summary>Decodes BYTES elements as UTF-8 strings.</summary>
    public static string[] DecodeStrings(ReadOnlySpan<byte> raw)
    {
        var elements = new List<string>();
        var reader = new BytesElementReader(raw);
        while (reader.TryRead(out var element))
        {
            elements.Add(Encoding.UTF8.GetString(element));
        }
        return [.. elements];
    }

    /// <summary>The number of elements a shape holds (1 for a scalar shape <c>[]</c>).</summary>
    public static long ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        for (var i = 0; i < shape.Count; i++)
        {
            if (shape[i] < 0)
            {
                throw new ArgumentException($"shape [{string.Join(',', shape)}] has a negative dimension", nameof(shape));
            }
            count = checked(count * shape[i]);
        }
        return count;
    }

    private static int CountFixed(ReadOnlySpan<byte> raw, int size, string datatype)
    {
        if (raw.Length % size != 0)
        {
            throw new TensorFormatException(
                $"{datatype} tensor data is {raw.Length} bytes, not a multiple of the element size {size}");
        }
        return raw.Length / size;
    }
}

/// <summary>Walks the elements of a BYTES blob without allocating.</summary>
public ref struct BytesElementReader(ReadOnlySpan<byte> raw)
{
    private ReadOnlySpan<byte> _remaining = raw;

    public bool TryRead(out ReadOnlySpan<byte> element)
    {
        if (_remaining.IsEmpty)
        {
            element = default;
            return false;
        }
        if (_remaining.Length < sizeof(uint))
        {
            throw new TensorFormatException(
                $"BYTES tensor data ends inside a 4-byte length prefix ({_remaining.Length} bytes left)");
        }
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_remaining);
        if (length > (uint)(_remaining.Length - sizeof(uint)))
        {
            throw new TensorFormatException(
                $"BYTES element length {length} exceeds the {_remaining.Length - sizeof(uint)} bytes that follow it");
        }
        element = _remaining.Slice(sizeof(uint), (int)length);
        _remaining = _remaining[(sizeof(uint) + (int)length)..];
        return true;
    }
}

/// <summary>Raw tensor bytes that do not match their datatype's layout.</summary>
public sealed class TensorFormatException(string message) : FormatException(message);
