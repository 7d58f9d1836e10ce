using LLama;
using LLama.Exceptions;
using LLama.Native;
using LLama.Sampling;
using Microsoft.Extensions.Logging;
using TritonEmulator.Models.Text;
using TritonEmulator.Models.Vllm;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.TensorRtLlm;

/// <summary>
/// The <c>tensorrt_llm</c> model on llama.cpp, when <c>gpt_model_path</c> names a GGUF file (or a folder
/// holding one) instead of a TensorRT engine: one llama.cpp context whose KV cache holds the engine's
/// paged KV capacity (<c>max_tokens_in_paged_kv_cache</c>, shared by all sequences) and one sequence per
/// row of the batch (<c>max_batch_size</c>). Every in-flight iteration is one llama.cpp decode of each
/// running row's next token or prompt chunk; each row then samples from its own logits.
/// </summary>
internal sealed class TensorRtLlmLlamaEngine : IDisposable
{
    private readonly LLamaBatch _batch = new();

    private TensorRtLlmLlamaEngine(LlamaModel model, string path)
    {
        Model = model;
        Path = path;
    }

    public LlamaModel Model { get; }

    public string Path { get; }

    public static TensorRtLlmLlamaEngine Load(string path, TensorRtLlmEngineSettings engine, int rows, int? threads, ILogger logger)
    {
        if (rows > VllmModelLoader.MaxSequences)
        {
            throw new ModelLoadException($"max_batch_size {rows} is more than llama.cpp's {VllmModelLoader.MaxSequences} sequences per context");
        }
        LlamaNative.UseLogger(logger);
        try
        {
            var model = LlamaModel.Load(path, engine.MaxSequenceLength, engine.MaxSequenceLength, rows, threads, logger,
                totalKvTokens: (long)engine.MaxBlocks * engine.TokensPerBlock);
            return new TensorRtLlmLlamaEngine(model, path);
        }
        catch (Exception exception) when (exception is LoadWeightsFailedException or RuntimeError or IOException or ArgumentException)
        {
            throw new ModelLoadException($"failed to load GGUF file '{path}': {exception.Message}");
        }
    }

    /// <summary>One decode for the iteration: every running row's tokens on its own sequence, in one batch.</summary>
    public void Execute(IReadOnlyList<IScheduledWork> works)
    {
        _batch.Clear();
        for (var i = 0; i < works.Count; i++)
        {
            ((TensorRtLlmWork)works[i]).Prepare(_batch);
        }
        if (_batch.TokenCount == 0)
        {
            return;
        }
        var result = Model.Context.Decode(_batch);
        if (result != DecodeResult.Ok)
        {
            throw new InferenceException(InferenceErrorCode.Internal, $"Encountered an error in forwardAsync function: llama.cpp decode failed ({result})", FailureReason.Backend);
        }
    }

    /// <param name="grammar">GBNF (root rule <c>root</c>) from guided decoding; null when the row is free.</param>
    public ITensorRtLlmSampler CreateSampler(SamplingSettings settings, ulong seed, IReadOnlyList<int[]> badWords, string? grammar = null) =>
        new LlamaRowSampler(Model, new TensorRtLlmSamplingPipeline(settings, seed, Model.ContextSize, grammar), badWords);

    public void Dispose() => Model.Dispose();
}

/// <summary>Where a row's next token comes from: the timing engine's token model or llama.cpp.</summary>
internal interface ITensorRtLlmSampler
{
    /// <summary>Adds the row's tokens for this iteration to a shared llama.cpp batch (nothing on the timing engine).</summary>
    void Prepare(LLamaBatch batch, ReadOnlySpan<uint> ids, int promptLength);

    /// <summary>
    /// The next token after <paramref name="ids"/> (the prompt is the first <paramref name="promptLength"/>),
    /// never <paramref name="suppressed"/> (-1 for none); false when this iteration produced none (a prompt chunk).
    /// </summary>
    bool TryNext(ReadOnlySpan<uint> ids, int promptLength, int suppressed, out int token, out float logProbability);

    /// <summary>Gives back what the row holds (its llama.cpp sequence); called once the row is done, however it ends.</summary>
    void Release();
}

/// <summary>The timing engine's row: the shipped token model, one token per iteration.</summary>
internal sealed class TokenModelSampler(TokenSampler sampler) : ITensorRtLlmSampler
{
    public void Prepare(LLamaBatch batch, ReadOnlySpan<uint> ids, int promptLength)
    {
    }

    public bool TryNext(ReadOnlySpan<uint> ids, int promptLength, int suppressed, out int token, out float logProbability)
    {
        token = sampler.Next(ids, promptLength, suppressed, out logProbability);
        return true;
    }

    public void Release()
    {
    }
}

/// <summary>
/// A guided row on the timing engine: the ids of a schema-valid instance, one per iteration, then
/// the end id (the instance was written for the guide, there are no logits to constrain).
/// </summary>
internal sealed class ScriptedSampler(int[] ids, int endId) : ITensorRtLlmSampler
{
    private int _next;

    public void Prepare(LLamaBatch batch, ReadOnlySpan<uint> sequence, int promptLength)
    {
    }

    public bool TryNext(ReadOnlySpan<uint> sequence, int promptLength, int suppressed, out int token, out float logProbability)
    {
        token = _next < ids.Length ? ids[_next++] : endId;
        logProbability = 0f;
        return true;
    }

    public void Release()
    {
    }
}

/// <summary>
/// A row on llama.cpp: borrows a sequence on its first iteration, decodes its prompt in chunks, then
/// one token per iteration; bad words and (before <c>min_tokens</c>) the end id are masked in the
/// logits before the sampler chain runs.
/// </summary>
internal sealed class LlamaRowSampler(LlamaModel model, TensorRtLlmSamplingPipeline pipeline, IReadOnlyList<int[]> badWords) : ITensorRtLlmSampler
{
    private LLamaSeqId? _sequence;
    private int _prefilled;
    private int _logitsIndex = -1;
    private bool _released;

    public void Prepare(LLamaBatch batch, ReadOnlySpan<uint> ids, int promptLength)
    {
        _logitsIndex = -1;
        if (_released)
        {
            return;
        }
        _sequence ??= model.RentSequence();
        var sequence = _sequence.Value;
        if (_prefilled < promptLength)
        {
            var count = Math.Min(model.PrefillChunk, promptLength - _prefilled);
            for (var i = 0; i < count; i++)
            {
                var position = _prefilled + i;
                var last = position == promptLength - 1;
                var index = batch.Add((LLamaToken)(int)ids[position], position, sequence, last);
                if (last)
                {
                    _logitsIndex = index;
                }
            }
            _prefilled += count;
            return;
        }
        _logitsIndex = batch.Add((LLamaToken)(int)ids[^1], ids.Length - 1, sequence, true);
    }

    public bool TryNext(ReadOnlySpan<uint> ids, int promptLength, int suppressed, out int token, out float logProbability)
    {
        token = 0;
        logProbability = 0f;
        if (_logitsIndex < 0)
        {
            return false;
        }
        var index = _logitsIndex;
        _logitsIndex = -1;
        var logits = model.Context.NativeHandle.GetLogitsIth(index);
        if (suppressed >= 0 && suppressed < logits.Length)
        {
            logits[suppressed] = float.NegativeInfinity;
        }
        foreach (var word in badWords)
        {
            if (word.Length == 0 || word[^1] < 0 || word[^1] >= logits.Length || word.Length - 1 > ids.Length)
            {
                continue;
            }
            var matches = true;
            for (var i = 0; i < word.Length - 1 && matches; i++)
            {
                matches = ids[ids.Length - (word.Length - 1) + i] == (uint)word[i];
            }
            if (matches)
            {
                logits[word[^1]] = float.NegativeInfinity;
            }
        }
        // llama_sampler_sample also accepts the token into the chain, so the penalties count it from now on.
        token = (int)pipeline.Sample(model.Context.NativeHandle, index);
        // log p(token) under the model's distribution after the masks (before temperature and filters).
        logProbability = VllmWork.LogSoftmax(logits, token);
        return true;
    }

    public void Release()
    {
        if (_released)
        {
            return;
        }
        _released = true;
        pipeline.Dispose();
        if (_sequence is { } sequence)
        {
            model.ReturnSequence(sequence);
        }
    }
}

/// <summary>
/// TensorRT-LLM's sampling on llama.cpp's samplers: repetition (multiplicative), presence and frequency
/// (additive) penalties over the generated tokens, then temperature, top-k and top-p, then a seeded draw;
/// greedy when top-k and top-p are both 0 (TensorRT-LLM's default), top-k is 1 or the temperature ~0.
/// Guided decoding checks each drawn token against llama.cpp's grammar sampler (<see cref="Guided.GrammarGate"/>).
/// </summary>
internal sealed class TensorRtLlmSamplingPipeline(SamplingSettings settings, ulong seed, int penaltyWindow, string? grammar = null) : Guided.GuidedSamplingPipeline
{
    protected override SafeLLamaSamplerChainHandle? CreateGrammar(SafeLLamaContextHandle context)
    {
        if (grammar is null)
        {
            return null;
        }
        var guide = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        guide.AddGrammar(context.ModelHandle, grammar, "root");
        return guide;
    }

    protected override SafeLLamaSamplerChainHandle CreateChain(SafeLLamaContextHandle context)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        var repetition = settings.RepetitionPenalty > 0f ? settings.RepetitionPenalty : 1f;
        if (settings.PresencePenalty != 0 || settings.FrequencyPenalty != 0 || repetition != 1)
        {
            chain.AddPenalties(penaltyWindow, repetition, settings.FrequencyPenalty, settings.PresencePenalty);
        }
        if (settings.IsGreedy)
        {
            chain.AddGreedySampler();
            return chain;
        }
        chain.AddTemperature(settings.Temperature <= 0f ? 1f : settings.Temperature);
        if (settings.TopK > 0)
        {
            chain.AddTopK((int)settings.TopK);
        }
        if (settings.TopP is > 0f and < 1f)
        {
            chain.AddTopP(settings.TopP, 1);
        }
        chain.AddDistributionSampler(unchecked((uint)(seed ^ (seed >> 32))));
        return chain;
    }
}
