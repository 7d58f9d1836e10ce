using TritonEmulator.Metrics;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.TensorRtLlm;

/// <summary>
/// TensorRT-LLM's batch manager statistics for one model, exported under the real family names and
/// labels (<see cref="TritonMetrics"/>): <c>request_type</c> active | max | scheduled | context | waiting,
/// <c>kv_cache_block_type</c> max | free | used | tokens_per | reused | fraction, <c>memory_type</c>
/// cpu | gpu | pinned, <c>inflight_batcher_specific_metric</c> total_context_tokens | generation_requests
/// | micro_batch_id | paused_requests, <c>general_type</c> timestamp (µs since the epoch) | iteration_counter.
/// It sits in front of the model's <see cref="ModelStatisticsRecorder"/> as the scheduler's observer,
/// so waiting and active requests follow the queue and the batch as they change; the per-iteration
/// values come from <see cref="Iteration"/>.
/// </summary>
internal sealed class TensorRtLlmStatistics : ISchedulerObserver
{
    private readonly ISchedulerObserver _inner;
    private readonly TritonMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly string _model;
    private readonly string _version;
    private readonly int _maxBlocks;
    private long _iterations;
    private long _reusedBlocks;

    public TensorRtLlmStatistics(ISchedulerObserver inner, TritonMetrics metrics, TimeProvider time, string model, string version,
        TensorRtLlmEngineSettings engine, int maxRequests, long runtimeGpuBytes)
    {
        _inner = inner;
        _metrics = metrics;
        _time = time;
        _model = model;
        _version = version;
        _maxBlocks = engine.MaxBlocks;
        foreach (var type in (ReadOnlySpan<string>)["active", "scheduled", "context", "waiting"])
        {
            Request(type, 0);
        }
        Request("max", maxRequests);
        Kv("max", engine.MaxBlocks);
        Kv("tokens_per", engine.TokensPerBlock);
        Kv("reused", 0);
        UsedBlocks(0);
        Memory("cpu", 0);
        Memory("gpu", runtimeGpuBytes);
        Memory("pinned", 0);
        foreach (var type in (ReadOnlySpan<string>)["total_context_tokens", "generation_requests", "micro_batch_id", "paused_requests"])
        {
            Batcher(type, 0);
        }
        General("iteration_counter", 0);
        General("timestamp", _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000.0);
    }

    /// <summary>One engine iteration: requests in it, those in their context (prefill) phase, their prompt tokens, KV blocks in use.</summary>
    public void Iteration(int scheduled, int context, long contextTokens, int usedBlocks)
    {
        Request("scheduled", scheduled);
        Request("context", context);
        Batcher("total_context_tokens", contextTokens);
        Batcher("generation_requests", scheduled - context);
        UsedBlocks(usedBlocks);
        General("iteration_counter", Interlocked.Increment(ref _iterations));
        General("timestamp", _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000.0);
    }

    /// <summary>Prompt blocks found in the cache (KV cache reuse), counted since the start.</summary>
    public void BlocksReused(int blocks) => Kv("reused", Interlocked.Add(ref _reusedBlocks, blocks));

    public void QueueChanged(int pendingRequests)
    {
        Request("waiting", pendingRequests);
        _inner.QueueChanged(pendingRequests);
    }

    public void KvTokensChanged(long inUse, int activeSequences)
    {
        Request("active", activeSequences);
        if (activeSequences == 0)
        {
            Request("scheduled", 0);
            Request("context", 0);
            Batcher("generation_requests", 0);
            Batcher("total_context_tokens", 0);
            UsedBlocks(0);
        }
        _inner.KvTokensChanged(inUse, activeSequences);
    }

    public void Executed(int batchSize, int inferences, TimeSpan compute) => _inner.Executed(batchSize, inferences, compute);

    public void ResponseWritten(int index, TimeSpan compute) => _inner.ResponseWritten(index, compute);

    public void Succeeded(int batchSize, TimeSpan total, TimeSpan queue, TimeSpan compute) => _inner.Succeeded(batchSize, total, queue, compute);

    public void Failed(FailureReason reason, TimeSpan total, int responseIndex) => _inner.Failed(reason, total, responseIndex);

    private void UsedBlocks(int used)
    {
        Kv("used", used);
        Kv("free", _maxBlocks - used);
        Kv("fraction", (double)used / _maxBlocks);
    }

    private void Request(string type, double value) => _metrics.TrtRequests.WithLabels(_model, type, _version).Set(value);

    private void Kv(string type, double value) => _metrics.TrtKvCacheBlocks.WithLabels(type, _model, _version).Set(value);

    private void Memory(string type, double value) => _metrics.TrtRuntimeMemory.WithLabels(type, _model, _version).Set(value);

    private void Batcher(string type, double value) => _metrics.TrtInflightBatcher.WithLabels(type, _model, _version).Set(value);

    private void General(string type, double value) => _metrics.TrtGeneral.WithLabels(type, _model, _version).Set(value);
}
