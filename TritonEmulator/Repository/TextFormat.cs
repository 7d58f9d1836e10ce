using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace TritonEmulator.Repository;

/// <summary>Protobuf text format (config.pbtxt) parser over message descriptors.</summary>
public static class TextFormat
{
    public static T Parse<T>(string text) where T : IMessage<T>, new() => throw new NotImplementedException("owned by the parser work");

    public static IMessage Parse(string text, MessageDescriptor descriptor) => throw new NotImplementedException("owned by the parser work");
}

/// <summary>Bad text-format input, with the 1-based line and column where it was found.</summary>
public sealed class TextFormatException(string message, int line, int column)
    : FormatException($"{message} (line {line}, column {column})")
{
    public int Line { get; } = line;
    public int Column { get; } = column;
}
