using Prometheus;

namespace TritonEmulator.Metrics;

/// <summary>
/// Triton's Prometheus metrics with its exact names and labels, in a registry of our own (not the
/// static default): per-model counters labelled <c>model</c>, <c>version</c>; emulated GPU gauges
/// labelled <c>gpu_uuid</c>.
/// </summary>
internal sealed class TritonMetrics
{
    public const string GpuUuid = "GPU-00000000-0000-0000-0000-emulator0000";

    public TritonMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        string[] model = ["model", "version"];
        Success = factory.CreateCounter("nv_inference_request_success", "Number of successful inference requests, all batch sizes", model);
        Failure = factory.CreateCounter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes", ["model", "version", "reason"]);
        InferenceCount = factory.CreateCounter("nv_inference_count", "Number of inferences performed (does not include cached requests)", model);
        ExecutionCount = factory.CreateCounter("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)", model);
        Pending = factory.CreateGauge("nv_inference_pending_request_count", "Instantaneous number of pending requests awaiting execution per-model.", model);
        RequestDuration = factory.CreateCounter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)", model);
        QueueDuration = factory.CreateCounter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)", model);
        ComputeInfer = factory.CreateCounter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)", model);
        GpuUtilization = factory.CreateGauge("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", "gpu_uuid");
        GpuMemoryTotal = factory.CreateGauge("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", "gpu_uuid");
        GpuMemoryUsed = factory.CreateGauge("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", "gpu_uuid");
        // TensorRT-LLM's batch manager statistics (tensorrtllm_backend's custom metrics reporter): one
        // gauge family per group, the member told apart by the group's category label.
        TrtRequests = factory.CreateGauge("nv_trt_llm_request_metrics", "TRT LLM request metrics", ["model", "request_type", "version"]);
        TrtRuntimeMemory = factory.CreateGauge("nv_trt_llm_runtime_memory_metrics", "TRT LLM runtime memory metrics", ["memory_type", "model", "version"]);
        TrtKvCacheBlocks = factory.CreateGauge("nv_trt_llm_kv_cache_block_metrics", "TRT LLM KV cache block metrics", ["kv_cache_block_type", "model", "version"]);
        TrtInflightBatcher = factory.CreateGauge("nv_trt_llm_inflight_batcher_metrics", "TRT LLM inflight_batcher-specific metrics", ["inflight_batcher_specific_metric", "model", "version"]);
        TrtGeneral = factory.CreateGauge("nv_trt_llm_general_metrics", "General TRT LLM metrics", ["general_type", "model", "version"]);
    }

    /// <summary>vLLM's prefix-cache counters (names with a colon, which prometheus-net refuses: written by <see cref="VllmPrefixCacheMetrics"/>).</summary>
    public VllmPrefixCacheMetrics VllmPrefixCache { get; } = new();

    public Gauge TrtRequests { get; }
    public Gauge TrtRuntimeMemory { get; }
    public Gauge TrtKvCacheBlocks { get; }
    public Gauge TrtInflightBatcher { get; }
    public Gauge TrtGeneral { get; }

    public CollectorRegistry Registry { get; }

    public Counter Success { get; }
    public Counter Failure { get; }
    public Counter InferenceCount { get; }
    public Counter ExecutionCount { get; }
    public Gauge Pending { get; }
    public Counter RequestDuration { get; }
    public Counter QueueDuration { get; }
    public Counter ComputeInfer { get; }
    public Gauge GpuUtilization { get; }
    public Gauge GpuMemoryTotal { get; }
    public Gauge GpuMemoryUsed { get; }

    public static string ReasonLabel(Scheduling.FailureReason reason) => reason switch
    {
        Scheduling.FailureReason.Rejected => "REJECTED",
        Scheduling.FailureReason.Canceled => "CANCELED",
        Scheduling.FailureReason.Backend => "BACKEND",
        _ => "OTHER",
    };
}

/// <summary>
/// vLLM's prefix-cache counters, <c>vllm:prefix_cache_queries_total</c> and
/// <c>vllm:prefix_cache_hits_total</c> (vllm/v1/metrics/loggers.py since vLLM 0.10: prompt tokens
/// queried and found cached), labelled <c>model</c> / <c>version</c> as Triton's vLLM backend labels
/// its <c>vllm:</c> families. Prometheus allows the colon but prometheus-net's name check does not,
/// so these two families are written here, after the registry's, in the same text format.
/// </summary>
internal sealed class VllmPrefixCacheMetrics
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Model, string Version), Counts> _models = new();

    public void Record(string model, string version, int queried, int hits)
    {
        var counts = _models.GetOrAdd((model, version), static _ => new Counts());
        Interlocked.Add(ref counts.Queries, queried);
        Interlocked.Add(ref counts.Hits, hits);
    }

    public async Task WriteAsync(Stream body, CancellationToken cancellationToken)
    {
        if (_models.IsEmpty)
        {
            return;
        }
        var text = new System.Text.StringBuilder();
        Family(text, "vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.", static c => Interlocked.Read(ref c.Queries));
        Family(text, "vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", static c => Interlocked.Read(ref c.Hits));
        await body.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text.ToString()), cancellationToken);
    }

    private void Family(System.Text.StringBuilder text, string name, string help, Func<Counts, long> value)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        text.Append("# TYPE ").Append(name).Append(" counter\n");
        foreach (var ((model, version), counts) in _models)
        {
            text.Append(name).Append("{model=\"").Append(Escape(model)).Append("\",version=\"").Append(Escape(version)).Append("\"} ")
                .Append(value(counts).ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static string Escape(string label) => label.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private sealed class Counts
    {
        public long Queries;
        public long Hits;
    }
}
