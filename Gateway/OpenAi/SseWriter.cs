using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Gateway.OpenAi;

/// <summary>
/// OpenAI's data-only server-sent events written straight to the response <see cref="PipeWriter"/>:
/// <c>data: {json}\n\n</c> per event, flushed at once, and <c>data: [DONE]\n\n</c> at the end.
/// The JSON is serialised into the pipe's buffer (no intermediate strings). Per-token deltas use a
/// <see cref="DeltaFrame"/>: the chunk's bytes around its text, serialised once per stream, with
/// only the escaped text written per token.
/// </summary>
internal sealed class SseWriter(PipeWriter pipe)
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;
    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;
    private static ReadOnlySpan<byte> Done => "data: [DONE]\n\n"u8;

    /// <summary>What a frame's text holds while it is serialised once; found again by its JSON form.</summary>
    internal const string TextPlaceholder = "sse-delta-text-7f3a9c2e51d4";

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false, SkipValidation = true };

    private readonly Utf8JsonWriter _json = new(pipe, WriterOptions);

    public ValueTask<FlushResult> WriteAsync<T>(T value, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        pipe.Write(DataPrefix);
        _json.Reset(pipe);
        JsonSerializer.Serialize(_json, value, typeInfo);
        _json.Flush();
        pipe.Write(EventEnd);
        return pipe.FlushAsync(cancellationToken);
    }

    /// <summary>
    /// The frame of <paramref name="value"/>, whose text field holds <see cref="TextPlaceholder"/>;
    /// null when the placeholder does not appear exactly once (then serialise per event instead).
    /// </summary>
    public static DeltaFrame? CreateFrame<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            JsonSerializer.Serialize(json, value, typeInfo);
        }
        var bytes = buffer.WrittenSpan;
        Span<byte> quoted = stackalloc byte[TextPlaceholder.Length + 2];
        quoted[0] = (byte)'"';
        System.Text.Encoding.ASCII.GetBytes(TextPlaceholder, quoted[1..]);
        quoted[^1] = (byte)'"';
        var at = bytes.IndexOf(quoted);
        if (at < 0 || bytes[(at + 1)..].IndexOf(quoted) >= 0)
        {
            return null;
        }
        byte[] prefix = [.. DataPrefix, .. bytes[..at]];
        byte[] suffix = [.. bytes[(at + quoted.Length)..], .. EventEnd];
        return new DeltaFrame(prefix, suffix);
    }

    /// <summary>One delta event: the frame around <paramref name="text"/> as a JSON string, escaped like the serialiser does.</summary>
    public ValueTask<FlushResult> WriteDeltaAsync(DeltaFrame frame, ReadOnlySpan<char> text, CancellationToken cancellationToken)
    {
        pipe.Write(frame.Prefix);
        _json.Reset(pipe);
        _json.WriteStringValue(text);
        _json.Flush();
        pipe.Write(frame.Suffix);
        return pipe.FlushAsync(cancellationToken);
    }

    public ValueTask<FlushResult> WriteDoneAsync(CancellationToken cancellationToken)
    {
        pipe.Write(Done);
        return pipe.FlushAsync(cancellationToken);
    }
}

/// <summary>A delta event's bytes before and after its text (<c>data: </c> and the event end included).</summary>
internal sealed class DeltaFrame(byte[] prefix, byte[] suffix)
{
    public byte[] Prefix { get; } = prefix;
    public byte[] Suffix { get; } = suffix;
}
