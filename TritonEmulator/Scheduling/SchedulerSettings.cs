using Triton.Inference;

namespace TritonEmulator.Scheduling;

/// <summary>How sequences share the batch.</summary>
internal enum BatchingMode
{
    /// <summary>FasterTransformer: a batch runs until its longest sequence ends; new requests wait.</summary>
    Static,

    /// <summary>TensorRT-LLM style in-flight batching: sequences join and leave at every step.</summary>
    Inflight,
}

/// <summary>The queue policy of one priority level (Triton's <c>ModelQueuePolicy</c>).</summary>
internal sealed record QueuePolicy(int MaxQueueSize, TimeSpan DefaultTimeout, bool AllowTimeoutOverride, bool DelayOnTimeout)
{
    public static QueuePolicy Unlimited { get; } = new(0, TimeSpan.Zero, false, false);

    public static QueuePolicy From(ModelQueuePolicy? policy) => policy is null
        ? Unlimited
        : new((int)policy.MaxQueueSize, TimeSpan.FromMicroseconds(policy.DefaultTimeoutMicroseconds),
            policy.AllowTimeoutOverride, policy.TimeoutAction == ModelQueuePolicy.Types.TimeoutAction.Delay);

    /// <summary>
    /// The queue timeout for a request that asked for <paramref name="requested"/> (zero = none):
    /// a request may set a timeout when the policy has none, or lower it when the policy allows.
    /// </summary>
    public TimeSpan EffectiveTimeout(TimeSpan requested)
    {
        if (requested <= TimeSpan.Zero)
        {
            return DefaultTimeout;
        }
        if (DefaultTimeout <= TimeSpan.Zero)
        {
            return requested;
        }
        return AllowTimeoutOverride && requested < DefaultTimeout ? requested : DefaultTimeout;
    }
}

/// <summary>The scheduling part of a model configuration.</summary>
internal sealed record SchedulerSettings
{
    public const string BatchingModeParameter = "emulator_batching_mode";

    public BatchingMode Mode { get; init; } = BatchingMode.Static;

    /// <summary>Rows one batch may hold (1 for a model without a batch dimension).</summary>
    public int MaxBatchSize { get; init; } = 1;

    public TimeSpan MaxQueueDelay { get; init; }

    public IReadOnlyList<int> PreferredBatchSizes { get; init; } = [];

    /// <summary>Number of priority levels (1 when the model has none); level 1 is the highest.</summary>
    public int PriorityLevels { get; init; } = 1;

    public int DefaultPriorityLevel { get; init; } = 1;

    /// <summary>Queue policy per level, index 0 = level 1.</summary>
    public IReadOnlyList<QueuePolicy> Policies { get; init; } = [QueuePolicy.Unlimited];

    public static SchedulerSettings FromConfig(ModelConfig config)
    {
        var mode = BatchingMode.Static;
        if (config.Parameters.TryGetValue(BatchingModeParameter, out var modeParameter))
        {
            mode = modeParameter.StringValue switch
            {
                "static" => BatchingMode.Static,
                "inflight" => BatchingMode.Inflight,
                var other => throw new ModelLoadException(
                    $"parameter '{BatchingModeParameter}' must be 'static' or 'inflight', got '{other}'"),
            };
        }
        var maxBatch = Math.Max(1, config.MaxBatchSize);
        var batching = config.DynamicBatching;
        if (batching is null)
        {
            return new SchedulerSettings { Mode = mode, MaxBatchSize = maxBatch };
        }
        var levels = (int)Math.Max(1UL, batching.PriorityLevels);
        var defaultLevel = batching.DefaultPriorityLevel == 0 ? levels : (int)batching.DefaultPriorityLevel;
        if (defaultLevel > levels)
        {
            throw new ModelLoadException(
                $"default_priority_level {defaultLevel} must be in range [1, {levels}]");
        }
        var policies = new QueuePolicy[levels];
        for (var level = 1; level <= levels; level++)
        {
            policies[level - 1] = batching.PriorityQueuePolicy.TryGetValue((ulong)level, out var specific)
                ? QueuePolicy.From(specific)
                : QueuePolicy.From(batching.DefaultQueuePolicy);
        }
        return new SchedulerSettings
        {
            Mode = mode,
            MaxBatchSize = maxBatch,
            MaxQueueDelay = TimeSpan.FromMicroseconds(batching.MaxQueueDelayMicroseconds),
            PreferredBatchSizes = [.. batching.PreferredBatchSize],
            PriorityLevels = levels,
            DefaultPriorityLevel = defaultLevel,
            Policies = policies,
        };
    }

    /// <summary>Triton's rule: priority 0 or above the last level means the default level.</summary>
    public int ResolvePriority(ulong requested) =>
        requested == 0 || requested > (ulong)PriorityLevels ? DefaultPriorityLevel : (int)requested;
}
