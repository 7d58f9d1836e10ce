using LLama.Native;
using LLama.Sampling;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// A llama.cpp sampler chain (<see cref="BaseSamplingPipeline.CreateChain"/>: the free samplers) and,
/// when the request has a guide, its grammar in a chain of its own, asked about every drawn token
/// through <see cref="GrammarGate"/>.
/// </summary>
internal abstract class GuidedSamplingPipeline : BaseSamplingPipeline
{
    private GrammarGate? _gate;
    private SafeLLamaSamplerChainHandle? _free;
    private bool _resolved;

    /// <summary>The guide's grammar as a sampler chain, or null for free text.</summary>
    protected abstract SafeLLamaSamplerChainHandle? CreateGrammar(SafeLLamaContextHandle context);

    public override LLamaToken Sample(SafeLLamaContextHandle context, int index)
    {
        if (!_resolved)
        {
            _resolved = true;
            _gate = CreateGrammar(context) is { } grammar ? new GrammarGate(grammar) : null;
        }
        if (_gate is null)
        {
            return base.Sample(context, index);
        }
        _free ??= CreateChain(context);
        return _gate.Sample(_free, context, index);
    }

    public override void Dispose()
    {
        _gate?.Dispose();
        _free?.Dispose();
        base.Dispose();
        GC.SuppressFinalize(this);
    }
}
