using System.Buffers.Binary;
using System.Globalization;
using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models;

/// <summary>One input of a validated request, as raw little-endian bytes whatever form it came in.</summary>
internal sealed record RequestTensor(string Name, DataType DataType, long[] Shape, ReadOnlyMemory<byte> Raw)
{
    public long ElementCount => TensorCodec.ElementCount(Shape);

    public uint UInt32(long index) => BinaryPrimitives.ReadUInt32LittleEndian(Raw.Span[(int)(index * 4)..]);

    public int Int32(long index) => BinaryPrimitives.ReadInt32LittleEndian(Raw.Span[(int)(index * 4)..]);

    public ulong UInt64(long index) => BinaryPrimitives.ReadUInt64LittleEndian(Raw.Span[(int)(index * 8)..]);

    public float Float32(long index) => BinaryPrimitives.ReadSingleLittleEndian(Raw.Span[(int)(index * 4)..]);

    public bool Bool(long index) => Raw.Span[(int)index] != 0;
}

/// <summary>
/// What Triton's core checks before a backend sees a request: known and required inputs, datatypes,
/// shapes against the config dims (with the leading batch dimension), batch size and raw byte sizes.
/// The messages follow Triton's wording.
/// </summary>
internal static class RequestValidator
{
    public static string RequestLabel(string id) => $"[request id: {(string.IsNullOrEmpty(id) ? "<id_unknown>" : id)}]";

    public static ValidatedRequest Validate(ModelConfig config, string modelName, string version, ModelInferRequest request)
    {
        var label = RequestLabel(request.Id);
        var useRaw = request.RawInputContents.Count > 0;
        if (useRaw && request.RawInputContents.Count != request.Inputs.Count)
        {
            throw Invalid($"{label} expected {request.Inputs.Count} raw input contents, one per input, but got {request.RawInputContents.Count} for model '{modelName}'");
        }
        var tensors = new Dictionary<string, RequestTensor>(StringComparer.Ordinal);
        long batchSize = config.MaxBatchSize > 0 ? -1 : 0;
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            var declared = FindInput(config, input.Name)
                ?? throw Invalid($"{label} unexpected inference input '{input.Name}' for model '{modelName}'");
            if (tensors.ContainsKey(input.Name))
            {
                throw Invalid($"{label} input '{input.Name}' is given more than once for model '{modelName}'");
            }
            if (!TensorDataTypes.TryParseProtocolName(input.Datatype, out var type) || type != declared.DataType)
            {
                throw Invalid($"{label} unexpected datatype {ConfigName(input.Datatype)} for inference input '{input.Name}', expecting {declared.DataType.ConfigName()} for model '{modelName}'");
            }
            var shape = input.Shape.ToArray();
            if (!ShapeMatches(config, declared, shape))
            {
                throw Invalid($"{label} unexpected shape for input '{input.Name}' for model '{modelName}'. Expected {FormatShape(ExpectedShape(config, declared))}, got {FormatShape(shape)}");
            }
            if (config.MaxBatchSize > 0)
            {
                if (shape[0] < 1 || shape[0] > config.MaxBatchSize)
                {
                    throw Invalid($"{label} inference request batch-size must be <= {config.MaxBatchSize} for '{modelName}'");
                }
                if (batchSize >= 0 && shape[0] != batchSize)
                {
                    throw Invalid($"{label} input '{input.Name}' batch size does not match other inputs for '{modelName}'");
                }
                batchSize = shape[0];
            }
            ReadOnlyMemory<byte> raw;
            if (useRaw)
            {
                if (HasContents(input.Contents))
                {
                    throw Invalid($"{label} contents field must not be specified when using raw_input_contents for '{input.Name}' for model '{modelName}'");
                }
                raw = request.RawInputContents[i].Memory;
            }
            else
            {
                raw = FromContents(input.Contents, type, label, input.Name, modelName);
            }
            CheckByteSize(label, modelName, input.Name, type, shape, raw);
            tensors[input.Name] = new RequestTensor(input.Name, type, shape, raw);
        }
        var missing = new List<string>();
        foreach (var declared in config.Input)
        {
            if (!declared.Optional && !tensors.ContainsKey(declared.Name))
            {
                missing.Add(declared.Name);
            }
        }
        if (missing.Count > 0)
        {
            var required = config.Input.Count(static input => !input.Optional);
            var given = string.Join(",", request.Inputs.Select(static input => $"'{input.Name}'"));
            throw Invalid($"{label} expected {required} inputs but got {request.Inputs.Count} inputs for model '{modelName}'. Got input(s) [{given}], but missing required input(s) [{string.Join(",", missing.Select(static m => $"'{m}'"))}]. Please provide all required input(s).");
        }
        var outputs = new HashSet<string>(StringComparer.Ordinal);
        foreach (var requested in request.Outputs)
        {
            if (!config.Output.Any(output => output.Name == requested.Name))
            {
                throw Invalid($"{label} unexpected inference output '{requested.Name}' for model '{modelName}'");
            }
            outputs.Add(requested.Name);
        }
        return new ValidatedRequest(request, modelName, version, tensors, (int)Math.Max(1, batchSize), outputs);
    }

    public static InferenceException Invalid(string message) => new(InferenceErrorCode.InvalidArgument, message, FailureReason.Other);

    public static string ConfigName(this DataType type) => type switch
    {
        DataType.TypeString => "TYPE_STRING",
        _ => "TYPE_" + TensorDataTypes.ToProtocolName(type),
    };

    private static string ConfigName(string protocolName) =>
        TensorDataTypes.TryParseProtocolName(protocolName, out var type) ? type.ConfigName() : $"'{protocolName}'";

    private static ModelInput? FindInput(ModelConfig config, string name)
    {
        foreach (var input in config.Input)
        {
            if (input.Name == name)
            {
                return input;
            }
        }
        return null;
    }

    private static long[] ExpectedShape(ModelConfig config, ModelInput input) =>
        config.MaxBatchSize > 0 ? [-1, .. input.Dims] : [.. input.Dims];

    private static bool ShapeMatches(ModelConfig config, ModelInput input, long[] shape)
    {
        var expected = ExpectedShape(config, input);
        if (expected.Length != shape.Length)
        {
            return false;
        }
        for (var i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0 || (expected[i] >= 0 && expected[i] != shape[i]))
            {
                return false;
            }
        }
        return true;
    }

    private static string FormatShape(long[] shape) => "[" + string.Join(",", shape.Select(static d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    private static void CheckByteSize(string label, string model, string name, DataType type, long[] shape, ReadOnlyMemory<byte> raw)
    {
        var elements = TensorCodec.ElementCount(shape);
        if (type == DataType.TypeString)
        {
            long count = 0;
            try
            {
                var reader = new BytesElementReader(raw.Span);
                while (reader.TryRead(out _))
                {
                    count++;
                }
            }
            catch (TensorFormatException exception)
            {
                throw Invalid($"{label} {exception.Message} for input '{name}' for model '{model}'");
            }
            if (count != elements)
            {
                throw Invalid($"{label} expected {elements} string elements for inference input '{name}' for model '{model}', got {count}");
            }
            return;
        }
        var expected = elements * type.ElementSize();
        if (expected != raw.Length)
        {
            throw Invalid($"{label} input byte size mismatch for input '{name}' for model '{model}'. Expected {expected}, got {raw.Length}");
        }
    }

    private static bool HasContents(InferTensorContents? contents) => contents is not null &&
        (contents.BoolContents.Count + contents.IntContents.Count + contents.Int64Contents.Count + contents.UintContents.Count
            + contents.Uint64Contents.Count + contents.Fp32Contents.Count + contents.Fp64Contents.Count + contents.BytesContents.Count) > 0;

    private static ReadOnlyMemory<byte> FromContents(InferTensorContents? contents, DataType type, string label, string name, string model)
    {
        contents ??= new InferTensorContents();
        return type switch
        {
            DataType.TypeBool => TensorCodec.EncodeBool([.. contents.BoolContents]).Memory,
            DataType.TypeUint32 => TensorCodec.EncodeUInt32([.. contents.UintContents]).Memory,
            DataType.TypeInt32 => TensorCodec.EncodeInt32([.. contents.IntContents]).Memory,
            DataType.TypeUint64 => TensorCodec.EncodeUInt64([.. contents.Uint64Contents]).Memory,
            DataType.TypeInt64 => TensorCodec.EncodeInt64([.. contents.Int64Contents]).Memory,
            DataType.TypeFp32 => TensorCodec.EncodeFloat32([.. contents.Fp32Contents]).Memory,
            DataType.TypeString => TensorCodec.EncodeBytes([.. contents.BytesContents.Select(static b => b.Memory)]).Memory,
            DataType.TypeUint8 => contents.UintContents.Select(static v => (byte)v).ToArray(),
            DataType.TypeInt8 => contents.IntContents.Select(static v => (byte)(sbyte)v).ToArray(),
            DataType.TypeFp64 => Fp64(contents),
            _ => throw Invalid($"{label} input '{name}' of datatype {type.ConfigName()} must be sent in raw_input_contents for model '{model}'"),
        };
    }

    private static byte[] Fp64(InferTensorContents contents)
    {
        var bytes = new byte[contents.Fp64Contents.Count * 8];
        for (var i = 0; i < contents.Fp64Contents.Count; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), contents.Fp64Contents[i]);
        }
        return bytes;
    }
}

/// <summary>A request that passed the core checks, with its inputs decoded to raw form.</summary>
internal sealed record ValidatedRequest(
    ModelInferRequest Request,
    string ModelName,
    string ModelVersion,
    IReadOnlyDictionary<string, RequestTensor> Inputs,
    int BatchSize,
    IReadOnlySet<string> RequestedOutputs)
{
    public string Label => RequestValidator.RequestLabel(Request.Id);

    public RequestTensor? Input(string name) => Inputs.TryGetValue(name, out var tensor) ? tensor : null;

    public bool WantsOutput(string name) => RequestedOutputs.Count == 0 || RequestedOutputs.Contains(name);
}
