using System.Buffers.Text;
using System.Globalization;

namespace Gateway.Routing;

/// <summary>The load signals read from one scrape of a replica's Prometheus text (sums over every model).</summary>
internal readonly record struct TritonMetricsSample(
    double PendingRequests,
    double QueueDurationUs,
    double RequestSuccess,
    double TrtWaiting,
    double TrtActive,
    double TrtMax,
    double KvBlocksUsed,
    double KvBlocksMax,
    bool HasPending,
    bool HasQueueCounters)
{
    /// <summary>TensorRT-LLM requests scheduled in the last iteration (<c>request_type="scheduled"</c>).</summary>
    public double TrtScheduled { get; init; }

    /// <summary>TensorRT-LLM's used share of the KV-cache blocks (<c>kv_cache_block_type="fraction"</c>; the largest over models).</summary>
    public double KvFraction { get; init; }

    public bool HasKvFraction { get; init; }
}

/// <summary>
/// Reads the few series routing needs from Triton's Prometheus text exposition, straight from the
/// UTF-8 bytes: no strings, no regex, one pass. Series of the same name are summed over their
/// labels (every model of the replica). Triton's core series are read here; each engine's own
/// families go to that engine's parser (<see cref="TensorRtLlmMetricsParser"/>), and all of them
/// fill the one sample the scorer reads.
/// </summary>
internal static class TritonMetricsParser
{
    private static ReadOnlySpan<byte> Pending => "nv_inference_pending_request_count"u8;
    private static ReadOnlySpan<byte> QueueDuration => "nv_inference_queue_duration_us"u8;
    private static ReadOnlySpan<byte> Success => "nv_inference_request_success"u8;

    public static TritonMetricsSample Parse(ReadOnlySpan<byte> text)
    {
        double pending = 0, queue = 0, success = 0;
        bool hasPending = false, hasQueue = false, hasSuccess = false;
        var trt = new TensorRtLlmMetricsParser();
        while (!text.IsEmpty)
        {
            var end = text.IndexOf((byte)'\n');
            var line = end < 0 ? text : text[..end];
            text = end < 0 ? default : text[(end + 1)..];
            if (line.IsEmpty || line[0] == (byte)'#')
            {
                continue;
            }
            var nameEnd = line.IndexOfAny((byte)'{', (byte)' ');
            if (nameEnd <= 0)
            {
                continue;
            }
            var name = line[..nameEnd];
            ReadOnlySpan<byte> labels = default;
            var rest = line[nameEnd..];
            if (rest[0] == (byte)'{')
            {
                var close = rest.LastIndexOf((byte)'}');
                if (close < 0)
                {
                    continue;
                }
                labels = rest[1..close];
                rest = rest[(close + 1)..];
            }
            if (!TryValue(rest, out var value))
            {
                continue;
            }
            if (name.SequenceEqual(Pending))
            {
                pending += value;
                hasPending = true;
            }
            else if (name.SequenceEqual(QueueDuration))
            {
                queue += value;
                hasQueue = true;
            }
            else if (name.SequenceEqual(Success))
            {
                success += value;
                hasSuccess = true;
            }
            else
            {
                trt.Read(name, labels, value);
            }
        }
        return new TritonMetricsSample(pending, queue, success, trt.Waiting, trt.Active, trt.Max, trt.KvUsed, trt.KvMax, hasPending || trt.HasWaiting, hasQueue && hasSuccess)
        {
            TrtScheduled = trt.Scheduled,
            KvFraction = trt.KvFraction,
            HasKvFraction = trt.HasKvFraction,
        };
    }

    /// <summary>The sample value: the first field after the name and labels (a timestamp may follow).</summary>
    private static bool TryValue(ReadOnlySpan<byte> rest, out double value)
    {
        rest = rest.TrimStart((byte)' ');
        var space = rest.IndexOf((byte)' ');
        if (space >= 0)
        {
            rest = rest[..space];
        }
        rest = rest.TrimEnd((byte)'\r');
        if (Utf8Parser.TryParse(rest, out value, out var consumed) && consumed == rest.Length)
        {
            return double.IsFinite(value);
        }
        // NaN, +Inf and -Inf are valid sample values; they carry no usable load signal.
        return double.TryParse(rest, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
    }

    /// <summary>The value of label <paramref name="key"/> in <c>a="x",b="y"</c> (no escapes expected in these values).</summary>
    internal static ReadOnlySpan<byte> Label(ReadOnlySpan<byte> labels, ReadOnlySpan<byte> key)
    {
        while (!labels.IsEmpty)
        {
            var eq = labels.IndexOf((byte)'=');
            if (eq < 0 || eq + 1 >= labels.Length || labels[eq + 1] != (byte)'"')
            {
                return default;
            }
            var k = labels[..eq].Trim((byte)' ');
            var valueStart = labels[(eq + 2)..];
            var quote = valueStart.IndexOf((byte)'"');
            if (quote < 0)
            {
                return default;
            }
            if (k.SequenceEqual(key))
            {
                return valueStart[..quote];
            }
            labels = valueStart[(quote + 1)..];
            labels = labels.TrimStart((byte)',');
        }
        return default;
    }
}

/// <summary>
/// TensorRT-LLM's batch manager families (tensorrtllm_backend's custom metrics reporter), told apart
/// by their category label: <c>nv_trt_llm_request_metrics{request_type=waiting|scheduled|active|max}</c>
/// and <c>nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction|used|max}</c>.
/// </summary>
internal ref struct TensorRtLlmMetricsParser
{
    private static ReadOnlySpan<byte> Requests => "nv_trt_llm_request_metrics"u8;
    private static ReadOnlySpan<byte> KvBlocks => "nv_trt_llm_kv_cache_block_metrics"u8;
    private static ReadOnlySpan<byte> RequestType => "request_type"u8;
    private static ReadOnlySpan<byte> KvBlockType => "kv_cache_block_type"u8;

    public double Waiting;
    public double Scheduled;
    public double Active;
    public double Max;
    public double KvUsed;
    public double KvMax;
    public double KvFraction;
    public bool HasWaiting;
    public bool HasKvFraction;

    public void Read(ReadOnlySpan<byte> name, ReadOnlySpan<byte> labels, double value)
    {
        if (name.SequenceEqual(Requests))
        {
            var type = TritonMetricsParser.Label(labels, RequestType);
            if (type.SequenceEqual("waiting"u8))
            {
                Waiting += value;
                HasWaiting = true;
            }
            else if (type.SequenceEqual("scheduled"u8))
            {
                Scheduled += value;
            }
            else if (type.SequenceEqual("active"u8))
            {
                Active += value;
            }
            else if (type.SequenceEqual("max"u8))
            {
                Max += value;
            }
        }
        else if (name.SequenceEqual(KvBlocks))
        {
            var type = TritonMetricsParser.Label(labels, KvBlockType);
            if (type.SequenceEqual("fraction"u8))
            {
                KvFraction = Math.Max(KvFraction, value);
                HasKvFraction = true;
            }
            else if (type.SequenceEqual("used"u8))
            {
                KvUsed += value;
            }
            else if (type.SequenceEqual("max"u8))
            {
                KvMax += value;
            }
        }
    }
}
