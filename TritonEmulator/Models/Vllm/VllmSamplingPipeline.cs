using LLama.Native;
using LLama.Sampling;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// llama.cpp samplers in vLLM's order: presence / frequency / repetition penalties over the
/// generated tokens, then temperature, then top-k, top-p and min-p on the tempered distribution,
/// then a seeded draw; a temperature below 1e-5 is greedy, as in vLLM. (LLamaSharp's default
/// pipeline filters before the temperature, which makes a high temperature nearly greedy.)
/// A structured-output request checks each drawn token against llama.cpp's grammar sampler and
/// redraws from the grammar's candidates only when it is rejected (<see cref="Guided.GrammarGate"/>).
/// </summary>
internal sealed class VllmSamplingPipeline(SamplingParameters sampling, int penaltyWindow) : Guided.GuidedSamplingPipeline
{
    private const float GreedyBelow = 1e-5f;

    protected override SafeLLamaSamplerChainHandle? CreateGrammar(SafeLLamaContextHandle context)
    {
        if (sampling.Guide is not { } guide)
        {
            return null;
        }
        var grammar = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        if (guide.Triggers is { Count: > 0 })
        {
            // A structural tag: free until a trigger appears in the output, the grammar from it on.
            Guided.LazyGrammar.Add(grammar, context.ModelHandle, guide.Grammar, "root", guide.TriggerPatterns());
        }
        else
        {
            grammar.AddGrammar(context.ModelHandle, guide.Grammar, "root");
        }
        return grammar;
    }

    protected override SafeLLamaSamplerChainHandle CreateChain(SafeLLamaContextHandle context)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        if (sampling.PresencePenalty != 0 || sampling.FrequencyPenalty != 0 || sampling.RepetitionPenalty != 1)
        {
            chain.AddPenalties(penaltyWindow, sampling.RepetitionPenalty, sampling.FrequencyPenalty, sampling.PresencePenalty);
        }
        if (sampling.Temperature < GreedyBelow)
        {
            chain.AddGreedySampler();
            return chain;
        }
        chain.AddTemperature(sampling.Temperature);
        if (sampling.TopK > 0)
        {
            chain.AddTopK(sampling.TopK);
        }
        if (sampling.TopP < 1)
        {
            chain.AddTopP(sampling.TopP, 1);
        }
        if (sampling.MinP > 0)
        {
            chain.AddMinP(sampling.MinP, 1);
        }
        var seed = sampling.Seed ?? 0;
        chain.AddDistributionSampler(unchecked((uint)(seed ^ (seed >> 32))));
        return chain;
    }
}
