using System.IO.Pipelines;
using System.Text;
using Gateway.Generation;
using Gateway.Grpc.Tensors;
using Gateway.OpenAi;
using Gateway.Text;
using Gateway.Triton.Contracts;
using Gateway.Triton.Wire;
using Google.Protobuf;
using Triton.Inference;
using Xunit.Abstractions;

namespace Gateway.Tests.Performance;

/// <summary>
/// Bytes the gateway allocates per relayed token on its streaming hot path, without the network:
/// FT response decoding → incremental detokenizer → stop-string matcher → delta → OpenAI SSE frame
/// (the stages of <see cref="GenerationStream"/>'s per-response processing and the SSE loop of the
/// completions endpoint). The responses themselves are built before measuring: Grpc allocates
/// those per message and they are not the gateway's.
/// </summary>
public sealed class StreamingAllocationTests(ITestOutputHelper output)
{
    private const int Tokens = 2_000;
    private static readonly int[] Prompt = [464, 2068, 7586, 21831, 318];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RelayingTokens_AllocatesAtMostAFewBytesPerToken(bool withStopString)
    {
        var tokenizer = new TextTokenizers().Get(TextTokenizers.Gpt2);
        var ids = Text(tokenizer);
        var responses = Responses(ids);
        // Warm up (JIT, pools, first-use caches) with a full pass, then measure a second one.
        await RelayAsync(tokenizer, ids, responses, withStopString);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var relayed = await RelayAsync(tokenizer, ids, responses, withStopString);
        var perToken = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)Tokens;
        output.WriteLine($"stop string: {withStopString}; {perToken:0.0} bytes allocated per token ({relayed} bytes of SSE written)");

        Assert.True(relayed > Tokens * 20, "the SSE frames were not written");
        // Generous: the per-stream objects (decoder, detokenizer, matcher, writer) spread over the tokens.
        Assert.True(perToken < 16, $"{perToken:0.0} bytes per token on the streaming hot path");
    }

    [Theory]
    [InlineData("Hello")]
    [InlineData(" \"quoted\" \\ back\nslash\t<tag>&'")]
    [InlineData("café ünïcödé 🦊 \u2028")]
    [InlineData("")]
    public async Task DeltaFrame_WritesTheSameBytesAsSerialisingTheChunk(string text)
    {
        var choice = new TextChoice { Index = 0, Text = SseWriter.TextPlaceholder };
        var chunk = new TextCompletion { Id = "cmpl-1", Created = 1700000000, Model = "gpt-j-6b", Choices = [choice] };
        var frame = SseWriter.CreateFrame(chunk, OpenAiJsonContext.Default.TextCompletion);
        Assert.NotNull(frame);
        var framed = new MemoryStream();
        var framedPipe = PipeWriter.Create(framed);
        await new SseWriter(framedPipe).WriteDeltaAsync(frame, text, default);
        await framedPipe.CompleteAsync();

        choice.Text = text;
        var serialised = new MemoryStream();
        var serialisedPipe = PipeWriter.Create(serialised);
        await new SseWriter(serialisedPipe).WriteAsync(chunk, OpenAiJsonContext.Default.TextCompletion, default);
        await serialisedPipe.CompleteAsync();

        Assert.Equal(Encoding.UTF8.GetString(serialised.ToArray()), Encoding.UTF8.GetString(framed.ToArray()));
    }

    [Fact]
    public void CreateFrame_PlaceholderTwice_FallsBackToSerialising()
    {
        var chunk = new TextCompletion { Id = SseWriter.TextPlaceholder, Created = 1, Model = "m", Choices = [new TextChoice { Index = 0, Text = SseWriter.TextPlaceholder }] };
        Assert.Null(SseWriter.CreateFrame(chunk, OpenAiJsonContext.Default.TextCompletion));
    }

    /// <summary>The hot path for one stream of <see cref="Tokens"/> tokens, one response per token.</summary>
    private static async Task<long> RelayAsync(ITextTokenizer tokenizer, int[] ids, byte[][] responses, bool withStopString)
    {
        var contract = new FasterTransformerContract();
        var decoder = contract.CreateDecoder(new TritonGenerationInput("r", "fastertransformer", "", Prompt, Tokens, new SamplingParameters(), [], 50255, 50256, 0));
        var detokenizer = tokenizer.CreateDetokenizer();
        // A stop string that never occurs: the matcher must hold back and release text on every token.
        var stops = new StopStringMatcher(withStopString ? ["\nUser: never"] : []);
        var counter = new CountingStream();
        var pipe = PipeWriter.Create(counter);
        var sse = new SseWriter(pipe);
        var decoded = new StringBuilder();
        var text = new StringBuilder();
        var choice = new TextChoice { Index = 0, Text = SseWriter.TextPlaceholder };
        var chunk = new TextCompletion { Id = "cmpl-1", Created = 1, Model = "gpt-j-6b", Choices = [choice] };
        var frame = SseWriter.CreateFrame(chunk, OpenAiJsonContext.Default.TextCompletion);
        Assert.NotNull(frame);
        var delta = new char[64];
        var output = new TritonOutput();
        foreach (var message in responses)
        {
            // As the call's marshaller reads it off the wire: into a pooled response, read in place.
            var response = TritonResponse.Read(message);
            output.Clear();
            decoder.Decode(response, output);
            response.Return();
            foreach (var id in output.Tokens)
            {
                detokenizer.Append(id, decoded);
                foreach (var c in decoded.GetChunks())
                {
                    stops.Process(c.Span, text);
                }
                decoded.Clear();
            }
            if (text.Length > 0)
            {
                // As GenerationStream hands a delta over: copied into its reused buffer, then framed.
                var length = text.Length;
                if (length > delta.Length)
                {
                    delta = new char[length * 2];
                }
                text.CopyTo(0, delta, length);
                text.Clear();
                await sse.WriteDeltaAsync(frame, delta.AsSpan(0, length), default);
            }
        }
        await pipe.CompleteAsync();
        Assert.Equal(Tokens, ids.Length);
        return counter.Written;
    }

    private static int[] Text(ITextTokenizer tokenizer)
    {
        var text = new StringBuilder();
        while (tokenizer.CountTokens(text.ToString()) < Tokens)
        {
            text.Append("The quick brown fox jumps over the lazy dog, and the café’s owner says “ünïcödé” 🦊 is fine. ");
        }
        return [.. tokenizer.Encode(text.ToString()).Take(Tokens)];
    }

    /// <summary>Cumulative FT responses (prompt + every token so far), one new token each, serialized as on the wire.</summary>
    private static byte[][] Responses(int[] ids)
    {
        var responses = new byte[ids.Length][];
        var sequence = new uint[Prompt.Length + ids.Length];
        for (var i = 0; i < Prompt.Length; i++)
        {
            sequence[i] = (uint)Prompt[i];
        }
        for (var t = 0; t < ids.Length; t++)
        {
            sequence[Prompt.Length + t] = (uint)ids[t];
            var length = Prompt.Length + t + 1;
            var response = new ModelInferResponse { ModelName = "fastertransformer", Id = "r" };
            var outputIds = new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = TensorDataTypes.UInt32 };
            outputIds.Shape.Add([1, 1, length]);
            var sequenceLength = new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = TensorDataTypes.UInt32 };
            sequenceLength.Shape.Add([1, 1]);
            response.Outputs.Add(outputIds);
            response.Outputs.Add(sequenceLength);
            response.RawOutputContents.Add(TensorCodec.EncodeUInt32(sequence.AsSpan(0, length).ToArray()));
            response.RawOutputContents.Add(TensorCodec.EncodeUInt32([(uint)length]));
            response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = t == ids.Length - 1 };
            responses[t] = new ModelStreamInferResponse { InferResponse = response }.ToByteArray();
        }
        return responses;
    }

    /// <summary>Counts what is written; completes synchronously like a socket with room to spare.</summary>
    private sealed class CountingStream : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Written += count;
        public override void Write(ReadOnlySpan<byte> buffer) => Written += buffer.Length;
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Written += buffer.Length;
            return ValueTask.CompletedTask;
        }
        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
