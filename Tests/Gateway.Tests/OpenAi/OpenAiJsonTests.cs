using System.Buffers;
using System.Text.Json;
using Gateway.OpenAi;

namespace Gateway.Tests.OpenAi;

public sealed class OpenAiJsonTests
{
    /// <summary>
    /// A stream event is written by the source generator's fast path (straight Utf8JsonWriter calls): no
    /// serializer state allocated per event. One property the fast path cannot write itself (an
    /// <c>object</c>, even when null) costs a state stack per event: ~300 B.
    /// </summary>
    [Fact]
    public void StreamEventsAndAnswers_SerializeWithoutAllocating()
    {
        var chunk = new ChatCompletionChunk
        {
            Id = "chatcmpl-1",
            Model = "m",
            Choices = [new ChunkChoice { Delta = new ChunkDelta { Content = "hi" }, FinishReason = "stop" }],
            Usage = new Usage { PromptTokens = 3, CompletionTokens = 1, TotalTokens = 4 },
        };
        var completion = new TextCompletion { Id = "cmpl-1", Model = "m", Choices = [new TextChoice { Text = "hi", FinishReason = "length" }] };
        var chat = new ChatCompletion { Id = "chatcmpl-2", Model = "m", Choices = [new ChatChoice { Message = new AssistantMessage { Content = "hi" }, FinishReason = "stop" }] };
        var buffer = new ArrayBufferWriter<byte>(4096);
        using var writer = new Utf8JsonWriter(buffer);

        Assert.True(PerCall(() => JsonSerializer.Serialize(writer, chunk, OpenAiJsonContext.Default.ChatCompletionChunk)) < 16);
        Assert.True(PerCall(() => JsonSerializer.Serialize(writer, completion, OpenAiJsonContext.Default.TextCompletion)) < 16);
        Assert.True(PerCall(() => JsonSerializer.Serialize(writer, chat, OpenAiJsonContext.Default.ChatCompletion)) < 16);

        double PerCall(Action serialize)
        {
            for (var i = 0; i < 50; i++)
            {
                buffer.ResetWrittenCount();
                writer.Reset(buffer);
                serialize();
            }
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 500; i++)
            {
                buffer.ResetWrittenCount();
                writer.Reset(buffer);
                serialize();
            }
            return (GC.GetAllocatedBytesForCurrentThread() - before) / 500.0;
        }
    }

    [Fact]
    public void Choices_CarryLogprobsAndFinishReasonAsNull_AsOpenAiDoes()
    {
        var chunk = new ChatCompletionChunk
        {
            Id = "chatcmpl-1",
            Model = "m",
            Choices = [new ChunkChoice { Delta = new ChunkDelta { Content = "hi" } }],
        };
        var json = JsonSerializer.Serialize(chunk, OpenAiJsonContext.Default.ChatCompletionChunk);

        Assert.Equal("""{"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}""", json);
    }
}
