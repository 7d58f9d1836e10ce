using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Microsoft.Extensions.Time.Testing;
using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using TritonEmulator.Tests.Repository;

namespace TritonEmulator.Tests.Models.TensorRtLlm;

/// <summary>
/// <c>enable_kv_cache_reuse</c> in the shipped <c>models-trtllm/tensorrt_llm</c> (A100 timing: prefill
/// 25 ms + 50 µs per computed token, 64-token blocks), on a fake clock: a repeated prefix is not
/// prefilled again and is counted as <c>kv_cache_block_type="reused"</c>.
/// </summary>
public sealed class TensorRtLlmPrefixReuseTests
{
    private const string Model = "tensorrt_llm";

    private static ModelInferRequest Ids(string id, uint[] prompt, int outputLength)
    {
        var request = new ModelInferRequest { ModelName = Model, Id = id };
        void Add(string name, string datatype, long[] shape, ByteString raw)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(shape);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(raw);
        }
        Add("input_ids", TensorDataTypes.Int32, [1, prompt.Length], TensorCodec.EncodeInt32([.. prompt.Select(static t => (int)t)]));
        Add("input_lengths", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([prompt.Length]));
        Add("request_output_len", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([outputLength]));
        Add("streaming", TensorDataTypes.Bool, [1, 1], TensorCodec.EncodeBool([true]));
        return request;
    }

    private static uint[] Prompt(uint first, int length) => [.. Enumerable.Range(0, length).Select(i => first + (uint)i)];

    private static async Task<TimeSpan> TimeToFirstTokenAsync(TestEmulator emulator, StreamRecorder stream, string id, uint[] prompt)
    {
        var sent = emulator.Clock!.GetUtcNow();
        await stream.SendAsync(Ids(id, prompt, 2));
        await emulator.RunClockUntilAsync(Model, stream, () => stream.IsFinished(id));
        Assert.Null(stream.ErrorFor(id));
        return stream.Messages.First(m => m.Message.InferResponse?.Id == id).At - sent;
    }

    private static async Task<double> ReusedBlocksAsync(TestEmulator emulator)
    {
        using var http = new HttpClient { BaseAddress = emulator.Endpoints.Metrics };
        var text = await http.GetStringAsync("/metrics");
        const string series = "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"reused\",model=\"tensorrt_llm\",version=\"1\"} ";
        var line = text.Split('\n').Single(l => l.StartsWith(series, StringComparison.Ordinal));
        return double.Parse(line[series.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task RepeatedPrefix_PrefillsOnlyTheUncachedTokens_AndCountsTheReusedBlocks()
    {
        await using var emulator = await TestEmulator.StartAsync([], new FakeTimeProvider(DateTimeOffset.UnixEpoch), repository: RepositoryPaths.TrtLlmModelsFolder);
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        var shared = Prompt(1000, 960); // 15 blocks of 64

        var cold = await TimeToFirstTokenAsync(emulator, stream, "cold", [.. shared, .. Prompt(5000, 40)]);
        var warm = await TimeToFirstTokenAsync(emulator, stream, "warm", [.. shared, .. Prompt(6000, 40)]);
        var other = await TimeToFirstTokenAsync(emulator, stream, "other", [.. Prompt(7000, 960), .. Prompt(6000, 40)]);

        Assert.Equal(TimeSpan.FromMilliseconds(25 + 1000 * 0.05), cold); // the whole prompt
        Assert.Equal(TimeSpan.FromMilliseconds(25 + 40 * 0.05), warm); // 15 blocks reused, 40 tokens computed
        Assert.Equal(cold, other); // a different first block: nothing reused
        Assert.Equal(15, await ReusedBlocksAsync(emulator));
    }
}
