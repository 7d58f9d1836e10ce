using System.Collections;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace TritonEmulator.Repository;

/// <summary>
/// Recursive-descent reader of protobuf text format into any generated message, driven by its
/// <see cref="MessageDescriptor"/>. It follows protobuf's C++ <c>TextFormat::Parser</c> defaults, which
/// is what Triton uses for <c>config.pbtxt</c>: singular fields may be given once, one member per oneof.
/// </summary>
internal sealed class TextFormatParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly TextFormatTokenizer _tokens;

    private TextFormatParser(string text) => _tokens = new TextFormatTokenizer(text);

    public static void Merge(string text, IMessage message)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(message);
        new TextFormatParser(text).ParseFields(message, opener: null, closing: null);
    }

    private static TextFormatException Error(Token at, string message) => new(message, at.Line, at.Column);

    private void ParseFields(IMessage message, Token? opener, char? closing)
    {
        var descriptor = message.Descriptor;
        var seen = new HashSet<int>();
        var oneofMembers = new Dictionary<OneofDescriptor, FieldDescriptor>();
        while (true)
        {
            var token = _tokens.Current;
            if (closing is { } close)
            {
                if (token.IsSymbol(close))
                {
                    _tokens.Next();
                    return;
                }

                if (token.Kind == TokenKind.End)
                {
                    var open = opener!.Value;
                    throw Error(open, $"\"{open.Text}\" opened here for {descriptor.FullName} is never closed: expected \"{close}\" before the end of input");
                }
            }
            else if (token.Kind == TokenKind.End)
            {
                return;
            }

            var field = ReadFieldName(descriptor, seen, oneofMembers);
            if (field.IsMap)
            {
                ParseMessageFieldValues(field, () => ParseMapEntry(message, field));
            }
            else if (field.FieldType is FieldType.Message or FieldType.Group)
            {
                ParseMessageFieldValues(field, () =>
                {
                    var child = field.MessageType.Parser.ParseFrom(ByteString.Empty);
                    ParseMessageBody(child, field);
                    if (field.IsRepeated)
                    {
                        ((IList)field.Accessor.GetValue(message)).Add(child);
                    }
                    else
                    {
                        field.Accessor.SetValue(message, child);
                    }
                });
            }
            else
            {
                ExpectSymbol(':', $"expected \":\" after field \"{field.Name}\" of {descriptor.FullName}");
                if (_tokens.Current.IsSymbol('['))
                {
                    RequireRepeated(field, _tokens.Current);
                    ParseList(() => ((IList)field.Accessor.GetValue(message)).Add(ReadScalar(field)));
                }
                else if (field.IsRepeated)
                {
                    ((IList)field.Accessor.GetValue(message)).Add(ReadScalar(field));
                }
                else
                {
                    field.Accessor.SetValue(message, ReadScalar(field));
                }
            }

            SkipSeparator();
        }
    }

    private FieldDescriptor ReadFieldName(
        MessageDescriptor descriptor, HashSet<int> seen, Dictionary<OneofDescriptor, FieldDescriptor> oneofMembers)
    {
        var nameToken = _tokens.Next();
        if (nameToken.IsSymbol('['))
        {
            throw Error(nameToken, $"extension and Any fields (\"[...]\") are not supported in {descriptor.FullName}");
        }

        if (nameToken.Kind != TokenKind.Identifier)
        {
            throw Error(nameToken, $"expected a field name of {descriptor.FullName}, got {nameToken.Describe()}");
        }

        var field = descriptor.FindFieldByName(nameToken.Text)
            ?? throw Error(nameToken, $"unknown field \"{nameToken.Text}\" in {descriptor.FullName}");
        if (!field.IsRepeated)
        {
            if (!seen.Add(field.FieldNumber))
            {
                throw Error(nameToken, $"field \"{field.Name}\" of {descriptor.FullName} is not repeated but is given more than once");
            }

            if (field.RealContainingOneof is { } oneof)
            {
                if (oneofMembers.TryGetValue(oneof, out var other))
                {
                    throw Error(nameToken, $"field \"{field.Name}\" and field \"{other.Name}\" of {descriptor.FullName} are members of the same oneof \"{oneof.Name}\"; give only one");
                }

                oneofMembers[oneof] = field;
            }
        }

        return field;
    }

    /// <summary>A message field: optional ':', then one message, or '[' messages ']' for a repeated field.</summary>
    private void ParseMessageFieldValues(FieldDescriptor field, Action parseOne)
    {
        TrySymbol(':');
        if (_tokens.Current.IsSymbol('['))
        {
            RequireRepeated(field, _tokens.Current);
            ParseList(parseOne);
        }
        else
        {
            parseOne();
        }
    }

    private void ParseMessageBody(IMessage message, FieldDescriptor field)
    {
        var opener = _tokens.Next();
        char closing = opener.IsSymbol('{') ? '}' : opener.IsSymbol('<') ? '>'
            : throw Error(opener, $"expected \"{{\" or \"<\" to start message field \"{field.Name}\" ({field.MessageType.FullName}), got {opener.Describe()}");
        ParseFields(message, opener, closing);
    }

    /// <summary>One <c>{ key: ... value: ... }</c> entry of a map field; a missing key or value takes its default.</summary>
    private void ParseMapEntry(IMessage message, FieldDescriptor field)
    {
        var entry = field.MessageType;
        var keyField = entry.FindFieldByNumber(1);
        var valueField = entry.FindFieldByNumber(2);
        var opener = _tokens.Next();
        char closing = opener.IsSymbol('{') ? '}' : opener.IsSymbol('<') ? '>'
            : throw Error(opener, $"expected \"{{\" or \"<\" to start an entry of map field \"{field.Name}\", got {opener.Describe()}");
        object? key = null, value = null;
        var seen = new HashSet<int>();
        while (!_tokens.Current.IsSymbol(closing))
        {
            if (_tokens.Current.Kind == TokenKind.End)
            {
                throw Error(opener, $"\"{opener.Text}\" opened here for an entry of map field \"{field.Name}\" is never closed: expected \"{closing}\" before the end of input");
            }

            var nameToken = _tokens.Next();
            var member = nameToken.Kind == TokenKind.Identifier ? entry.FindFieldByName(nameToken.Text) : null;
            if (member is null)
            {
                throw Error(nameToken, $"unknown field {nameToken.Describe()} in an entry of map field \"{field.Name}\": expected \"key\" or \"value\"");
            }

            if (!seen.Add(member.FieldNumber))
            {
                throw Error(nameToken, $"\"{member.Name}\" is given more than once in an entry of map field \"{field.Name}\"");
            }

            object parsed;
            if (member.FieldType == FieldType.Message)
            {
                TrySymbol(':');
                var child = member.MessageType.Parser.ParseFrom(ByteString.Empty);
                ParseMessageBody(child, member);
                parsed = child;
            }
            else
            {
                ExpectSymbol(':', $"expected \":\" after \"{member.Name}\" in an entry of map field \"{field.Name}\"");
                parsed = ReadScalar(member);
            }

            if (member.FieldNumber == 1)
            {
                key = parsed;
            }
            else
            {
                value = parsed;
            }

            SkipSeparator();
        }

        _tokens.Next();
        key ??= DefaultScalar(keyField);
        value ??= valueField.FieldType == FieldType.Message
            ? valueField.MessageType.Parser.ParseFrom(ByteString.Empty)
            : DefaultScalar(valueField);
        ((IDictionary)field.Accessor.GetValue(message))[key] = value;
    }

    private static void RequireRepeated(FieldDescriptor field, Token at)
    {
        if (!field.IsRepeated)
        {
            throw Error(at, $"field \"{field.Name}\" of {field.ContainingType.FullName} is not repeated, so it cannot take a list \"[...]\"");
        }
    }

    /// <summary><c>[ a, b, c ]</c>; the brackets may be empty.</summary>
    private void ParseList(Action parseOne)
    {
        var opener = _tokens.Next();
        if (TrySymbol(']'))
        {
            return;
        }

        while (true)
        {
            if (_tokens.Current.Kind == TokenKind.End)
            {
                throw Error(opener, "\"[\" opened here is never closed: expected \"]\" before the end of input");
            }

            parseOne();
            if (TrySymbol(']'))
            {
                return;
            }

            var separator = _tokens.Current;
            if (separator.Kind == TokenKind.End)
            {
                throw Error(opener, "\"[\" opened here is never closed: expected \"]\" before the end of input");
            }

            if (!separator.IsSymbol(','))
            {
                throw Error(separator, $"expected \",\" or \"]\" in a list, got {separator.Describe()}");
            }

            _tokens.Next();
        }
    }

    private void SkipSeparator()
    {
        if (_tokens.Current.IsSymbol(',') || _tokens.Current.IsSymbol(';'))
        {
            _tokens.Next();
        }
    }

    private bool TrySymbol(char symbol)
    {
        if (_tokens.Current.IsSymbol(symbol))
        {
            _tokens.Next();
            return true;
        }

        return false;
    }

    private void ExpectSymbol(char symbol, string message)
    {
        var token = _tokens.Current;
        if (!token.IsSymbol(symbol))
        {
            throw Error(token, $"{message}, got {token.Describe()}");
        }

        _tokens.Next();
    }

    private object ReadScalar(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.String => ReadString(field),
        FieldType.Bytes => ByteString.CopyFrom(ReadStringBytes(field, out _)),
        FieldType.Bool => ReadBool(field),
        FieldType.Float => (float)ReadDouble(field),
        FieldType.Double => ReadDouble(field),
        FieldType.Enum => ReadEnum(field),
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => (int)ReadInteger(field, int.MinValue, int.MaxValue),
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => (long)ReadInteger(field, long.MinValue, long.MaxValue),
        FieldType.UInt32 or FieldType.Fixed32 => (uint)ReadInteger(field, 0, uint.MaxValue),
        FieldType.UInt64 or FieldType.Fixed64 => (ulong)ReadInteger(field, 0, ulong.MaxValue),
        _ => throw Error(_tokens.Current, $"field \"{field.Name}\" has unsupported type {field.FieldType}"),
    };

    private static object DefaultScalar(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.String => "",
        FieldType.Bytes => ByteString.Empty,
        FieldType.Bool => false,
        FieldType.Float => 0f,
        FieldType.Double => 0d,
        FieldType.Enum => Enum.ToObject(field.EnumType.ClrType, 0),
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => 0,
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => 0L,
        FieldType.UInt32 or FieldType.Fixed32 => 0u,
        FieldType.UInt64 or FieldType.Fixed64 => 0ul,
        _ => throw new NotSupportedException($"map key or value of type {field.FieldType}"),
    };

    /// <summary>One or more adjacent string literals, concatenated.</summary>
    private byte[] ReadStringBytes(FieldDescriptor field, out Token first)
    {
        first = _tokens.Next();
        if (first.Kind != TokenKind.String)
        {
            throw Error(first, $"expected a string for field \"{field.Name}\" ({field.FieldType}), got {first.Describe()}");
        }

        if (_tokens.Current.Kind != TokenKind.String)
        {
            return first.Bytes!;
        }

        var all = new List<byte>(first.Bytes!);
        while (_tokens.Current.Kind == TokenKind.String)
        {
            all.AddRange(_tokens.Next().Bytes!);
        }

        return [.. all];
    }

    private string ReadString(FieldDescriptor field)
    {
        var bytes = ReadStringBytes(field, out var first);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error(first, $"string for field \"{field.Name}\" is not valid UTF-8 (use a bytes field for binary data)");
        }
    }

    private bool ReadBool(FieldDescriptor field)
    {
        var token = _tokens.Next();
        return token switch
        {
            { Kind: TokenKind.Identifier, Text: "true" or "True" or "t" } => true,
            { Kind: TokenKind.Identifier, Text: "false" or "False" or "f" } => false,
            { Kind: TokenKind.Integer, Text: "1" } => true,
            { Kind: TokenKind.Integer, Text: "0" } => false,
            _ => throw Error(token, $"expected a bool (true, false, True, False, t, f, 1 or 0) for field \"{field.Name}\", got {token.Describe()}"),
        };
    }

    private double ReadDouble(FieldDescriptor field)
    {
        var sign = _tokens.Current;
        bool negative = TrySymbol('-');
        var token = _tokens.Next();
        double magnitude;
        switch (token.Kind)
        {
            case TokenKind.Integer when token.Text.Length > 1 && token.Text[0] == '0':
                magnitude = ParseUnsigned(token.Text) ?? throw Error(negative ? sign : token, $"{token.Text} is out of range for field \"{field.Name}\"");
                break;
            case TokenKind.Integer:
            case TokenKind.Float:
                magnitude = double.Parse(token.Text.AsSpan().TrimEnd("fF"), NumberStyles.Float, CultureInfo.InvariantCulture);
                break;
            case TokenKind.Identifier when token.Text.Equals("inf", StringComparison.OrdinalIgnoreCase)
                                        || token.Text.Equals("infinity", StringComparison.OrdinalIgnoreCase):
                magnitude = double.PositiveInfinity;
                break;
            case TokenKind.Identifier when token.Text.Equals("nan", StringComparison.OrdinalIgnoreCase):
                magnitude = double.NaN;
                break;
            default:
                throw Error(token, $"expected a number for {field.FieldType.ToString().ToLowerInvariant()} field \"{field.Name}\", got {token.Describe()}");
        }

        return negative ? -magnitude : magnitude;
    }

    private object ReadEnum(FieldDescriptor field)
    {
        var enumType = field.EnumType;
        var token = _tokens.Current;
        if (token.Kind == TokenKind.Identifier)
        {
            _tokens.Next();
            var value = enumType.FindValueByName(token.Text)
                ?? throw Error(token, $"unknown value \"{token.Text}\" for enum {enumType.FullName} of field \"{field.Name}\"");
            return Enum.ToObject(enumType.ClrType, value.Number);
        }

        if (token.Kind == TokenKind.Integer || token.IsSymbol('-'))
        {
            // proto3 enums are open: any int32 number is kept, as protobuf does.
            return Enum.ToObject(enumType.ClrType, (int)ReadInteger(field, int.MinValue, int.MaxValue));
        }

        throw Error(token, $"expected a name or number of enum {enumType.FullName} for field \"{field.Name}\", got {token.Describe()}");
    }

    /// <summary>An integer in [min, max] (as Int128 so every 64-bit range fits), with an optional leading '-'.</summary>
    private Int128 ReadInteger(FieldDescriptor field, Int128 min, Int128 max)
    {
        var start = _tokens.Current;
        bool negative = TrySymbol('-');
        var token = _tokens.Next();
        if (token.Kind != TokenKind.Integer)
        {
            string kind = token.Kind == TokenKind.Float ? "a fraction or exponent" : token.Describe();
            throw Error(token, $"expected an integer for {TypeName(field)} field \"{field.Name}\", got {kind}" + (token.Kind == TokenKind.Float ? $" in \"{token.Text}\"" : ""));
        }

        var written = (negative ? "-" : "") + token.Text;
        Int128 magnitude = ParseUnsigned(token.Text) ?? throw OutOfRange(start, written, field);
        Int128 value = negative ? -magnitude : magnitude;
        if (value < min || value > max)
        {
            throw OutOfRange(start, written, field);
        }

        return value;
    }

    private static TextFormatException OutOfRange(Token at, string written, FieldDescriptor field) =>
        Error(at, $"integer {written} is out of range for {TypeName(field)} field \"{field.Name}\"");

    /// <summary>Decimal, 0x hex or leading-zero octal digits as an unsigned 64-bit value; null if it does not fit.</summary>
    private static ulong? ParseUnsigned(string text)
    {
        int radix = 10, start = 0;
        if (text.Length > 2 && text[0] == '0' && text[1] is 'x' or 'X')
        {
            radix = 16;
            start = 2;
        }
        else if (text.Length > 1 && text[0] == '0')
        {
            radix = 8;
            start = 1;
        }

        ulong value = 0;
        for (int i = start; i < text.Length; i++)
        {
            char c = text[i];
            ulong digit = (ulong)(char.IsAsciiDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
            if (value > (ulong.MaxValue - digit) / (ulong)radix)
            {
                return null;
            }

            value = (value * (ulong)radix) + digit;
        }

        return value;
    }

    private static string TypeName(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => "int32",
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => "int64",
        FieldType.UInt32 or FieldType.Fixed32 => "uint32",
        FieldType.UInt64 or FieldType.Fixed64 => "uint64",
        FieldType.Enum => "enum",
        _ => field.FieldType.ToString().ToLowerInvariant(),
    };
}
