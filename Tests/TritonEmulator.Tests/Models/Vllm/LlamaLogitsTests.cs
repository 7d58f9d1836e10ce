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

        var context = model.Rent();
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Length; i++)
        {
            batch.Add(tokens[i], i, LLamaSeqId.Zero, logits: true);
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
        model.Return(context);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
