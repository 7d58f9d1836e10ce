using System.Text.Json;
using Gateway.Grpc.Tensors;
using Triton.Inference;
using Microsoft.Extensions.Logging;
using TritonEmulator.Metrics;
using TritonEmulator.Models.KvCache;
using TritonEmulator.Models.Text;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.TensorRtLlm;

/// <summary>
/// TensorRT-LLM's <c>tensorrtllm</c> backend (the <c>tensorrt_llm</c> model of tensorrtllm_backend's
/// inflight_batcher_llm repository) on the timing engine: token ids in (<c>input_ids</c>,
/// <c>input_lengths</c>, <c>request_output_len</c>, sampling inputs, <c>stop_words_list</c> /
/// <c>bad_words_list</c> <c>[B, 2, N]</c>, <c>seed</c>), <c>output_ids</c> <c>[B, 1, n]</c> +
/// <c>sequence_length</c> <c>[B, 1]</c> + log-probs out. With <c>streaming</c> every engine iteration
/// sends only the new tokens; without, one response holds the whole output (the prompt in front unless
/// <c>exclude_input_in_output</c>). The end id is never part of the output; a stop word is.
/// In-flight batching over a paged KV cache: a request joins when the blocks for its prompt and all
/// its output are free (<c>guaranteed_no_evict</c>), sequences join and leave at every iteration.
/// The tokens come from the shipped token model (GPT-2 ids, GPT-J's vocabulary) on the timing engine,
/// or from llama.cpp when <c>gpt_model_path</c> names a GGUF file or a folder holding one
/// (<see cref="TensorRtLlmLlamaEngine"/>). Sampling inputs: <c>temperature</c>, <c>runtime_top_k</c>,
/// <c>runtime_top_p</c>, <c>repetition_penalty</c>, <c>presence_penalty</c>, <c>frequency_penalty</c>,
/// <c>min_tokens</c> (the end id cannot come before, default 1 as in TensorRT-LLM), <c>seed</c>;
/// <c>len_penalty</c> and <c>early_stopping</c> only act in beam search, so with beam width 1 they change
/// nothing (as in TensorRT-LLM); a <c>beam_width</c> above the configured <c>max_beam_width</c> (1) is refused.
/// </summary>
internal sealed class TensorRtLlmModel : ISelfConfiguredBackend, IBatchedExecution, IObservedBackend
{
    public const string BackendName = "tensorrtllm";
    public const string ExcludeInputParameter = "exclude_input_in_output";
    public const string ThreadsParameter = "emulator_threads";
    public const string MaxBeamWidthParameter = "max_beam_width";

    private readonly TokenLanguageModel _language;
    private readonly TritonMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly bool _decoupled;
    private readonly bool _excludeInputByDefault;
    private readonly PrefixBlockCache? _reuse;
    private readonly TensorRtLlmLlamaEngine? _llama;
    private TensorRtLlmStatistics? _statistics;

    private TensorRtLlmModel(ModelConfig config, TokenLanguageModel language, string? globalProfile, TritonMetrics metrics, TimeProvider time,
        ModelDefinition definition, ILogger logger)
    {
        _language = language;
        _metrics = metrics;
        _time = time;
        CompletedConfig = config;
        if (TensorRtLlmEngineSettings.Parameter(config, MaxBeamWidthParameter) is { } beams && beams != "1")
        {
            throw new ModelLoadException($"parameter '{MaxBeamWidthParameter}' is {beams}: the CPU engine samples one beam (max_beam_width 1)");
        }
        var profile = TimingProfile.ForModel(config, globalProfile);
        Engine = TensorRtLlmEngineSettings.FromConfig(config, profile.KvCapacityTokens);
        var v1 = TensorRtLlmEngineSettings.Parameter(config, TensorRtLlmEngineSettings.BatchingTypeParameter) is "V1" or "v1";
        Scheduling = SchedulerSettings.FromConfig(config) with { Mode = v1 ? BatchingMode.Static : BatchingMode.Inflight };
        var kvTokens = (long)Engine.MaxBlocks * Engine.TokensPerBlock;
        var gguf = GgufLocation.Find(TensorRtLlmEngineSettings.Parameter(config, TensorRtLlmEngineSettings.ModelPathParameter), definition.Directory);
        if (gguf is null)
        {
            Timing = profile with { KvCapacityTokens = kvTokens };
        }
        else
        {
            if (v1)
            {
                throw new ModelLoadException("gpt_model_type V1 (static batching) is not supported on llama.cpp: use inflight_fused_batching");
            }
            var threads = TensorRtLlmEngineSettings.Parameter(config, ThreadsParameter) is { } t
                ? int.TryParse(t, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ModelLoadException($"parameter '{ThreadsParameter}' must be a positive integer, got '{t}'")
                : (int?)null;
            _llama = TensorRtLlmLlamaEngine.Load(gguf, Engine, Scheduling.MaxBatchSize, threads, logger);
            // Real compute: the iteration costs what llama.cpp takes, no emulated GPU time or memory.
            Timing = TimingProfile.ZeroLatency with
            {
                Name = "llama.cpp-cpu",
                KvCapacityTokens = kvTokens,
                GpuMemoryTotalBytes = 0,
                WeightsBytes = 0,
                KvBytesPerToken = 0,
            };
        }
        _decoupled = config.ModelTransactionPolicy?.Decoupled == true;
        _excludeInputByDefault = TensorRtLlmEngineSettings.Parameter(config, ExcludeInputParameter) is { } exclude
            && exclude.Equals("true", StringComparison.OrdinalIgnoreCase);
        _reuse = Engine.KvCacheReuse ? new PrefixBlockCache(Engine.MaxBlocks, Engine.TokensPerBlock) : null;
    }

    public ModelConfig CompletedConfig { get; }

    public SchedulerSettings Scheduling { get; }

    public TimingProfile Timing { get; }

    public TensorRtLlmEngineSettings Engine { get; }

    /// <summary>Whether the model runs on the timing engine's emulated GPU (not on llama.cpp).</summary>
    public bool OnTimingEngine => _llama is null;

    /// <summary>The GGUF file llama.cpp runs, or null on the timing engine.</summary>
    public string? GgufPath => _llama?.Path;

    public ITextGeneration? TextGeneration => null;

    /// <summary>The <c>tensorrt_llm</c> model: on llama.cpp when <c>gpt_model_path</c> names a GGUF, else on the timing engine.</summary>
    public static TensorRtLlmModel Load(ModelDefinition definition, ModelConfig config, TokenLanguageModel language, string? globalProfile,
        TritonMetrics metrics, TimeProvider time, ILogger logger) =>
        new(config, language, globalProfile, metrics, time, definition, logger);

    public void Dispose() => _llama?.Dispose();

    public ISchedulerObserver Observe(ISchedulerObserver inner, string model, string version)
    {
        // Runtime buffers: activations for a full batch of max_seq_len tokens (GPT-J: 4096 hidden, fp16).
        var runtimeBytes = (long)Scheduling.MaxBatchSize * Engine.MaxSequenceLength * 4096 * 2;
        _statistics = new TensorRtLlmStatistics(inner, _metrics, _time, model, version, Engine, Scheduling.MaxBatchSize, runtimeBytes);
        return _statistics;
    }

    public IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled)
    {
        var label = request.Label;
        var batch = request.BatchSize;
        var inputIds = request.Input("input_ids") ?? throw RequestValidator.Invalid($"{label} input 'input_ids' is required for a decoder-only engine");
        var inputLengths = request.Input("input_lengths")!;
        var outputLengths = request.Input("request_output_len")!;
        foreach (var unsupported in (ReadOnlySpan<string>)["lora_task_id", "lora_weights", "lora_config"])
        {
            if (request.Input(unsupported) is not null)
            {
                throw RequestValidator.Invalid($"{label} input '{unsupported}': LoRA is not supported, the engine was built without the LoRA plugin");
            }
        }
        if (Flag(request, "return_context_logits", 0, batch, false))
        {
            throw RequestValidator.Invalid($"{label} To return context logits, the engine must be built with gather_context_logits set to true");
        }
        if (Flag(request, "return_generation_logits", 0, batch, false))
        {
            throw RequestValidator.Invalid($"{label} To return generation logits, the engine must be built with gather_generation_logits set to true");
        }
        var streaming = Flag(request, "streaming", 0, batch, false);
        if (streaming && !_decoupled)
        {
            throw RequestValidator.Invalid($"{label} Streaming is only supported if model is deployed using decoupled mode.");
        }
        var exclude = Flag(request, "exclude_input_in_output", 0, batch, _excludeInputByDefault);
        var width = inputIds.Shape.Length >= 2 ? inputIds.Shape[^1] : inputIds.ElementCount;
        var rows = new TensorRtLlmRow[batch];
        for (var b = 0; b < batch; b++)
        {
            var beams = Int(request, "beam_width", b, batch, 1);
            if (beams > 1)
            {
                throw RequestValidator.Invalid($"{label} Requested beam width {beams} is larger than configured max beam width 1");
            }
            if (beams < 1)
            {
                throw RequestValidator.Invalid($"{label} beam_width must be at least 1, got {beams}");
            }
            if (Int(request, "num_return_sequences", b, batch, 1) is var sequences and not 1)
            {
                throw RequestValidator.Invalid($"{label} num_return_sequences ({sequences}) must be 1: this engine samples one sequence per request");
            }
            var promptLength = inputLengths.Int32(PerRow(inputLengths, b, batch));
            if (promptLength < 1 || promptLength > width)
            {
                throw RequestValidator.Invalid($"{label} input_lengths[{b}] is {promptLength} but must be between 1 and the input_ids width {width}");
            }
            if (promptLength > Engine.MaxInputLength)
            {
                throw RequestValidator.Invalid($"{label} Prompt length ({promptLength}) exceeds maximum input length ({Engine.MaxInputLength}).");
            }
            var outputLength = outputLengths.Int32(PerRow(outputLengths, b, batch));
            if (outputLength < 1)
            {
                throw RequestValidator.Invalid($"{label} request_output_len[{b}] must be at least 1, got {outputLength}");
            }
            // TensorRT-LLM shortens a request that would run past max_seq_len instead of refusing it.
            outputLength = Math.Min(outputLength, Engine.MaxSequenceLength - promptLength);
            var prompt = new uint[promptLength];
            for (var i = 0; i < promptLength; i++)
            {
                prompt[i] = (uint)inputIds.Int32(b * width + i);
            }
            var settings = new SamplingSettings(
                (uint)Math.Max(0, Int(request, "runtime_top_k", b, batch, 0)),
                Float(request, "runtime_top_p", b, batch, 0f),
                Float(request, "temperature", b, batch, 1f),
                Float(request, "repetition_penalty", b, batch, 1f))
            {
                PresencePenalty = Float(request, "presence_penalty", b, batch, 0f),
                FrequencyPenalty = Float(request, "frequency_penalty", b, batch, 0f),
            };
            // The executor's SamplingConfig checks, in its words (TLLM_CHECK / TLLM_CHECK_WITH_INFO).
            if (settings.Temperature < 0f)
            {
                throw RequestValidator.Invalid($"{label} Assertion failed: temperature.value() >= 0.f");
            }
            if (settings.RepetitionPenalty <= 0f)
            {
                throw RequestValidator.Invalid(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{label} Repetition penalty should be strictly greater than zero. Provided value was {settings.RepetitionPenalty:F6}"));
            }
            if (settings.TopP is < 0f or > 1f)
            {
                throw RequestValidator.Invalid($"{label} Assertion failed: topP.value() <= 1.f");
            }
            var minTokens = Int(request, "min_tokens", b, batch, 1);
            if (minTokens < 0)
            {
                throw RequestValidator.Invalid($"{label} Assertion failed: minTokens.value() >= 0");
            }
            var seed = request.Input("seed") is { } seedTensor ? seedTensor.UInt64(PerRow(seedTensor, b, batch)) : SplitMix64.SeedFrom(prompt);
            var endId = Int(request, "end_id", b, batch, TokenLanguageModel.EndOfText);
            var badWords = WordLists.Decode(request.Input("bad_words_list"), b, label, "bad_words_list");
            var stopWords = WordLists.Decode(request.Input("stop_words_list"), b, label, "stop_words_list");
            var guide = ReadGuide(request, b, batch);
            ITensorRtLlmSampler sampler = _llama is null
                ? guide is null
                    ? new TokenModelSampler(new TokenSampler(_language, settings, seed, badWords))
                    : new ScriptedSampler(TimingInstance(guide.Value, seed, label), endId)
                : _llama.CreateSampler(settings, seed, badWords, guide is null ? null : Grammar(guide.Value, label));
            rows[b] = new TensorRtLlmRow(prompt, outputLength, endId, minTokens, stopWords, sampler);
        }
        return new TensorRtLlmWork(this, request, responses, rows, streaming, exclude);
    }

    /// <summary>A row's <c>guided_decoding_guide_type</c> and <c>guided_decoding_guide</c>; null without a guide type.</summary>
    private static (string Type, string? Guide)? ReadGuide(ValidatedRequest request, int row, int batch)
    {
        if (request.Input("guided_decoding_guide_type") is not { ElementCount: > 0 } typeTensor)
        {
            return null;
        }
        var type = TensorCodec.DecodeStrings(typeTensor.Raw.Span)[PerRow(typeTensor, row, batch)];
        if (type.Length == 0 || type == "none")
        {
            return null;
        }
        var guide = request.Input("guided_decoding_guide") is { ElementCount: > 0 } guideTensor
            ? TensorCodec.DecodeStrings(guideTensor.Raw.Span)[PerRow(guideTensor, row, batch)]
            : null;
        return (type, guide);
    }

    /// <summary>The guide as a grammar for llama.cpp's sampler, checked before the request is queued.</summary>
    private string Grammar((string Type, string? Guide) guide, string label)
    {
        try
        {
            var parsed = Guided.GuidedDecoding.FromTensorRtLlm(guide.Type, guide.Guide);
            _llama!.Model.CheckGrammar(parsed.Grammar);
            return parsed.Grammar;
        }
        catch (FormatException exception)
        {
            throw RequestValidator.Invalid($"{label} guided decoding: {exception.Message}");
        }
    }

    /// <summary>
    /// The timing engine has no logits to constrain: a guided row writes a schema-valid instance
    /// (seeded) as the token model's ids, then the end id, so demos and tests without weights still
    /// run the whole path. <c>json</c> writes <c>{}</c>; regex and grammars need the llama.cpp engine.
    /// </summary>
    private int[] TimingInstance((string Type, string? Guide) guide, ulong seed, string label)
    {
        try
        {
            var text = guide.Type switch
            {
                "json_schema" => Guided.JsonInstance.Generate(guide.Guide ?? throw new FormatException("guided_decoding_guide is required with guided_decoding_guide_type 'json_schema'"), seed),
                "json" => "{}",
                "regex" or "ebnf_grammar" => throw new FormatException($"guide type '{guide.Type}' needs the llama.cpp engine (gpt_model_path naming a GGUF file): the timing engine writes JSON schema instances only"),
                _ => throw new FormatException($"guided_decoding_guide_type '{guide.Type}' is not one of json, json_schema, regex, ebnf_grammar"),
            };
            return [.. _language.Tokenizer.EncodeToIds(text)];
        }
        catch (Exception exception) when (exception is FormatException or JsonException)
        {
            throw RequestValidator.Invalid($"{label} guided decoding: {exception.Message}");
        }
    }

    /// <summary>One in-flight iteration: the batch manager's statistics for the requests in it.</summary>
    public void Execute(IReadOnlyList<IScheduledWork> works)
    {
        _llama?.Execute(works);
        int context = 0, used = 0, shared = 0;
        long contextTokens = 0;
        foreach (var item in works)
        {
            var work = (TensorRtLlmWork)item;
            if (!work.Started)
            {
                context++;
                contextTokens += work.PrefillTokens;
            }
            used += work.BlocksAfterNextToken(Engine);
            shared += work.CachedPromptBlocks(Engine);
        }
        // Reusable blocks live in the same pool. A running sequence's full prompt blocks are cache
        // blocks themselves (shared, as the block manager shares them); its other blocks (the partial
        // last prompt block and the generated tokens) are its own, and the cache gives those back.
        _reuse?.Trim(Engine.MaxBlocks - (used - shared));
        _statistics?.Iteration(works.Count, context, contextTokens, used);
    }

    /// <summary>The prefix cache (null without <c>enable_kv_cache_reuse</c>).</summary>
    internal PrefixBlockCache? ReuseCache => _reuse;

    /// <summary>
    /// With KV cache reuse: the prompt's leading full blocks already in the cache (counted in the
    /// <c>reused</c> metric), after which all its full blocks are cached. Without it: none.
    /// </summary>
    internal int ReuseBlocks(ReadOnlySpan<uint> prompt)
    {
        if (_reuse is null)
        {
            return 0;
        }
        var reused = _reuse.MatchAndInsert(prompt);
        if (reused > 0)
        {
            _statistics?.BlocksReused(reused);
        }
        return reused;
    }

    private static long PerRow(RequestTensor tensor, int row, int batch)
    {
        var count = tensor.ElementCount;
        if (count == 0)
        {
            throw RequestValidator.Invalid($"input '{tensor.Name}' has no elements");
        }
        return count < batch ? 0 : row * (count / batch);
    }

    private static bool Flag(ValidatedRequest request, string name, int row, int batch, bool fallback) =>
        request.Input(name) is { ElementCount: > 0 } t ? t.Bool(PerRow(t, row, batch)) : fallback;

    private static int Int(ValidatedRequest request, string name, int row, int batch, int fallback) =>
        request.Input(name) is { ElementCount: > 0 } t ? t.Int32(PerRow(t, row, batch)) : fallback;

    private static float Float(ValidatedRequest request, string name, int row, int batch, float fallback) =>
        request.Input(name) is { ElementCount: > 0 } t ? t.Float32(PerRow(t, row, batch)) : fallback;
}

/// <summary>A model that puts its own statistics in front of the scheduler's observer.</summary>
internal interface IObservedBackend
{
    ISchedulerObserver Observe(ISchedulerObserver inner, string model, string version);
}

/// <summary>
/// One sequence: prompt + generated ids and log-probs; ends at the end id (not kept, and never before
/// <c>min_tokens</c> tokens), a stop word (kept) or the output length.
/// </summary>
internal sealed class TensorRtLlmRow(uint[] prompt, int outputLength, int endId, int minTokens, IReadOnlyList<int[]> stopWords, ITensorRtLlmSampler sampler)
{
    private readonly uint[] _ids = Initial(prompt, outputLength);
    private readonly float[] _logProbs = new float[outputLength];

    public int PromptLength { get; } = prompt.Length;

    public int OutputLength => outputLength;

    public int Length { get; private set; } = prompt.Length;

    public int Generated => Length - PromptLength;

    public bool Finished { get; private set; }

    public float CumulativeLogProbability { get; private set; }

    public ReadOnlySpan<uint> Ids => _ids.AsSpan(0, Length);

    public ReadOnlySpan<uint> Prompt => _ids.AsSpan(0, PromptLength);

    public ReadOnlySpan<float> LogProbabilities => _logProbs.AsSpan(0, Generated);

    public int EndId => endId;

    /// <summary>Adds this iteration's tokens to the shared llama.cpp batch (nothing on the timing engine).</summary>
    public void Prepare(LLama.Native.LLamaBatch batch)
    {
        if (!Finished)
        {
            sampler.Prepare(batch, Ids, PromptLength);
        }
    }

    /// <summary>Generates one token; returns false when the row was done, produced its end id or only decoded a prompt chunk.</summary>
    public bool Step()
    {
        if (Finished)
        {
            return false;
        }
        var suppressed = Generated < minTokens ? endId : -1;
        if (!sampler.TryNext(Ids, PromptLength, suppressed, out var token, out var logProbability))
        {
            return false;
        }
        if (token == endId)
        {
            Finish();
            return false;
        }
        _logProbs[Generated] = logProbability;
        _ids[Length++] = (uint)token;
        CumulativeLogProbability += logProbability;
        if (Generated >= outputLength || EndsWithStopWord())
        {
            Finish();
        }
        return true;
    }

    /// <summary>Ends the row where it is (its request failed or was cancelled) and gives back what it holds.</summary>
    public void Release() => sampler.Release();

    private void Finish()
    {
        Finished = true;
        sampler.Release();
    }

    private bool EndsWithStopWord()
    {
        var ids = Ids;
        foreach (var word in stopWords)
        {
            if (word.Length == 0 || word.Length > Generated)
            {
                continue;
            }
            var matches = true;
            for (var i = 0; i < word.Length && matches; i++)
            {
                matches = ids[ids.Length - word.Length + i] == (uint)word[i];
            }
            if (matches)
            {
                return true;
            }
        }
        return false;
    }

    private static uint[] Initial(uint[] prompt, int outputLength)
    {
        var ids = new uint[prompt.Length + outputLength];
        prompt.CopyTo(ids, 0);
        return ids;
    }
}

/// <summary>One request in the in-flight batch: every row steps each iteration; streaming writes the new tokens each time.</summary>
internal sealed class TensorRtLlmWork(TensorRtLlmModel model, ValidatedRequest request, ResponseStream responses, TensorRtLlmRow[] rows, bool streaming, bool excludeInput)
    : IScheduledWork
{
    private readonly int[] _newFrom = new int[rows.Length];

    public int BatchSize => rows.Length;

    public int PromptTokens { get; } = rows.Sum(static row => row.PromptLength);

    public long KvTokens { get; } = rows.Sum(row => (long)model.Engine.Blocks(row.PromptLength + row.OutputLength) * model.Engine.TokensPerBlock);

    public int ResponsesWritten => responses.Written;

    /// <summary>Whether the request has had its context (prefill) iteration.</summary>
    public bool Started { get; private set; }

    /// <summary>Prompt tokens its context phase computes: the prompt less the reused blocks.</summary>
    public int PrefillTokens { get; private set; }

    /// <summary>Blocks of its prompts found in the prefix cache.</summary>
    public int ReusedBlocks { get; private set; }

    public int BeginPrefill()
    {
        var reused = 0;
        foreach (var row in rows)
        {
            reused += model.ReuseBlocks(row.Prompt);
        }
        ReusedBlocks = reused;
        PrefillTokens = PromptTokens - reused * model.Engine.TokensPerBlock;
        return PrefillTokens;
    }

    /// <summary>With KV cache reuse: the full prompt blocks of its rows, which the prefix cache holds (shared, not private).</summary>
    public int CachedPromptBlocks(TensorRtLlmEngineSettings engine)
    {
        if (model.ReuseCache is null)
        {
            return 0;
        }
        var blocks = 0;
        foreach (var row in rows)
        {
            blocks += row.PromptLength / engine.TokensPerBlock;
        }
        return blocks;
    }

    /// <summary>KV blocks the rows hold once this iteration's token is written.</summary>
    public int BlocksAfterNextToken(TensorRtLlmEngineSettings engine)
    {
        var blocks = 0;
        foreach (var row in rows)
        {
            blocks += engine.Blocks(row.Length + (row.Finished ? 0 : 1));
        }
        return blocks;
    }

    /// <summary>Adds every running row's tokens for this iteration to the shared llama.cpp batch.</summary>
    public void Prepare(LLama.Native.LLamaBatch batch)
    {
        foreach (var row in rows)
        {
            row.Prepare(batch);
        }
    }

    public bool Step()
    {
        Started = true;
        var finished = true;
        var progressed = false;
        for (var b = 0; b < rows.Length; b++)
        {
            var row = rows[b];
            var wasFinished = row.Finished;
            _newFrom[b] = row.Length;
            row.Step();
            finished &= row.Finished;
            progressed |= row.Length > _newFrom[b] || row.Finished != wasFinished;
        }
        if (!progressed)
        {
            // Only prompt chunks went through the model this iteration (llama.cpp): nothing to send yet.
            return false;
        }
        if (streaming)
        {
            var response = Build(newOnly: true);
            if (finished)
            {
                responses.WriteLast(response);
            }
            else
            {
                responses.Write(response, final: false);
            }
        }
        else if (finished)
        {
            responses.WriteLast(Build(newOnly: false));
        }
        return finished;
    }

    public void Fail(InferenceException error)
    {
        foreach (var row in rows)
        {
            row.Release();
        }
        responses.Fail(error);
    }

    private ModelInferResponse Build(bool newOnly)
    {
        var response = responses.NewResponse();
        var batch = rows.Length;
        var starts = new int[batch];
        var counts = new int[batch];
        var width = 0;
        var logWidth = 0;
        for (var b = 0; b < batch; b++)
        {
            var row = rows[b];
            starts[b] = newOnly ? _newFrom[b] : excludeInput ? row.PromptLength : 0;
            counts[b] = row.Length - starts[b];
            width = Math.Max(width, counts[b]);
            logWidth = Math.Max(logWidth, newOnly ? counts[b] : row.Generated);
        }
        if (request.WantsOutput("output_ids"))
        {
            var ids = new int[batch * width];
            for (var b = 0; b < batch; b++)
            {
                var row = rows[b];
                var span = ids.AsSpan(b * width, width);
                span.Fill(row.EndId);
                for (var i = 0; i < counts[b]; i++)
                {
                    span[i] = (int)row.Ids[starts[b] + i];
                }
            }
            ResponseStream.AddOutput(response, "output_ids", TensorDataTypes.Int32, TensorCodec.EncodeInt32(ids), batch, 1, width);
        }
        if (request.WantsOutput("sequence_length"))
        {
            ResponseStream.AddOutput(response, "sequence_length", TensorDataTypes.Int32, TensorCodec.EncodeInt32(counts), batch, 1);
        }
        if (request.WantsOutput("cum_log_probs"))
        {
            var cumulative = new float[batch];
            for (var b = 0; b < batch; b++)
            {
                cumulative[b] = rows[b].CumulativeLogProbability;
            }
            ResponseStream.AddOutput(response, "cum_log_probs", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32(cumulative), batch, 1);
        }
        if (request.WantsOutput("output_log_probs"))
        {
            // One log-probability per generated token of this response (the new ones when streaming).
            var logProbs = new float[batch * logWidth];
            for (var b = 0; b < batch; b++)
            {
                var row = rows[b];
                var generated = row.LogProbabilities;
                var from = newOnly ? _newFrom[b] - row.PromptLength : 0;
                generated[from..].CopyTo(logProbs.AsSpan(b * logWidth));
            }
            ResponseStream.AddOutput(response, "output_log_probs", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32(logProbs), batch, 1, logWidth);
        }
        var indices = new int[batch];
        for (var b = 0; b < batch; b++)
        {
            indices[b] = b;
        }
        if (request.WantsOutput("batch_index"))
        {
            ResponseStream.AddOutput(response, "batch_index", TensorDataTypes.Int32, TensorCodec.EncodeInt32(indices), batch, 1);
        }
        if (request.WantsOutput("sequence_index"))
        {
            ResponseStream.AddOutput(response, "sequence_index", TensorDataTypes.Int32, TensorCodec.EncodeInt32(new int[batch]), batch, 1);
        }
        return response;
    }
}
