using LLama.Native;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// Grammar-constrained sampling in llama.cpp's own order (its <c>common_sampler</c>): draw from the
/// free sampler chain, then ask the grammar about that one token; only when the grammar rejects it
/// are all candidates filtered by the grammar and the draw repeated on what is left. The result is
/// the same distribution as filtering first (greedy: the same token), but the grammar checks one
/// token per step instead of the whole vocabulary (32,000 on Llama), which is where a grammar-first
/// chain spends its time.
/// </summary>
internal sealed class GrammarGate(SafeLLamaSamplerChainHandle grammar) : IDisposable
{
    private readonly LLamaTokenData[] _one = new LLamaTokenData[1];
    private LLamaTokenData[] _candidates = [];

    /// <summary>Rejected draws so far (each costs one full-vocabulary grammar pass).</summary>
    public int Rejections { get; private set; }

    /// <summary>Samples the token for <paramref name="index"/>'s logits and accepts it into both chains.</summary>
    public LLamaToken Sample(SafeLLamaSamplerChainHandle free, SafeLLamaContextHandle context, int index)
    {
        var logits = context.GetLogitsIth(index);
        var token = Draw(free, logits, filtered: false);
        if (!Allows(token, logits[(int)token]))
        {
            Rejections++;
            token = Draw(free, logits, filtered: true);
        }
        grammar.Accept(token);
        free.Accept(token);
        return token;
    }

    private LLamaToken Draw(SafeLLamaSamplerChainHandle free, ReadOnlySpan<float> logits, bool filtered)
    {
        if (_candidates.Length < logits.Length)
        {
            _candidates = new LLamaTokenData[logits.Length];
        }
        var array = LLamaTokenDataArray.Create(logits, _candidates);
        using var pinned = LLamaTokenDataArrayNative.Create(array, out var native);
        if (filtered)
        {
            grammar.Apply(ref native);
        }
        free.Apply(ref native);
        return native.Data[(int)native.Selected].ID;
    }

    private bool Allows(LLamaToken token, float logit)
    {
        _one[0] = new LLamaTokenData(token, logit, 0);
        var array = new LLamaTokenDataArray(_one, isSorted: false);
        using var pinned = LLamaTokenDataArrayNative.Create(array, out var native);
        grammar.Apply(ref native);
        return !float.IsNegativeInfinity(native.Data[0].Logit);
    }

    public void Dispose() => grammar.Dispose();
}
