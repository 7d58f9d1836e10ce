using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Models;

public sealed class FasterTransformerStreamTests : IAsyncLifetime
{
    private TestEmulator _emulator = null!;

    public async Task InitializeAsync() => _emulator = await TestEmulator.StartAsync([FasterTransformer()], profile: "zero-latency");

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    private async Task<List<ModelInferResponse>> RunAsync(ModelInferRequest request)
    {
        await using var stream = new StreamRecorder(_emulator.Client);
        await stream.SendAsync(request);
        await stream.WaitUntilAsync(s => s.IsFinished(request.Id));
        Assert.Null(stream.ErrorFor(request.Id));
        return stream.ResponsesFor(request.Id);
    }

    [Fact]
    public async Task Stream_EachResponseExtendsThePreviousByOneToken_LastIsFinal()
    {
        var responses = await RunAsync(Request("a", outputLength: 12));

        Assert.Equal(12, responses.Count);
        var previous = Prompt;
        foreach (var response in responses)
        {
            var ids = OutputIds(response);
            Assert.Equal(previous.Length + 1, ids.Length);
            Assert.Equal(previous, ids[..previous.Length]);
            previous = ids;
        }
        Assert.All(responses[..^1], r => Assert.False(IsFinal(r)));
        Assert.True(IsFinal(responses[^1]));
        Assert.All(responses, r => Assert.Equal("a", r.Id));
        Assert.Contains(responses[0].Outputs, o => o.Name == "cum_log_probs");
        Assert.Contains(responses[0].Outputs, o => o.Name == "output_log_probs");
        Assert.Equal([1L, 1L, Prompt.Length + 1L], responses[0].Outputs.Single(o => o.Name == "output_ids").Shape);
    }

    [Fact]
    public async Task Stream_WithEmptyFinalResponse_SendsAnEmptyFinalAfterTheTokens()
    {
        var responses = await RunAsync(Request("e", outputLength: 4, emptyFinal: true));

        Assert.Equal(5, responses.Count);
        Assert.All(responses[..4], r => Assert.False(IsFinal(r)));
        Assert.Equal(Prompt.Length + 4, OutputIds(responses[3]).Length);
        Assert.True(IsFinal(responses[4]));
        Assert.Empty(responses[4].Outputs);
        Assert.Equal("e", responses[4].Id);
    }

    [Fact]
    public async Task Stream_SameSeed_SameTokens_DifferentSeeds_Differ()
    {
        var first = OutputIds((await RunAsync(Request("s1", outputLength: 20, seed: 42)))[^1]);
        var second = OutputIds((await RunAsync(Request("s2", outputLength: 20, seed: 42)))[^1]);
        Assert.Equal(first, second);

        var distinct = new HashSet<string>();
        for (ulong seed = 1; seed <= 6; seed++)
        {
            distinct.Add(string.Join(',', OutputIds((await RunAsync(Request($"d{seed}", outputLength: 20, seed: seed)))[^1])));
        }
        Assert.True(distinct.Count > 1, "different seeds should not all give the same text");
    }

    [Fact]
    public async Task Stream_StopsAtEndId_AndIncludesIt()
    {
        var free = OutputIds((await RunAsync(Request("free", outputLength: 20)))[^1]);
        var end = free[Prompt.Length + 3];
        var firstAt = Array.IndexOf(free, end, Prompt.Length);

        var responses = await RunAsync(Request("end", outputLength: 20, endId: end));

        var ids = OutputIds(responses[^1]);
        Assert.True(IsFinal(responses[^1]));
        Assert.Equal(firstAt + 1, ids.Length);
        Assert.Equal(end, ids[^1]);
    }

    [Fact]
    public async Task Stream_StopsAfterStopWord()
    {
        var free = OutputIds((await RunAsync(Request("free", outputLength: 20)))[^1]);
        int[] stop = [(int)free[Prompt.Length + 4], (int)free[Prompt.Length + 5]];

        var responses = await RunAsync(Request("stop", outputLength: 20, stopWords: [stop, [60001]]));

        var ids = OutputIds(responses[^1]);
        Assert.True(ids.Length <= Prompt.Length + 6);
        Assert.Equal((uint)stop[0], ids[^2]);
        Assert.Equal((uint)stop[1], ids[^1]);
    }

    [Fact]
    public async Task Stream_StopsAtRequestOutputLen()
    {
        var responses = await RunAsync(Request("len", outputLength: 7));
        Assert.Equal(Prompt.Length + 7, OutputIds(responses[^1]).Length);
    }

    [Fact]
    public async Task Stream_BadWordsAreNeverEmitted()
    {
        var free = OutputIds((await RunAsync(Request("free", outputLength: 20, topK: 1)))[^1]);
        var banned = free[Prompt.Length];

        var ids = OutputIds((await RunAsync(Request("bad", outputLength: 20, topK: 1, badWords: [[(int)banned]])))[^1]);

        Assert.DoesNotContain(banned, ids[Prompt.Length..]);
    }

    [Fact]
    public async Task Stream_ManyRequestsOnOneStream_MatchedById()
    {
        await using var stream = new StreamRecorder(_emulator.Client);
        for (var i = 0; i < 5; i++)
        {
            await stream.SendAsync(Request($"r{i}", outputLength: (uint)(3 + i)));
        }
        await stream.WaitUntilAsync(s => Enumerable.Range(0, 5).All(i => s.IsFinished($"r{i}")));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(3 + i, stream.ResponsesFor($"r{i}").Count);
        }
    }

    [Fact]
    public async Task Stream_BeamWidthTwo_IsAClearErrorAndTheStreamStaysOpen()
    {
        await using var stream = new StreamRecorder(_emulator.Client);
        var beam = Request("beam");
        Add(beam, "beam_width", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32([2]), 1, 1);
        await stream.SendAsync(beam);
        await stream.SendAsync(Request("ok", outputLength: 2));
        await stream.WaitUntilAsync(s => s.IsFinished("beam") && s.IsFinished("ok"));

        Assert.Contains("beam_width 2 is not supported", stream.ErrorFor("beam"));
        Assert.Equal(2, stream.ResponsesFor("ok").Count);
    }

    [Fact]
    public async Task Stream_TypedContents_AreAcceptedLikeRaw()
    {
        var raw = OutputIds((await RunAsync(Request("raw", outputLength: 5)))[^1]);
        var typed = Request("typed", outputLength: 5);
        for (var i = 0; i < typed.Inputs.Count; i++)
        {
            var input = typed.Inputs[i];
            var bytes = typed.RawInputContents[i].Span;
            input.Contents = input.Datatype switch
            {
                "UINT32" => new InferTensorContents { UintContents = { Gateway.Grpc.Tensors.TensorCodec.DecodeUInt32(bytes) } },
                "UINT64" => new InferTensorContents { Uint64Contents = { Gateway.Grpc.Tensors.TensorCodec.DecodeUInt64(bytes) } },
                _ => throw new InvalidOperationException(input.Datatype),
            };
        }
        typed.RawInputContents.Clear();

        Assert.Equal(raw, OutputIds((await RunAsync(typed))[^1]));
    }

    [Fact]
    public async Task Stream_BatchOfTwoRows_GeneratesBothRows()
    {
        var request = new ModelInferRequest { ModelName = "fastertransformer", Id = "batch" };
        uint[] ids = [464, 2068, 7586, 50256, 383, 4252, 318, 50256];
        Add(request, "input_ids", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32(ids), 2, 4);
        Add(request, "input_lengths", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32([3, 3]), 2, 1);
        Add(request, "request_output_len", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32([4, 4]), 2, 1);
        Add(request, "end_id", "UINT32", Gateway.Grpc.Tensors.TensorCodec.EncodeUInt32([60000, 60000]), 2, 1);

        var responses = await RunAsync(request);

        Assert.Equal(4, responses.Count);
        var last = responses[^1];
        Assert.Equal([2L, 1L, 7L], last.Outputs.Single(o => o.Name == "output_ids").Shape);
        Assert.Equal([7u, 7u], Gateway.Grpc.Tensors.TensorCodec.DecodeUInt32(last.RawOutputContents[1].Span));
    }
}
