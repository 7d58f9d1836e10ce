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
    bool HasQueueCounters);

/// <summary>
/// Reads the few series routing needs from Triton's Prometheus text exposition, straight from the
/// UTF-8 bytes: no strings, no regex, one pass. Series of the same name are summed over their
/// labels (every model of the replica); the TensorRT-LLM series are told apart by their
/// <c>request_type</c> / <c>kv_cache_block_type</c> label.
/// </summary>
internal static class TritonMetricsParser
{
    private static ReadOnlySpan<byte> Pending => "nv_inference_pending_request_count"u8;
    private static ReadOnlySpan<byte> QueueDuration => "nv_inference_queue_duration_us"u8;
    private static ReadOnlySpan<byte> Success => "nv_inference_request_success"u8;
    private static ReadOnlySpan<byte> TrtRequests => "nv_trt_llm_request_metrics"u8;
    private static ReadOnlySpan<byte> TrtKvBlocks => "nv_trt_llm_kv_cache_block_metrics"u8;
    private static ReadOnlySpan<byte> RequestType => "request_type"u8;
    private static ReadOnlySpan<byte> KvBlockType => "kv_cache_block_type"u8;

    public static TritonMetricsSample Parse(ReadOnlySpan<byte> text)
    {
        double pending = 0, queue = 0, success = 0, waiting = 0, active = 0, max = 0, kvUsed = 0, kvMax = 0;
        bool hasPending = false, hasQueue = false, hasSuccess = false;
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
            else if (name.SequenceEqual(TrtRequests))
            {
                var type = Label(labels, RequestType);
                if (type.SequenceEqual("waiting"u8))
                {
                    waiting += value;
                    hasPending = true;
                }
                else if (type.SequenceEqual("active"u8))
                {
                    active += value;
                }
                else if (type.SequenceEqual("max"u8))
                {
                    max += value;
                }
            }
            else if (name.SequenceEqual(TrtKvBlocks))
            {
                var type = Label(labels, KvBlockType);
                if (type.SequenceEqual("used"u8))
                {
                    kvUsed += value;
                }
                else if (type.SequenceEqual("max"u8))
                {
                    kvMax += value;
                }
            }
        }
        return new TritonMetricsSample(pending, queue, success, waiting, active, max, kvUsed, kvMax, hasPending, hasQueue && hasSuccess);
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
    private static ReadOnlySpan<byte> Label(ReadOnlySpan<byte> labels, ReadOnlySpan<byte> key)
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
