using LLama.Native;
using Microsoft.Extensions.Logging.Abstractions;
using TritonEmulator.Models.Vllm;

namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>The engine's llama.cpp path against an independent C# forward pass of the same weights.</summary>
public sealed class LlamaLogitsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tiny-llama-").FullName;

    [Fact]
    public void Logits_OfTinyModel_MatchReferenceForwardPass()
    {
        var tiny = TinyLlama.Create();
        var path = Path.Combine(_directory, "tiny.gguf");
        tiny.WriteGguf(path);
        using var model = LlamaModel.Load(path, contextSize: 0, defaultContextCap: 4096, maxContexts: 1, threads: 2, NullLogger.Instance);
        var tokens = model.Tokenize("Hello, world: abc xyz 42!");
        Assert.Equal(TinyLlama.Bos, (int)tokens[0]);

        var context = model.Context;
        var sequence = model.RentSequence();
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Length; i++)
        {
            batch.Add(tokens[i], i, sequence, logits: true);
        }
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));

        var expected = ReferenceForwardPass.Logits(tiny, [.. tokens.Select(static t => (int)t)]);
        var largest = 0.0;
        for (var position = 0; position < tokens.Length; position++)
        {
            var actual = context.NativeHandle.GetLogitsIth(position);
            Assert.Equal(TinyLlama.Vocab, actual.Length);
            for (var token = 0; token < TinyLlama.Vocab; token++)
            {
                var difference = Math.Abs(actual[token] - expected[position][token]);
                largest = Math.Max(largest, difference);
                Assert.True(difference <= 1e-2,
                    $"position {position} token {token}: llama.cpp {actual[token]} vs reference {expected[position][token]}");
            }
        }
        // The blocks shape the logits: the two "l" of "Hello" (same token, other position and past) differ.
        var first = Enumerable.Range(0, tokens.Length - 1).First(i => (int)tokens[i] == (int)tokens[i + 1]);
        var spread = 0.0;
        for (var token = 0; token < TinyLlama.Vocab; token++)
        {
            spread = Math.Max(spread, Math.Abs(expected[first][token] - expected[first + 1][token]));
        }
        Assert.True(spread > 0.1, $"the transformer blocks barely change the logits ({spread})");
        Console.WriteLine($"largest logit difference {largest:E2}, same-token spread {spread:F3}");
        model.ReturnSequence(sequence);
    }

    [Fact]
    public void Logits_OfSequencesDecodedTogetherInOneBatch_EachMatchItsOwnReferenceForwardPass()
    {
        var tiny = TinyLlama.Create();
        var path = Path.Combine(_directory, "tiny.gguf");
        tiny.WriteGguf(path);
        using var model = LlamaModel.Load(path, contextSize: 0, defaultContextCap: 4096, maxContexts: 2, threads: 2, NullLogger.Instance);
        var context = model.Context;
        var batch = new LLamaBatch();
        var a = model.RentSequence();
        var b = model.RentSequence();
        Assert.NotEqual(a, b);
        var aTokens = model.Tokenize("Hello, world: abc xyz 42!").Select(static t => (int)t).ToList();
        var bTokens = model.Tokenize("the quick brown fox").Select(static t => (int)t).ToList();

        // Step 1: both prompts in one decode; step 2: one more token of each (as generation goes on).
        var aIndex = AddAll(batch, aTokens, 0, a);
        var bIndex = AddAll(batch, bTokens, 0, b);
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        AssertMatches(context, aIndex, ReferenceForwardPass.Logits(tiny, aTokens), 0);
        AssertMatches(context, bIndex, ReferenceForwardPass.Logits(tiny, bTokens), 0);

        batch.Clear();
        aTokens.Add(TinyLlama.Bos + 5);
        bTokens.Add(TinyLlama.Bos + 9);
        var aNext = batch.Add(aTokens[^1], aTokens.Count - 1, a, logits: true);
        var bNext = batch.Add(bTokens[^1], bTokens.Count - 1, b, logits: true);
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        AssertMatches(context, [aNext], ReferenceForwardPass.Logits(tiny, aTokens), aTokens.Count - 1);
        AssertMatches(context, [bNext], ReferenceForwardPass.Logits(tiny, bTokens), bTokens.Count - 1);

        // A request ends: its sequence id comes back empty, and the next prompt on it sees nothing of the old one.
        model.ReturnSequence(a);
        var c = model.RentSequence();
        Assert.Equal(a, c);
        batch.Clear();
        var cTokens = model.Tokenize("xyz").Select(static t => (int)t).ToList();
        var cIndex = AddAll(batch, cTokens, 0, c);
        bTokens.Add(TinyLlama.Bos + 3);
        var bLast = batch.Add(bTokens[^1], bTokens.Count - 1, b, logits: true);
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        AssertMatches(context, cIndex, ReferenceForwardPass.Logits(tiny, cTokens), 0);
        AssertMatches(context, [bLast], ReferenceForwardPass.Logits(tiny, bTokens), bTokens.Count - 1);
        model.ReturnSequence(b);
        model.ReturnSequence(c);
    }

    private static int[] AddAll(LLamaBatch batch, IReadOnlyList<int> tokens, int start, LLamaSeqId sequence)
    {
        var indices = new int[tokens.Count - start];
        for (var i = start; i < tokens.Count; i++)
        {
            indices[i - start] = batch.Add((LLamaToken)tokens[i], i, sequence, logits: true);
        }
        return indices;
    }

    /// <summary>The logits at batch rows <paramref name="indices"/> are the reference's from position <paramref name="firstPosition"/> on.</summary>
    private static void AssertMatches(LLama.LLamaContext context, int[] indices, double[][] expected, int firstPosition)
    {
        for (var i = 0; i < indices.Length; i++)
        {
            var actual = context.NativeHandle.GetLogitsIth(indices[i]);
            var position = firstPosition + i;
            for (var token = 0; token < TinyLlama.Vocab; token++)
            {
                var difference = Math.Abs(actual[token] - expected[position][token]);
                Assert.True(difference <= 1e-2,
                    $"position {position} token {token}: llama.cpp {actual[token]} vs reference {expected[position][token]}");
            }
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
