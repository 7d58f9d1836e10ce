using System.Runtime.InteropServices;
using System.Text;

namespace TritonEmulator.Gguf;

/// <summary>ggml tensor types this writer produces (the numbers are ggml's <c>GGML_TYPE_*</c>).</summary>
internal enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
}

/// <summary>Fills <paramref name="values"/> with a tensor's elements from element <paramref name="offset"/> on (row-major, innermost dimension first).</summary>
internal delegate void TensorFill(long offset, Span<float> values);

/// <summary>
/// Writes GGUF v3 files (public spec: ggml-org/ggml <c>docs/gguf.md</c>): magic <c>GGUF</c>, version 3,
/// tensor and metadata counts, the metadata key/values in the order they were added, the tensor
/// infos (name, dimensions innermost first, ggml type, offset in the data section), then the tensor
/// data, each tensor padded to <see cref="Alignment"/> bytes. Tensor data is produced chunk by chunk
/// through a <see cref="TensorFill"/>, so a model of billions of parameters is written without
/// holding it in memory. Used to write models for tests and benchmarks (the project never downloads
/// weights); llama.cpp reads what it writes.
/// </summary>
internal sealed class GgufWriter
{
    /// <summary>The data alignment (also written as <c>general.alignment</c> when the caller adds it).</summary>
    public const int Alignment = 32;

    private const int ChunkElements = 1 << 16;

    private readonly List<(string Key, Action<BinaryWriter> WriteValue)> _metadata = [];
    private readonly List<Tensor> _tensors = [];

    private enum ValueType : uint
    {
        UInt32 = 4,
        Int32 = 5,
        Float32 = 6,
        Bool = 7,
        String = 8,
        Array = 9,
    }

    private sealed record Tensor(string Name, long[] Dims, GgmlType Type, TensorFill Fill)
    {
        public long Elements { get; } = Dims.Aggregate(1L, static (product, d) => product * d);

        public long Bytes => Elements * (Type == GgmlType.F16 ? 2 : 4);
    }

    public GgufWriter AddUInt32(string key, uint value) => Add(key, w => { Type(w, ValueType.UInt32); w.Write(value); });

    public GgufWriter AddFloat32(string key, float value) => Add(key, w => { Type(w, ValueType.Float32); w.Write(value); });

    public GgufWriter AddBool(string key, bool value) => Add(key, w => { Type(w, ValueType.Bool); w.Write((byte)(value ? 1 : 0)); });

    public GgufWriter AddString(string key, string value) => Add(key, w => { Type(w, ValueType.String); String(w, value); });

    public GgufWriter AddStrings(string key, IReadOnlyList<string> values) => AddArray(key, ValueType.String, values, String);

    public GgufWriter AddFloat32s(string key, IReadOnlyList<float> values) => AddArray(key, ValueType.Float32, values, static (w, v) => w.Write(v));

    public GgufWriter AddInt32s(string key, IReadOnlyList<int> values) => AddArray(key, ValueType.Int32, values, static (w, v) => w.Write(v));

    /// <summary>A tensor of <paramref name="dims"/> (innermost first, as GGUF stores them) whose elements <paramref name="fill"/> produces.</summary>
    public GgufWriter AddTensor(string name, long[] dims, GgmlType type, TensorFill fill)
    {
        if (dims.Length is 0 or > 4 || dims.Any(static d => d <= 0))
        {
            throw new ArgumentException($"tensor '{name}' needs 1 to 4 positive dimensions", nameof(dims));
        }
        if (_tensors.Any(t => t.Name == name))
        {
            throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        }
        _tensors.Add(new Tensor(name, dims, type, fill));
        return this;
    }

    /// <summary>A tensor whose elements are <paramref name="values"/>.</summary>
    public GgufWriter AddTensor(string name, long[] dims, GgmlType type, float[] values)
    {
        var expected = dims.Aggregate(1L, static (product, d) => product * d);
        if (values.Length != expected)
        {
            throw new ArgumentException($"tensor '{name}' has {values.Length} values for {expected} elements", nameof(values));
        }
        return AddTensor(name, dims, type, Values(values));
    }

    /// <summary>A fill that copies from <paramref name="values"/>.</summary>
    public static TensorFill Values(float[] values) => (offset, chunk) => values.AsSpan(checked((int)offset), chunk.Length).CopyTo(chunk);

    /// <summary>Bytes <see cref="WriteTo(string)"/> writes for the tensor data (padding included).</summary>
    public long DataBytes => _tensors.Sum(static t => Align(t.Bytes));

    public void WriteTo(string path)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        WriteTo(file);
    }

    public void WriteTo(Stream stream)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("GGUF files are written little-endian only");
        }
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var start = stream.Position;
        w.Write("GGUF"u8);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, writeValue) in _metadata)
        {
            String(w, key);
            writeValue(w);
        }
        long offset = 0;
        foreach (var tensor in _tensors)
        {
            String(w, tensor.Name);
            w.Write((uint)tensor.Dims.Length);
            foreach (var d in tensor.Dims)
            {
                w.Write((ulong)d);
            }
            w.Write((uint)tensor.Type);
            w.Write((ulong)offset);
            offset += Align(tensor.Bytes);
        }
        Pad(w, start);
        var values = new float[ChunkElements];
        var halves = new Half[ChunkElements];
        foreach (var tensor in _tensors)
        {
            for (long at = 0; at < tensor.Elements; at += ChunkElements)
            {
                var chunk = values.AsSpan(0, (int)Math.Min(ChunkElements, tensor.Elements - at));
                tensor.Fill(at, chunk);
                if (tensor.Type == GgmlType.F16)
                {
                    var half = halves.AsSpan(0, chunk.Length);
                    for (var i = 0; i < chunk.Length; i++)
                    {
                        half[i] = (Half)chunk[i];
                    }
                    w.Write(MemoryMarshal.AsBytes(half));
                }
                else
                {
                    w.Write(MemoryMarshal.AsBytes(chunk));
                }
            }
            Pad(w, start);
        }
        w.Flush();
    }

    private GgufWriter Add(string key, Action<BinaryWriter> writeValue)
    {
        if (_metadata.Any(m => m.Key == key))
        {
            throw new ArgumentException($"metadata key '{key}' was already added", nameof(key));
        }
        _metadata.Add((key, writeValue));
        return this;
    }

    private GgufWriter AddArray<T>(string key, ValueType elementType, IReadOnlyList<T> values, Action<BinaryWriter, T> write) => Add(key, w =>
    {
        Type(w, ValueType.Array);
        w.Write((uint)elementType);
        w.Write((ulong)values.Count);
        foreach (var value in values)
        {
            write(w, value);
        }
    });

    private static void Type(BinaryWriter w, ValueType type) => w.Write((uint)type);

    private static void String(BinaryWriter w, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static long Align(long value) => (value + Alignment - 1) / Alignment * Alignment;

    /// <summary>Zero bytes up to the next multiple of <see cref="Alignment"/> from the start of the file.</summary>
    private static void Pad(BinaryWriter w, long start)
    {
        w.Flush();
        var padding = (int)((Alignment - (w.BaseStream.Position - start) % Alignment) % Alignment);
        for (var i = 0; i < padding; i++)
        {
            w.Write((byte)0);
        }
    }
}
