using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace TritonEmulator.Repository;

/// <summary>
/// Protobuf text format (the <c>config.pbtxt</c> syntax) for any generated message, driven by its
/// descriptor. Google.Protobuf for .NET only has binary and JSON, so this is a small parser and printer
/// that follow protobuf's C++ <c>TextFormat</c>, which Triton uses to read model configurations.
/// </summary>
public static class TextFormat
{
    /// <summary>Parses text format into a new <typeparamref name="T"/>.</summary>
    /// <exception cref="TextFormatException">The text is not valid for <typeparamref name="T"/>; it names the line and column.</exception>
    public static T Parse<T>(string text) where T : IMessage<T>, new()
    {
        var message = new T();
        TextFormatParser.Merge(text, message);
        return message;
    }

    /// <summary>Parses text format into a new message of the generated type that <paramref name="descriptor"/> describes.</summary>
    /// <exception cref="TextFormatException">The text is not valid for the message; it names the line and column.</exception>
    public static IMessage Parse(string text, MessageDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var message = descriptor.Parser?.ParseFrom(ByteString.Empty)
            ?? throw new ArgumentException($"{descriptor.FullName} has no generated message type to parse into", nameof(descriptor));
        TextFormatParser.Merge(text, message);
        return message;
    }

    /// <summary>
    /// Prints a message in text format, fields in field-number order, two-space indentation, as protobuf's
    /// C++ printer does. <see cref="Parse{T}(string)"/> reads the result back into an equal message.
    /// </summary>
    public static string Print(IMessage message) => TextFormatPrinter.Print(message);
}

/// <summary>Bad text-format input, with the 1-based line and column where it was found.</summary>
public sealed class TextFormatException(string message, int line, int column)
    : FormatException($"{message} (line {line}, column {column})")
{
    /// <summary>1-based line of the offending token.</summary>
    public int Line { get; } = line;

    /// <summary>1-based column (UTF-16 code units) of the offending token.</summary>
    public int Column { get; } = column;
}
