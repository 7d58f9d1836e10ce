using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Python;

/// <summary>
/// TensorRT-LLM's <c>tensorrt_llm_bls</c> model (a Python BLS model in tensorrtllm_backend) served
/// natively: recognised by its tensors (<c>backend: "python"</c>, inputs <c>text_input</c> and
/// <c>max_tokens</c>, output <c>text_output</c>), it calls <c>preprocessing</c>, the model named by
/// <c>tensorrt_llm_model_name</c> (default <c>tensorrt_llm</c>) and <c>postprocessing</c> as its
/// <c>model.py</c> does, here as the same step graph the shipped ensemble declares (each step an
/// ordinary request of its model, every decoupled response flowing on). Only the inputs the BLS model
/// declares are passed on; its common outputs (<c>cum_log_probs</c>, <c>output_log_probs</c>, …) come
/// from <c>tensorrt_llm</c>. <c>accumulate_tokens</c> and speculative decoding (<c>tensorrt_llm_draft_model_name</c>)
/// are refused at load.
/// </summary>
internal static class TrtLlmBls
{
    public const string ModelNameParameter = "tensorrt_llm_model_name";

    public static bool Matches(ModelConfig? config) =>
        config is { Backend: PythonModels.BackendName }
        && config.Input.Any(static i => i.Name == "text_input")
        && config.Input.Any(static i => i.Name == "max_tokens")
        && config.Output.Any(static o => o.Name == "text_output");

    /// <summary>The BLS model's config with the step graph its model.py runs, for <see cref="Ensemble.EnsembleModel.Load"/>.</summary>
    public static ModelConfig AsEnsemble(ModelConfig config, Func<string, ServedModel?> find)
    {
        if (Parameter(config, "accumulate_tokens") is { } accumulate && accumulate.Equals("true", StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelLoadException("accumulate_tokens is not supported by the CPU engine's tensorrt_llm_bls: postprocessing decodes each response on its own");
        }
        if (Parameter(config, "tensorrt_llm_draft_model_name") is not null)
        {
            throw new ModelLoadException("speculative decoding (tensorrt_llm_draft_model_name) is not supported by the CPU engine's tensorrt_llm_bls");
        }
        var engine = Parameter(config, ModelNameParameter) ?? "tensorrt_llm";
        var inputs = config.Input.Select(static i => i.Name).ToHashSet(StringComparer.Ordinal);
        var outputs = config.Output.Select(static o => o.Name).ToHashSet(StringComparer.Ordinal);
        var scheduling = new ModelEnsembling();
        scheduling.Step.Add(Step(find, "preprocessing", inputs,
            [("QUERY", "text_input"), ("REQUEST_OUTPUT_LEN", "max_tokens"), ("BAD_WORDS_DICT", "bad_words"), ("STOP_WORDS_DICT", "stop_words"),
             ("EMBEDDING_BIAS_WORDS", "embedding_bias_words"), ("EMBEDDING_BIAS_WEIGHTS", "embedding_bias_weights"), ("END_ID", "end_id"), ("PAD_ID", "pad_id")],
            [("REQUEST_INPUT_LEN", "_REQUEST_INPUT_LEN"), ("INPUT_ID", "_INPUT_ID"), ("REQUEST_OUTPUT_LEN", "_REQUEST_OUTPUT_LEN"),
             ("STOP_WORDS_IDS", "_STOP_WORDS_IDS"), ("BAD_WORDS_IDS", "_BAD_WORDS_IDS"), ("EMBEDDING_BIAS", "_EMBEDDING_BIAS"),
             ("OUT_END_ID", "_PREPROCESSOR_END_ID"), ("OUT_PAD_ID", "_PREPROCESSOR_PAD_ID")]));
        var internals = new HashSet<string>(StringComparer.Ordinal)
        {
            "_INPUT_ID", "_REQUEST_INPUT_LEN", "_REQUEST_OUTPUT_LEN", "_PREPROCESSOR_END_ID", "_PREPROCESSOR_PAD_ID",
            "_EMBEDDING_BIAS", "_STOP_WORDS_IDS", "_BAD_WORDS_IDS",
        };
        string[] common = ["cum_log_probs", "output_log_probs", "context_logits", "generation_logits", "batch_index", "sequence_index",
            "kv_cache_alloc_new_blocks", "kv_cache_reused_blocks", "kv_cache_alloc_total_blocks"];
        scheduling.Step.Add(Step(find, engine, [.. inputs, .. internals],
            [("input_ids", "_INPUT_ID"), ("input_lengths", "_REQUEST_INPUT_LEN"), ("request_output_len", "_REQUEST_OUTPUT_LEN"),
             ("end_id", "_PREPROCESSOR_END_ID"), ("pad_id", "_PREPROCESSOR_PAD_ID"), ("embedding_bias", "_EMBEDDING_BIAS"),
             ("stop_words_list", "_STOP_WORDS_IDS"), ("bad_words_list", "_BAD_WORDS_IDS"),
             ("runtime_top_k", "top_k"), ("runtime_top_p", "top_p"), ("temperature", "temperature"), ("len_penalty", "length_penalty"),
             ("repetition_penalty", "repetition_penalty"), ("min_tokens", "min_tokens"), ("presence_penalty", "presence_penalty"),
             ("frequency_penalty", "frequency_penalty"), ("seed", "seed"), ("return_log_probs", "return_log_probs"),
             ("return_context_logits", "return_context_logits"), ("return_generation_logits", "return_generation_logits"),
             ("num_return_sequences", "num_return_sequences"), ("beam_width", "beam_width"), ("streaming", "stream"),
             ("exclude_input_in_output", "exclude_input_in_output"),
             ("guided_decoding_guide_type", "guided_decoding_guide_type"), ("guided_decoding_guide", "guided_decoding_guide")],
            [("output_ids", "_TOKENS_BATCH"), ("sequence_length", "_SEQUENCE_LENGTH"), .. common.Where(outputs.Contains).Select(static o => (o, o))]));
        scheduling.Step.Add(Step(find, "postprocessing", ["_TOKENS_BATCH", "_SEQUENCE_LENGTH"],
            [("TOKENS_BATCH", "_TOKENS_BATCH"), ("SEQUENCE_LENGTH", "_SEQUENCE_LENGTH")],
            [("OUTPUT", "text_output")]));
        var ensemble = config.Clone();
        ensemble.EnsembleScheduling = scheduling;
        return ensemble;
    }

    /// <summary>One step: the mappings whose tensor is available and whose name the composing model has.</summary>
    private static ModelEnsembling.Types.Step Step(Func<string, ServedModel?> find, string model, IReadOnlyCollection<string> available,
        IEnumerable<(string Name, string Tensor)> inputMap, IEnumerable<(string Name, string Tensor)> outputMap)
    {
        var composing = find(model)?.Config;
        var step = new ModelEnsembling.Types.Step { ModelName = model, ModelVersion = -1 };
        foreach (var (name, tensor) in inputMap)
        {
            if (available.Contains(tensor) && (composing is null || composing.Input.Any(i => i.Name == name)))
            {
                step.InputMap[name] = tensor;
            }
        }
        foreach (var (name, tensor) in outputMap)
        {
            if (composing is null || composing.Output.Any(o => o.Name == name))
            {
                step.OutputMap[name] = tensor;
            }
        }
        return step;
    }

    private static string? Parameter(ModelConfig config, string key) =>
        config.Parameters.TryGetValue(key, out var p) && p.StringValue is { Length: > 0 } value && !value.StartsWith("${", StringComparison.Ordinal)
            ? value
            : null;
}
