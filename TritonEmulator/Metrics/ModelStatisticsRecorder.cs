using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Metrics;

/// <summary>
/// Everything the engine counts for one model, kept twice in step: Triton's <c>ModelStatistics</c>
/// (gRPC / HTTP stats, nanoseconds) and the Prometheus metrics (microseconds).
/// </summary>
internal sealed class ModelStatisticsRecorder : ISchedulerObserver
{
    private readonly object _gate = new();
    private readonly string _name;
    private readonly string _version;
    private readonly TimeProvider _time;
    private readonly TritonMetrics _metrics;
    private readonly GpuModel _gpu;
    private readonly InferStatistics _inference = NewInferStatistics();
    private readonly SortedDictionary<ulong, InferBatchStatistics> _batches = [];
    private readonly SortedDictionary<int, InferResponseStatistics> _responses = [];
    private ulong _inferenceCount;
    private ulong _executionCount;
    private ulong _lastInference;

    public ModelStatisticsRecorder(string name, string version, TimeProvider time, TritonMetrics metrics, GpuModel gpu)
    {
        _name = name;
        _version = version;
        _time = time;
        _metrics = metrics;
        _gpu = gpu;
        // Publish the series at zero so dashboards see the model before its first request.
        _metrics.Success.WithLabels(name, version).IncTo(0);
        _metrics.InferenceCount.WithLabels(name, version).IncTo(0);
        _metrics.ExecutionCount.WithLabels(name, version).IncTo(0);
        _metrics.Pending.WithLabels(name, version).Set(0);
        _metrics.RequestDuration.WithLabels(name, version).IncTo(0);
        _metrics.QueueDuration.WithLabels(name, version).IncTo(0);
        _metrics.ComputeInfer.WithLabels(name, version).IncTo(0);
    }

    public void QueueChanged(int pendingRequests) => _metrics.Pending.WithLabels(_name, _version).Set(pendingRequests);

    public void Executed(int batchSize, int inferences, TimeSpan compute)
    {
        lock (_gate)
        {
            _executionCount++;
            _inferenceCount += (ulong)inferences;
            if (!_batches.TryGetValue((ulong)batchSize, out var batch))
            {
                batch = new InferBatchStatistics
                {
                    BatchSize = (ulong)batchSize,
                    ComputeInput = new StatisticDuration(),
                    ComputeInfer = new StatisticDuration(),
                    ComputeOutput = new StatisticDuration(),
                };
                _batches[(ulong)batchSize] = batch;
            }
            Add(batch.ComputeInfer, compute);
        }
        _metrics.ExecutionCount.WithLabels(_name, _version).Inc();
        _metrics.InferenceCount.WithLabels(_name, _version).Inc(inferences);
    }

    public void ResponseWritten(int index, TimeSpan compute)
    {
        lock (_gate)
        {
            var response = Response(index);
            Add(response.ComputeInfer, compute);
            Add(response.Success, compute);
        }
    }

    public void Succeeded(int batchSize, TimeSpan total, TimeSpan queue, TimeSpan compute)
    {
        lock (_gate)
        {
            Add(_inference.Success, total);
            Add(_inference.Queue, queue);
            Add(_inference.ComputeInfer, compute);
            _lastInference = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        _metrics.Success.WithLabels(_name, _version).Inc();
        _metrics.RequestDuration.WithLabels(_name, _version).Inc(total.TotalMicroseconds);
        _metrics.QueueDuration.WithLabels(_name, _version).Inc(queue.TotalMicroseconds);
        _metrics.ComputeInfer.WithLabels(_name, _version).Inc(compute.TotalMicroseconds);
    }

    public void Failed(FailureReason reason, TimeSpan total, int responseIndex)
    {
        lock (_gate)
        {
            Add(_inference.Fail, total);
            var response = Response(responseIndex);
            Add(reason == FailureReason.Canceled ? response.Cancel : response.Fail, TimeSpan.Zero);
            _lastInference = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds();
        }
        _metrics.Failure.WithLabels(_name, _version, TritonMetrics.ReasonLabel(reason)).Inc();
        _metrics.RequestDuration.WithLabels(_name, _version).Inc(total.TotalMicroseconds);
    }

    public void KvTokensChanged(long inUse, int activeSequences) => _gpu.Update(_name, inUse, activeSequences);

    public ModelStatistics Snapshot()
    {
        lock (_gate)
        {
            var statistics = new ModelStatistics
            {
                Name = _name,
                Version = _version,
                LastInference = _lastInference,
                InferenceCount = _inferenceCount,
                ExecutionCount = _executionCount,
                InferenceStats = _inference.Clone(),
            };
            statistics.BatchStats.AddRange(_batches.Values.Select(static b => b.Clone()));
            foreach (var (index, response) in _responses)
            {
                statistics.ResponseStats[index.ToString(System.Globalization.CultureInfo.InvariantCulture)] = response.Clone();
            }
            return statistics;
        }
    }

    private InferResponseStatistics Response(int index)
    {
        if (!_responses.TryGetValue(index, out var response))
        {
            response = new InferResponseStatistics
            {
                ComputeInfer = new StatisticDuration(),
                ComputeOutput = new StatisticDuration(),
                Success = new StatisticDuration(),
                Fail = new StatisticDuration(),
                EmptyResponse = new StatisticDuration(),
                Cancel = new StatisticDuration(),
            };
            _responses[index] = response;
        }
        return response;
    }

    private static void Add(StatisticDuration duration, TimeSpan elapsed)
    {
        duration.Count++;
        duration.Ns += (ulong)Math.Max(0, elapsed.Ticks) * 100UL;
    }

    private static InferStatistics NewInferStatistics() => new()
    {
        Success = new StatisticDuration(),
        Fail = new StatisticDuration(),
        Queue = new StatisticDuration(),
        ComputeInput = new StatisticDuration(),
        ComputeInfer = new StatisticDuration(),
        ComputeOutput = new StatisticDuration(),
        CacheHit = new StatisticDuration(),
        CacheMiss = new StatisticDuration(),
    };
}

/// <summary>
/// The emulated GPU: memory = weights of the loaded models + KV cache in use; utilization = the
/// share of the batch capacity that is generating.
/// </summary>
internal sealed class GpuModel
{
    private readonly object _gate = new();
    private readonly TritonMetrics _metrics;
    private readonly Dictionary<string, (long Weights, long KvBytesPerToken, long KvTokens, int Active, int Capacity)> _models = [];
    private long _total;

    public GpuModel(TritonMetrics metrics)
    {
        _metrics = metrics;
        Publish();
    }

    public void Register(string model, long totalBytes, long weightsBytes, long kvBytesPerToken, int batchCapacity)
    {
        lock (_gate)
        {
            _total = Math.Max(_total, totalBytes);
            _models[model] = (weightsBytes, kvBytesPerToken, 0, 0, batchCapacity);
            Publish();
        }
    }

    public void Update(string model, long kvTokens, int active)
    {
        lock (_gate)
        {
            if (_models.TryGetValue(model, out var state))
            {
                _models[model] = state with { KvTokens = kvTokens, Active = active };
                Publish();
            }
        }
    }

    private void Publish()
    {
        long used = 0;
        double utilization = 0;
        foreach (var state in _models.Values)
        {
            used += state.Weights + state.KvTokens * state.KvBytesPerToken;
            utilization = Math.Max(utilization, state.Active == 0 ? 0 : Math.Min(0.99, 0.35 + 0.64 * state.Active / Math.Max(1, state.Capacity)));
        }
        _metrics.GpuMemoryTotal.WithLabels(TritonMetrics.GpuUuid).Set(_total);
        _metrics.GpuMemoryUsed.WithLabels(TritonMetrics.GpuUuid).Set(Math.Min(used, _total == 0 ? used : _total));
        _metrics.GpuUtilization.WithLabels(TritonMetrics.GpuUuid).Set(utilization);
    }
}
