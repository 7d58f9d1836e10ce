using System.Globalization;
using Triton.Inference;

namespace TritonEmulator.Scheduling;

/// <summary>
/// The emulated cost of running a model: time to first token (prefill), time per decode step as a
/// function of the batch size, KV-cache capacity and the GPU memory the metrics report.
/// </summary>
internal sealed record TimingProfile
{
    public const string ZeroLatencyName = "zero-latency";
    public const string A100GptJ6BName = "a100-gptj-6b";

    public required string Name { get; init; }

    /// <summary>Fixed part of a prefill (the step that produces the first token).</summary>
    public TimeSpan PrefillBase { get; init; }

    /// <summary>Extra prefill time per prompt token.</summary>
    public TimeSpan PrefillPerToken { get; init; }

    /// <summary>Fixed part of one decode step (one token for every active sequence).</summary>
    public TimeSpan StepBase { get; init; }

    /// <summary>Extra decode-step time per active sequence in the batch.</summary>
    public TimeSpan StepPerSequence { get; init; }

    /// <summary>KV-cache capacity in tokens; a request reserves prompt + output tokens per row.</summary>
    public long KvCapacityTokens { get; init; }

    public long GpuMemoryTotalBytes { get; init; }

    public long WeightsBytes { get; init; }

    public long KvBytesPerToken { get; init; }

    /// <summary>All timings zero: for tests and benchmarks of everything around the engine.</summary>
    public static TimingProfile ZeroLatency { get; } = new()
    {
        Name = ZeroLatencyName,
        KvCapacityTokens = 1_000_000,
        GpuMemoryTotalBytes = 42_949_672_960,
        WeightsBytes = 12_100_000_000,
        KvBytesPerToken = 458_752,
    };

    /// <summary>
    /// Roughly GPT-J-6B in fp16 on one A100 40 GB under FasterTransformer: TTFT 25 ms + 0.05 ms per
    /// prompt token; a decode step 22 ms at batch 1 plus 0.35 ms per extra sequence (≈ 44 ms at 64);
    /// 12.1 GB of weights; KV cache 2 × 28 layers × 4096 × 2 bytes = 448 KiB per token, 60 000 tokens.
    /// </summary>
    public static TimingProfile A100GptJ6B { get; } = new()
    {
        Name = A100GptJ6BName,
        PrefillBase = TimeSpan.FromMilliseconds(25),
        PrefillPerToken = TimeSpan.FromMicroseconds(50),
        StepBase = TimeSpan.FromMilliseconds(22),
        StepPerSequence = TimeSpan.FromMicroseconds(350),
        KvCapacityTokens = 60_000,
        GpuMemoryTotalBytes = 42_949_672_960,
        WeightsBytes = 12_100_000_000,
        KvBytesPerToken = 458_752,
    };

    public static IReadOnlyList<string> KnownNames { get; } = [ZeroLatencyName, A100GptJ6BName];

    public static TimingProfile? Find(string? name) => name switch
    {
        ZeroLatencyName => ZeroLatency,
        A100GptJ6BName => A100GptJ6B,
        _ => null,
    };

    public TimeSpan Prefill(int promptTokens) => PrefillBase + PrefillPerToken * promptTokens;

    public TimeSpan Step(int batchSize) => batchSize <= 0 ? TimeSpan.Zero : StepBase + StepPerSequence * (batchSize - 1);

    public const string ProfileParameter = "emulator_profile";

    /// <summary>
    /// The profile for a model: the global override if set, else the model's
    /// <c>emulator_profile</c> parameter, else A100/GPT-J; then the model's <c>emulator_*</c> timing
    /// overrides (<c>emulator_prefill_base_us</c>, <c>emulator_prefill_per_token_us</c>,
    /// <c>emulator_step_base_us</c>, <c>emulator_step_per_sequence_us</c>,
    /// <c>emulator_kv_capacity_tokens</c>). A global override ignores per-model timing overrides.
    /// </summary>
    public static TimingProfile ForModel(ModelConfig config, string? globalOverride)
    {
        if (!string.IsNullOrEmpty(globalOverride))
        {
            return Find(globalOverride) ?? throw new ModelLoadException($"unknown emulator profile '{globalOverride}'");
        }
        var name = config.Parameters.TryGetValue(ProfileParameter, out var p) ? p.StringValue : A100GptJ6BName;
        var profile = Find(name) ?? throw new ModelLoadException(
            $"unknown {ProfileParameter} '{name}'; known: {string.Join(", ", KnownNames)}");
        return profile with
        {
            PrefillBase = Micros(config, "emulator_prefill_base_us") ?? profile.PrefillBase,
            PrefillPerToken = Micros(config, "emulator_prefill_per_token_us") ?? profile.PrefillPerToken,
            StepBase = Micros(config, "emulator_step_base_us") ?? profile.StepBase,
            StepPerSequence = Micros(config, "emulator_step_per_sequence_us") ?? profile.StepPerSequence,
            KvCapacityTokens = Long(config, "emulator_kv_capacity_tokens") ?? profile.KvCapacityTokens,
        };
    }

    private static TimeSpan? Micros(ModelConfig config, string key) =>
        Double(config, key) is { } us ? TimeSpan.FromTicks((long)(us * TimeSpan.TicksPerMicrosecond)) : null;

    private static double? Double(ModelConfig config, string key)
    {
        if (!config.Parameters.TryGetValue(key, out var p))
        {
            return null;
        }
        if (!double.TryParse(p.StringValue, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            throw new ModelLoadException($"parameter '{key}' must be a non-negative number, got '{p.StringValue}'");
        }
        return value;
    }

    private static long? Long(ModelConfig config, string key)
    {
        if (!config.Parameters.TryGetValue(key, out var p))
        {
            return null;
        }
        if (!long.TryParse(p.StringValue, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            throw new ModelLoadException($"parameter '{key}' must be a positive integer, got '{p.StringValue}'");
        }
        return value;
    }
}

/// <summary>A model configuration the engine cannot serve; the model becomes UNAVAILABLE with this reason.</summary>
internal sealed class ModelLoadException(string message) : Exception(message);
