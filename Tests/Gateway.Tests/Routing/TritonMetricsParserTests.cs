using System.Text;
using Gateway.Routing;

namespace Gateway.Tests.Routing;

public sealed class TritonMetricsParserTests
{
    [Fact]
    public void Parse_SumsTritonSeriesOverModels_AndIgnoresCommentsAndOtherSeries()
    {
        var text = """
            # HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
            # TYPE nv_inference_pending_request_count gauge
            nv_inference_pending_request_count{model="fastertransformer",version="1"} 3
            nv_inference_pending_request_count{model="other",version="1"} 2
            nv_inference_queue_duration_us{model="fastertransformer",version="1"} 1500000
            nv_inference_request_success{model="fastertransformer",version="1"} 12 1712345678000
            nv_inference_request_failure{model="fastertransformer",reason="CANCELED",version="1"} 4
            nv_gpu_utilization{gpu_uuid="GPU-0"} 0.5
            """;

        var sample = TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(text.ReplaceLineEndings("\n")));

        Assert.Equal(5, sample.PendingRequests);
        Assert.Equal(1_500_000, sample.QueueDurationUs);
        Assert.Equal(12, sample.RequestSuccess);
        Assert.True(sample.HasPending);
        Assert.True(sample.HasQueueCounters);
        Assert.Equal(0, sample.TrtWaiting);
    }

    [Fact]
    public void Parse_TensorRtLlm_ReadsScheduledRequestsAndTheKvBlockFraction()
    {
        var text = "# HELP nv_trt_llm_request_metrics TRT LLM request metrics\n# TYPE nv_trt_llm_request_metrics gauge\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"scheduled\",version=\"1\"} 5\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"waiting\",version=\"1\"} 2\n"
            + "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"tensorrt_llm\",version=\"1\"} 0.4875\n"
            + "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"tokens_per\",model=\"tensorrt_llm\",version=\"1\"} 64\n";

        var sample = TritonMetricsParser.Parse(System.Text.Encoding.UTF8.GetBytes(text));

        Assert.Equal((5d, 2d), (sample.TrtScheduled, sample.TrtWaiting));
        Assert.True(sample.HasKvFraction);
        Assert.Equal(0.4875, sample.KvFraction);
        Assert.True(sample.HasPending);
    }

    [Fact]
    public void Parse_ReadsTensorRtLlmRequestAndKvCacheSeriesByLabel()
    {
        var text = "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"waiting\",version=\"1\"} 7\r\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"active\",version=\"1\"} 48\r\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"max\",version=\"1\"} 64\r\n"
            + "nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"context\",version=\"1\"} 2\r\n"
            + "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"used\",model=\"tensorrt_llm\",version=\"1\"} 300\r\n"
            + "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\",model=\"tensorrt_llm\",version=\"1\"} 400\r\n"
            + "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"free\",model=\"tensorrt_llm\",version=\"1\"} 100\r\n";

        var sample = TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(text));

        Assert.Equal((7d, 48d, 64d), (sample.TrtWaiting, sample.TrtActive, sample.TrtMax));
        Assert.Equal((300d, 400d), (sample.KvBlocksUsed, sample.KvBlocksMax));
        Assert.True(sample.HasPending);
        Assert.False(sample.HasQueueCounters);
    }

    [Fact]
    public void Parse_SkipsMalformedLinesAndNonFiniteValues()
    {
        var text = "nv_inference_pending_request_count{model=\"a\" 3\nnv_inference_pending_request_count{model=\"b\"} NaN\n"
            + "nv_inference_pending_request_count{model=\"c\"} +Inf\nnv_inference_pending_request_count 4\ngarbage\n";

        var sample = TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(text));

        Assert.Equal(4, sample.PendingRequests);
    }

    [Fact]
    public void Parse_ReadsTheEmulatorsRealExposition()
    {
        // prometheus-net's own output format, as the emulator serves it.
        var text = "# HELP nv_inference_pending_request_count x\n# TYPE nv_inference_pending_request_count gauge\n"
            + "nv_inference_pending_request_count{model=\"fastertransformer\",version=\"1\"} 0\n"
            + "nv_inference_queue_duration_us{model=\"fastertransformer\",version=\"1\"} 2.5E+06\n"
            + "nv_inference_request_success{model=\"fastertransformer\",version=\"1\"} 5\n";

        var sample = TritonMetricsParser.Parse(Encoding.UTF8.GetBytes(text));

        Assert.Equal(2_500_000, sample.QueueDurationUs);
        Assert.True(sample.HasPending);
    }
}
