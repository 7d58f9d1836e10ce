using System.Globalization;
using System.Text.Json;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.TensorRtLlm;

/// <summary>
/// The build limits of a TensorRT-LLM engine and the KV cache the backend sizes for it:
/// <c>max_input_len</c>, <c>max_seq_len</c> and <c>tokens_per_block</c> from the engine's
/// <c>config.json</c> in <c>gpt_model_path</c> when it is there (<c>build_config</c>,
/// <c>build_config.plugin_config.tokens_per_block</c>), otherwise from the CPU engine's
/// <c>emulator_max_input_len</c>, <c>emulator_max_seq_len</c>, <c>emulator_tokens_per_block</c>;
/// the KV capacity is <c>max_tokens_in_paged_kv_cache</c> in whole blocks (else the timing profile's).
/// </summary>
internal sealed record TensorRtLlmEngineSettings(int MaxInputLength, int MaxSequenceLength, int TokensPerBlock, int MaxBlocks, bool KvCacheReuse)
{
    public const string ModelPathParameter = "gpt_model_path";
    public const string MaxTokensInPagedKvCacheParameter = "max_tokens_in_paged_kv_cache";
    public const string KvCacheReuseParameter = "enable_kv_cache_reuse";
    public const string BatchingTypeParameter = "gpt_model_type";

    public static TensorRtLlmEngineSettings FromConfig(ModelConfig config, long profileKvTokens)
    {
        if (Parameter(config, BatchingTypeParameter) is { } type && type is not ("inflight_fused_batching" or "inflight_batching" or "V1" or "v1"))
        {
            throw new ModelLoadException($"unsupported gpt_model_type '{type}'");
        }
        int? maxInput = null, maxSeq = null, tokensPerBlock = null;
        if (Parameter(config, ModelPathParameter) is { } path && File.Exists(Path.Combine(path, "config.json")))
        {
            (maxInput, maxSeq, tokensPerBlock) = ReadEngineConfig(Path.Combine(path, "config.json"));
        }
        maxInput ??= Positive(config, "emulator_max_input_len") ?? 1024;
        maxSeq ??= Positive(config, "emulator_max_seq_len") ?? 2048;
        tokensPerBlock ??= Positive(config, "emulator_tokens_per_block") ?? 64;
        if (maxInput >= maxSeq)
        {
            throw new ModelLoadException($"max_input_len ({maxInput}) must be smaller than max_seq_len ({maxSeq})");
        }
        var capacityTokens = Positive(config, MaxTokensInPagedKvCacheParameter) is { } tokens ? tokens : profileKvTokens;
        var blocks = (int)Math.Min(int.MaxValue, capacityTokens / tokensPerBlock.Value);
        if (blocks < 1)
        {
            throw new ModelLoadException($"{MaxTokensInPagedKvCacheParameter} ({capacityTokens}) holds no KV cache block of {tokensPerBlock} tokens");
        }
        var reuse = Parameter(config, KvCacheReuseParameter) is { } r && r.Equals("true", StringComparison.OrdinalIgnoreCase);
        return new TensorRtLlmEngineSettings(maxInput.Value, maxSeq.Value, tokensPerBlock.Value, blocks, reuse);
    }

    /// <summary>KV blocks a sequence of <paramref name="tokens"/> tokens occupies.</summary>
    public int Blocks(long tokens) => (int)((tokens + TokensPerBlock - 1) / TokensPerBlock);

    private static (int?, int?, int?) ReadEngineConfig(string file)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(file));
            if (!document.RootElement.TryGetProperty("build_config", out var build))
            {
                return (null, null, null);
            }
            int? Read(JsonElement element, string name) =>
                element.TryGetProperty(name, out var value) && value.TryGetInt32(out var number) && number > 0 ? number : null;
            int? tokensPerBlock = build.TryGetProperty("plugin_config", out var plugins) ? Read(plugins, "tokens_per_block") : null;
            return (Read(build, "max_input_len"), Read(build, "max_seq_len"), tokensPerBlock);
        }
        catch (JsonException exception)
        {
            throw new ModelLoadException($"the engine config '{file}' is not valid JSON: {exception.Message}");
        }
    }

    internal static string? Parameter(ModelConfig config, string key) =>
        config.Parameters.TryGetValue(key, out var p) && p.StringValue is { Length: > 0 } value && !value.StartsWith("${", StringComparison.Ordinal)
            ? value
            : null;

    private static int? Positive(ModelConfig config, string key)
    {
        if (Parameter(config, key) is not { } text)
        {
            return null;
        }
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            throw new ModelLoadException($"parameter '{key}' must be a positive integer, got '{text}'");
        }
        return value;
    }
}
