using Triton.Inference;

namespace Gateway.Grpc.Tensors;

/// <summary>Maps between config <see cref="DataType"/> enums and protocol datatype strings.</summary>
public static class TensorDataTypes
{
    public const string Bool = "BOOL";
    public const string UInt8 = "UINT8";
    public const string UInt16 = "UINT16";
    public const string UInt32 = "UINT32";
    public const string UInt64 = "UINT64";
    public const string Int8 = "INT8";
    public const string Int16 = "INT16";
    public const string Int32 = "INT32";
    public const string Int64 = "INT64";
    public const string Fp16 = "FP16";
    public const string Fp32 = "FP32";
    public const string Fp64 = "FP64";
    public const string Bytes = "BYTES";
    public const string Bf16 = "BF16";

    /// <summary>The protocol string for a config datatype (<c>TYPE_STRING</c> → <c>BYTES</c>).</summary>
    public static string ToProtocolName(this DataType type) => type switch
    {
        DataType.TypeBool => Bool,
        DataType.TypeUint8 => UInt8,
        DataType.TypeUint16 => UInt16,
        DataType.TypeUint32 => UInt32,
        DataType.TypeUint64 => UInt64,
        DataType.TypeInt8 => Int8,
        DataType.TypeInt16 => Int16,
        DataType.TypeInt32 => Int32,
        DataType.TypeInt64 => Int64,
        DataType.TypeFp16 => Fp16,
        DataType.TypeFp32 => Fp32,
        DataType.TypeFp64 => Fp64,
        DataType.TypeString => Bytes,
        DataType.TypeBf16 => Bf16,
        _ => "INVALID",
    };

    public static bool TryParseProtocolName(string name, out DataType type)
    {
        type = name switch
        {
            Bool => DataType.TypeBool,
            UInt8 => DataType.TypeUint8,
            UInt16 => DataType.TypeUint16,
            UInt32 => DataType.TypeUint32,
            UInt64 => DataType.TypeUint64,
            Int8 => DataType.TypeInt8,
            Int16 => DataType.TypeInt16,
            Int32 => DataType.TypeInt32,
            Int64 => DataType.TypeInt64,
            Fp16 => DataType.TypeFp16,
            Fp32 => DataType.TypeFp32,
            Fp64 => DataType.TypeFp64,
            Bytes => DataType.TypeString,
            Bf16 => DataType.TypeBf16,
            _ => DataType.TypeInvalid,
        };
        return type != DataType.TypeInvalid;
    }

    /// <summary>Bytes per element, or -1 for variable-size BYTES.</summary>
    public static int ElementSize(this DataType type) => type switch
    {
        DataType.TypeBool or DataType.TypeUint8 or DataType.TypeInt8 => 1,
        DataType.TypeUint16 or DataType.TypeInt16 or DataType.TypeFp16 or DataType.TypeBf16 => 2,
        DataType.TypeUint32 or DataType.TypeInt32 or DataType.TypeFp32 => 4,
        DataType.TypeUint64 or DataType.TypeInt64 or DataType.TypeFp64 => 8,
        DataType.TypeString => -1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "invalid tensor datatype"),
    };
}
