using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Gateway.OpenAi;

/// <summary>
/// OpenAI's data-only server-sent events written straight to the response <see cref="PipeWriter"/>:
/// <c>data: {json}\n\n</c> per event, flushed at once, and <c>data: [DONE]\n\n</c> at the end.
/// The JSON is serialised into the pipe's buffer (no intermediate strings).
/// </summary>
internal sealed class SseWriter(PipeWriter pipe)
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;
    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;
    private static ReadOnlySpan<byte> Done => "data: [DONE]\n\n"u8;

    private readonly Utf8JsonWriter _json = new(pipe, new JsonWriterOptions { Indented = false, SkipValidation = true });

    public ValueTask<FlushResult> WriteAsync<T>(T value, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        pipe.Write(DataPrefix);
        _json.Reset(pipe);
        JsonSerializer.Serialize(_json, value, typeInfo);
        _json.Flush();
        pipe.Write(EventEnd);
        return pipe.FlushAsync(cancellationToken);
    }

    public ValueTask<FlushResult> WriteDoneAsync(CancellationToken cancellationToken)
    {
        pipe.Write(Done);
        return pipe.FlushAsync(cancellationToken);
    }
}
