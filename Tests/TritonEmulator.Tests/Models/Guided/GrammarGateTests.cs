using LLama;
using LLama.Common;
using LLama.Native;
using TritonEmulator.Models.Guided;
using TritonEmulator.Models.Vllm;
using TritonEmulator.Tests.Models.Vllm;

namespace TritonEmulator.Tests.Models.Guided;

/// <summary>
/// The gate (draw freely, check the drawn token, filter only on a rejection) against llama.cpp's
/// grammar-first chain (filter the whole vocabulary every step), on the tiny alphabet model.
/// </summary>
public sealed class GrammarGateTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("grammar-gate-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Greedy_PicksTheTokensOfTheGrammarFirstChain_AndFiltersOnlyOnRejections()
    {
        var path = Path.Combine(_directory, "tiny.gguf");
        TinyLlama.Create().WriteGguf(path);
        LlamaNative.EnsureConfigured();
        var parameters = new ModelParams(path) { ContextSize = TinyLlama.Context, BatchSize = TinyLlama.Context, GpuLayerCount = 0 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var first = weights.CreateContext(parameters);
        using var gated = weights.CreateContext(parameters);
        var grammar = JsonSchemaGrammar.FromSchema(GuidedDecodingTests.PersonSchema, compact: true);
        var model = weights.NativeHandle;

        using var grammarFirst = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        grammarFirst.AddGrammar(model, grammar, "root");
        grammarFirst.AddGreedySampler();
        using var free = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        free.AddGreedySampler();
        var check = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        check.AddGrammar(model, grammar, "root");
        using var gate = new GrammarGate(check);

        var prompt = weights.Tokenize("abc", add_bos: true, special: false, System.Text.Encoding.UTF8);
        Decode(first, prompt, 0);
        Decode(gated, prompt, 0);
        var steps = 0;
        for (var position = prompt.Length; steps < 120; steps++, position++)
        {
            var expected = grammarFirst.Sample(first.NativeHandle, -1);
            var actual = gate.Sample(free, gated.NativeHandle, -1);
            Assert.Equal(expected, actual);
            if (expected == weights.Vocab.EOS)
            {
                break;
            }
            Decode(first, [expected], position);
            Decode(gated, [actual], position);
        }

        // The model only continues the alphabet: the braces, quotes and digits came from rejections, the
        // letters inside strings were drawn freely and kept.
        Assert.InRange(gate.Rejections, 1, steps - 1);
    }

    private static void Decode(LLamaContext context, IReadOnlyList<LLamaToken> tokens, int start)
    {
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Count; i++)
        {
            batch.Add(tokens[i], start + i, LLamaSeqId.Zero, logits: i == tokens.Count - 1);
        }
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
    }
}
