using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Grpc.Tensors;
using Gateway.OpenAi;
using Gateway.Tests.Functional;
using Gateway.Text;
using Gateway.Triton.Contracts;
using Triton.Inference;
using Xunit.Abstractions;

namespace Gateway.Tests.Performance;

/// <summary>
/// Bytes allocated per relayed token on the real streaming path, in process: a scripted Triton
/// (real gRPC over loopback) streams FT cumulative responses built before the measurement, the
/// real gateway (gRPC client, FT decoding, detokenizer, stop strings, OpenAI SSE through Kestrel)
/// relays them and the test reads the SSE bytes into one reused buffer. The figure is the
/// difference between a long and a short stream, so what each request costs once (routing,
/// headers, the per-stream objects) cancels out and what is left is per token. It covers the
/// whole process, the scripted server's gRPC writes and the client's reads included, which is why
/// the class runs alone (<see cref="AllocationCollection"/>): another test's allocations would count.
/// </summary>
[Collection(AllocationCollection.Name)]
public sealed class StreamingAllocationTests(ITestOutputHelper output)
{
    private const int ShortStream = 100;
    private const int LongStream = 1_000; // gpt-j-6b's MaxOutputTokens is 1024
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RelayingTokens_ThroughTheGateway_AllocatesAtMostAFewHundredBytesPerToken(bool withStopString)
    {
        var tokenizer = new TextTokenizers().Get(TextTokenizers.Gpt2);
        var ids = Text(tokenizer);
        ModelStreamInferResponse[] responses = [];
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            var count = (int)call.InputIds("request_output_len")[0];
            // Flushed in bursts of 50, so that how many responses one read of the gateway finds (and
            // with it how many of its awaits complete at once) depends little on thread timing.
            for (var i = 0; i < count; i++)
            {
                await call.SendPrebuiltAsync(responses[i], flush: i % 50 == 49 || i == count - 1);
            }
            await call.SendEmptyFinalAsync();
        });
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        // The first request tells the prompt ids the gateway sends (the cumulative responses start
        // with them); then every response is built, and a full pass warms up JIT, pools and caches.
        responses = Responses([], ids.AsSpan(0, 1));
        await StreamAsync(gateway, 1, withStopString);
        responses = Responses(triton.Calls.Single().InputIds("input_ids"), ids);
        await StreamAsync(gateway, LongStream, withStopString);

        // Background work of the process (timers, metrics, a GC's own bookkeeping) allocates too:
        // the least of three pairs is the stream's own figure.
        var perToken = double.MaxValue;
        for (var pair = 0; pair < 3; pair++)
        {
            var shortBytes = await MeasureAsync(gateway, ShortStream, withStopString);
            var longBytes = await MeasureAsync(gateway, LongStream, withStopString);
            var pairPerToken = (longBytes - shortBytes) / (double)(LongStream - ShortStream);
            output.WriteLine($"stop string: {withStopString}; {pairPerToken:0.0} bytes allocated per token in the process ({shortBytes} bytes for {ShortStream} tokens, {longBytes} for {LongStream})");
            perToken = Math.Min(perToken, pairPerToken);
        }

        // About 420-460 bytes on .NET 10 (gRPC server write and client read, the gateway's decoding,
        // detokenizing and SSE, Kestrel, the test's reads). A copy of the cumulative ids per
        // response, or a message or buffer per token on the gateway's path, is far above the margin.
        Assert.True(perToken < 576, $"{perToken:0.0} bytes per token on the streaming path");
    }

    /// <summary>Allocations of the whole process for one stream of <paramref name="tokens"/> tokens.</summary>
    private static async Task<long> MeasureAsync(GatewayHost gateway, int tokens, bool withStopString)
    {
        var before = GC.GetTotalAllocatedBytes(precise: true);
        await StreamAsync(gateway, tokens, withStopString);
        return GC.GetTotalAllocatedBytes(precise: true) - before;
    }

    /// <summary>One streamed completion of <paramref name="tokens"/> tokens; the SSE bytes are read, not parsed.</summary>
    private static async Task StreamAsync(GatewayHost gateway, int tokens, bool withStopString)
    {
        // A stop string that never occurs: the matcher must hold back and release text on every token.
        var stop = withStopString ? ""","stop":["\nUser: never"]""" : "";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($$"""{"model":"gpt-j-6b","prompt":"x","max_tokens":{{tokens}},"stream":true{{stop}}}""", Encoding.UTF8, "application/json"),
        };
        using var response = await gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Wait);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        var tail = new byte[Done.Length];
        var length = 0;
        using var timeout = new CancellationTokenSource(Wait);
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer, timeout.Token)) > 0)
            {
                length += read;
                // Keep the last bytes seen: the stream must end with the [DONE] frame.
                var last = buffer.AsSpan(0, read);
                if (last.Length >= tail.Length)
                {
                    last[^tail.Length..].CopyTo(tail);
                }
                else
                {
                    tail.AsSpan(last.Length).CopyTo(tail);
                    last.CopyTo(tail.AsSpan(tail.Length - last.Length));
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        Assert.True(tail.AsSpan().SequenceEqual(Done), "the stream did not end with [DONE]: " + Encoding.UTF8.GetString(tail));
        Assert.True(length > tokens * 20, "the SSE frames were not written");
    }

    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

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

    private static int[] Text(ITextTokenizer tokenizer)
    {
        var text = new StringBuilder();
        while (tokenizer.CountTokens(text.ToString()) < LongStream)
        {
            text.Append("The quick brown fox jumps over the lazy dog, and the café’s owner says “ünïcödé” 🦊 is fine. ");
        }
        return [.. tokenizer.Encode(text.ToString()).Take(LongStream)];
    }

    /// <summary>Cumulative FT responses (prompt + every token so far), one new token each, none final (an empty final follows).</summary>
    private static ModelStreamInferResponse[] Responses(ReadOnlySpan<uint> prompt, ReadOnlySpan<int> ids)
    {
        var responses = new ModelStreamInferResponse[ids.Length];
        var sequence = new uint[prompt.Length + ids.Length];
        prompt.CopyTo(sequence);
        for (var t = 0; t < ids.Length; t++)
        {
            sequence[prompt.Length + t] = (uint)ids[t];
            var length = prompt.Length + t + 1;
            var response = new ModelInferResponse { ModelName = "fastertransformer", Id = "r" };
            var outputIds = new ModelInferResponse.Types.InferOutputTensor { Name = "output_ids", Datatype = TensorDataTypes.UInt32 };
            outputIds.Shape.Add([1, 1, length]);
            var sequenceLength = new ModelInferResponse.Types.InferOutputTensor { Name = "sequence_length", Datatype = TensorDataTypes.UInt32 };
            sequenceLength.Shape.Add([1, 1]);
            response.Outputs.Add(outputIds);
            response.Outputs.Add(sequenceLength);
            response.RawOutputContents.Add(TensorCodec.EncodeUInt32(sequence.AsSpan(0, length).ToArray()));
            response.RawOutputContents.Add(TensorCodec.EncodeUInt32([(uint)length]));
            response.Parameters[TritonContracts.FinalResponse] = new InferParameter { BoolParam = false };
            responses[t] = new ModelStreamInferResponse { InferResponse = response };
        }
        return responses;
    }
}

/// <summary>Tests that measure the whole process's allocations run alone, after the others.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    public const string Name = "Allocation measurements";
}
