using System.IO.Pipelines;
using Gateway.OpenAi;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Tests.OpenAi;

public sealed class SseResponseTests
{
    /// <summary>
    /// The server reports a gone client in the flush's result before its abort signal fires: the
    /// next event after that ends the stream (and with it the generation), it is not written into the void.
    /// </summary>
    [Fact]
    public async Task AFlushThatFindsTheConnectionClosed_EndsTheStream_BeforeTheAbortSignal()
    {
        var body = new ClosablePipeWriter();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new BodyFeature(body));
        var frame = SseWriter.CreateFrame(
            new ChatCompletionChunk { Id = "c", Model = "m", Choices = [new ChunkChoice { Delta = new ChunkDelta { Content = SseWriter.TextPlaceholder } }] },
            OpenAiJsonContext.Default.ChatCompletionChunk)!;
        await using var sse = new SseResponse(context, new SseOptions(), TimeProvider.System);
        await sse.StartAsync("c", "0", CancellationToken.None);
        await sse.WriteDeltaAsync(frame, "a".AsMemory(), CancellationToken.None);

        body.CloseByPeer();

        await Assert.ThrowsAsync<ClientDisconnectedException>(() => sse.WriteDeltaAsync(frame, "b".AsMemory(), CancellationToken.None).AsTask());
        Assert.False(context.RequestAborted.IsCancellationRequested);
        await Assert.ThrowsAsync<ClientDisconnectedException>(() => sse.CompleteAsync(CancellationToken.None).AsTask());
    }

    private sealed class BodyFeature(PipeWriter writer) : IHttpResponseBodyFeature
    {
        public Stream Stream => writer.AsStream();
        public PipeWriter Writer => writer;
        public void DisableBuffering() { }
        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;
        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public Task CompleteAsync() => Task.CompletedTask;
    }

    /// <summary>A response pipe whose reader (the connection) can go away, as Kestrel's does when the client leaves.</summary>
    private sealed class ClosablePipeWriter : PipeWriter
    {
        private readonly Pipe _pipe = new();
        private bool _closed;

        public void CloseByPeer()
        {
            _closed = true;
            _pipe.Reader.Complete();
        }

        public override void Advance(int bytes) => _pipe.Writer.Advance(bytes);
        public override Memory<byte> GetMemory(int sizeHint = 0) => _pipe.Writer.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => _pipe.Writer.GetSpan(sizeHint);
        public override void CancelPendingFlush() => _pipe.Writer.CancelPendingFlush();
        public override void Complete(Exception? exception = null) => _pipe.Writer.Complete(exception);

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            var result = await _pipe.Writer.FlushAsync(cancellationToken);
            if (!_closed)
            {
                // Nobody reads this pipe: drop what was written so it never fills.
                var read = await _pipe.Reader.ReadAsync(cancellationToken);
                _pipe.Reader.AdvanceTo(read.Buffer.End);
            }
            return result;
        }
    }
}
