using System.Collections;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace TritonEmulator.Repository;

/// <summary>Writes any message in protobuf text format (the inverse of <see cref="TextFormatParser"/>).</summary>
internal static class TextFormatPrinter
{
    public static string Print(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var builder = new StringBuilder();
        PrintFields(message, builder, indent: 0);
        return builder.ToString();
    }

    private static void PrintFields(IMessage message, StringBuilder builder, int indent)
    {
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                var entry = field.MessageType;
                foreach (DictionaryEntry pair in (IDictionary)value)
                {
                    Indent(builder, indent).Append(field.Name).Append(" {\n");
                    PrintField(entry.FindFieldByNumber(1), pair.Key, builder, indent + 1);
                    PrintField(entry.FindFieldByNumber(2), pair.Value!, builder, indent + 1);
                    Indent(builder, indent).Append("}\n");
                }
            }
            else if (field.IsRepeated)
            {
                foreach (var item in (IList)value)
                {
                    PrintField(field, item, builder, indent);
                }
            }
            else if (field.HasPresence ? field.Accessor.HasValue(message) : !IsDefault(value))
            {
                PrintField(field, value, builder, indent);
            }
        }
    }

    private static void PrintField(FieldDescriptor field, object value, StringBuilder builder, int indent)
    {
        Indent(builder, indent).Append(field.Name);
        if (field.FieldType is FieldType.Message or FieldType.Group)
        {
            builder.Append(" {\n");
            PrintFields((IMessage)value, builder, indent + 1);
            Indent(builder, indent).Append("}\n");
            return;
        }

        builder.Append(": ");
        switch (value)
        {
            case string text:
                AppendQuoted(builder, Encoding.UTF8.GetBytes(text), keepUtf8: true);
                break;
            case ByteString bytes:
                AppendQuoted(builder, bytes.Span, keepUtf8: false);
                break;
            case bool flag:
                builder.Append(flag ? "true" : "false");
                break;
            case float single:
                AppendFloating(builder, single, single.ToString("R", CultureInfo.InvariantCulture));
                break;
            case double number:
                AppendFloating(builder, number, number.ToString("R", CultureInfo.InvariantCulture));
                break;
            case Enum:
                int numberValue = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                builder.Append(field.EnumType.FindValueByNumber(numberValue)?.Name ?? numberValue.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                builder.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }

        builder.Append('\n');
    }

    private static void AppendFloating(StringBuilder builder, double value, string text) =>
        builder.Append(double.IsNaN(value) ? "nan" : double.IsPositiveInfinity(value) ? "inf" : double.IsNegativeInfinity(value) ? "-inf" : text);

    /// <summary>C-style escaping; printable ASCII as is, and (for strings) non-ASCII UTF-8 kept readable.</summary>
    private static void AppendQuoted(StringBuilder builder, ReadOnlySpan<byte> bytes, bool keepUtf8)
    {
        builder.Append('"');
        if (keepUtf8)
        {
            int start = 0;
            for (int i = 0; i <= bytes.Length; i++)
            {
                if (i == bytes.Length || NeedsEscape(bytes[i]))
                {
                    builder.Append(Encoding.UTF8.GetString(bytes[start..i]));
                    if (i < bytes.Length)
                    {
                        AppendEscape(builder, bytes[i]);
                    }

                    start = i + 1;
                }
            }
        }
        else
        {
            foreach (byte b in bytes)
            {
                if (NeedsEscape(b) || b >= 0x80)
                {
                    AppendEscape(builder, b);
                }
                else
                {
                    builder.Append((char)b);
                }
            }
        }

        builder.Append('"');
    }

    private static bool NeedsEscape(byte b) => b < 0x20 || b == 0x7F || b == '"' || b == '\'' || b == '\\';

    private static void AppendEscape(StringBuilder builder, byte b)
    {
        switch (b)
        {
            case (byte)'\n': builder.Append("\\n"); break;
            case (byte)'\r': builder.Append("\\r"); break;
            case (byte)'\t': builder.Append("\\t"); break;
            case (byte)'"': builder.Append("\\\""); break;
            case (byte)'\'': builder.Append("\\'"); break;
            case (byte)'\\': builder.Append("\\\\"); break;
            default: builder.Append('\\').Append(Convert.ToString(b, 8).PadLeft(3, '0')); break;
        }
    }

    private static bool IsDefault(object value) => value switch
    {
        string text => text.Length == 0,
        ByteString bytes => bytes.IsEmpty,
        bool flag => !flag,
        float single => single == 0 && !float.IsNegative(single),
        double number => number == 0 && !double.IsNegative(number),
        Enum => Convert.ToInt64(value, CultureInfo.InvariantCulture) == 0,
        int or long or uint or ulong => Convert.ToDecimal(value, CultureInfo.InvariantCulture) == 0,
        _ => false,
    };

    private static StringBuilder Indent(StringBuilder builder, int indent) => builder.Append(' ', indent * 2);
}
