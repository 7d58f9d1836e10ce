using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using TritonEmulator.Tests.Repository;

namespace TritonEmulator.Tests.Models.TensorRtLlm;

/// <summary>The shipped <c>models-trtllm/</c> repository: Triton's ensemble over preprocessing, tensorrt_llm and postprocessing.</summary>
public sealed class TensorRtLlmEnsembleTests
{
    private static Task<TestEmulator> StartAsync() =>
        TestEmulator.StartAsync([], profile: "zero-latency", repository: RepositoryPaths.TrtLlmModelsFolder);

    internal static ModelInferRequest Ensemble(string id, string prompt, int maxTokens, bool stream, params string[] stopWords)
    {
        var request = new ModelInferRequest { ModelName = "ensemble", Id = id };
        void Add(string name, string datatype, long[] shape, ByteString raw)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(shape);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(raw);
        }
        Add("text_input", TensorDataTypes.Bytes, [1, 1], TensorCodec.EncodeStrings(prompt));
        Add("max_tokens", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([maxTokens]));
        Add("stream", TensorDataTypes.Bool, [1, 1], TensorCodec.EncodeBool([stream]));
        Add("return_log_probs", TensorDataTypes.Bool, [1, 1], TensorCodec.EncodeBool([true]));
        if (stopWords.Length > 0)
        {
            Add("stop_words", TensorDataTypes.Bytes, [1, stopWords.Length], TensorCodec.EncodeStrings(stopWords));
        }
        return request;
    }

    internal static string Text(ModelInferResponse response)
    {
        var at = response.Outputs.Select(static o => o.Name).ToList().IndexOf("text_output");
        return at < 0 ? "" : string.Concat(TensorCodec.DecodeStrings(response.RawOutputContents[at].Span));
    }

    internal static int Tokens(ModelInferResponse response)
    {
        var at = response.Outputs.Select(static o => o.Name).ToList().IndexOf("output_log_probs");
        return at < 0 ? 0 : response.RawOutputContents[at].Length / sizeof(float);
    }

    private static bool IsFinal(ModelInferResponse response) => response.Parameters["triton_final_response"].BoolParam;

    [Fact]
    public async Task Repository_LoadsTheInflightBatcherLayout_AndTheEnsembleSaysTextInTextOut()
    {
        await using var emulator = await StartAsync();

        Assert.True((await emulator.Client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        var index = await emulator.Client.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = true });
        Assert.Equal(["ensemble", "postprocessing", "preprocessing", "tensorrt_llm"], index.Models.Select(static m => m.Name).Order());
        var metadata = await emulator.Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "ensemble" });
        Assert.Equal("ensemble", metadata.Platform);
        Assert.Contains(metadata.Inputs, static t => t is { Name: "text_input", Datatype: "BYTES" });
        Assert.Contains(metadata.Inputs, static t => t is { Name: "max_tokens", Datatype: "INT32" });
        Assert.Contains(metadata.Outputs, static t => t is { Name: "text_output", Datatype: "BYTES" });
    }

    [Fact]
    public async Task Stream_ThroughTheEnsemble_DeltasAddUpToTheWholeAnswer_AndEachComposingModelCountsIt()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Ensemble("whole", "The weather today is", 12, stream: false));
        await stream.SendAsync(Ensemble("deltas", "The weather today is", 12, stream: true));
        await stream.WaitUntilAsync(s => s.IsFinished("whole") && s.IsFinished("deltas"));

        Assert.Null(stream.ErrorFor("deltas"));
        var whole = Assert.Single(stream.ResponsesFor("whole"));
        var deltas = stream.ResponsesFor("deltas");
        Assert.True(deltas.Count > 3, $"tokens should stream as separate responses, got {deltas.Count}");
        Assert.All(deltas[..^1], r => Assert.False(IsFinal(r)));
        Assert.True(IsFinal(deltas[^1]));
        Assert.True(Text(whole).Length > 0);
        Assert.Equal(Text(whole), string.Concat(deltas.Select(Text)));
        Assert.Equal(Tokens(whole), deltas.Sum(Tokens));
        Assert.All(deltas.Where(r => Tokens(r) > 0), r => Assert.Equal(1, Tokens(r)));

        var stats = await emulator.Client.ModelStatisticsAsync(new ModelStatisticsRequest());
        foreach (var model in (string[])["ensemble", "preprocessing", "tensorrt_llm"])
        {
            Assert.Equal(2ul, stats.ModelStats.Single(m => m.Name == model).InferenceStats.Success.Count);
        }
        // postprocessing runs once per response of tensorrt_llm.
        Assert.Equal((ulong)(1 + deltas.Count), stats.ModelStats.Single(m => m.Name == "postprocessing").InferenceStats.Success.Count);
    }

    [Fact]
    public async Task StopWords_EndTheGeneration_WithTheStopWordAsItsLastText()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Ensemble("free", "The weather today is", 24, stream: false));
        await stream.WaitUntilAsync(s => s.IsFinished("free"));
        var free = Text(Assert.Single(stream.ResponsesFor("free")));
        var words = free.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(words.Length > 3, free);
        var stop = " " + words[2];

        await stream.SendAsync(Ensemble("stopped", "The weather today is", 24, stream: false, stop));
        await stream.WaitUntilAsync(s => s.IsFinished("stopped"));

        var stopped = Text(Assert.Single(stream.ResponsesFor("stopped")));
        Assert.EndsWith(stop, stopped);
        Assert.StartsWith(stopped, free);
        Assert.True(stopped.Length < free.Length);
    }

    private static ModelInferRequest With(ModelInferRequest request, string name, string datatype, ByteString raw)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
        tensor.Shape.Add([1, 1]);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(raw);
        return request;
    }

    [Fact]
    public async Task MinTokens_OnTheTimingEngine_KeepsTheEndIdAwayUntilReached()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Ensemble("free", "The weather today is", 12, stream: false));
        await stream.WaitUntilAsync(s => s.IsFinished("free"));
        var free = Text(Assert.Single(stream.ResponsesFor("free")));
        var ids = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2").EncodeToIds(free).ToList();
        Assert.True(ids.Count > 6, free);
        // The 4th token of the free answer as the end id: without min_tokens the answer ends before it.
        var end = ids.Skip(3).First(id => ids.IndexOf(id) >= 3);
        var cut = ids.IndexOf(end);

        ModelInferRequest Ended(string id, int minTokens) =>
            With(With(Ensemble(id, "The weather today is", 12, stream: false), "end_id", TensorDataTypes.Int32, TensorCodec.EncodeInt32([end])),
                "min_tokens", TensorDataTypes.Int32, TensorCodec.EncodeInt32([minTokens]));
        await stream.SendAsync(Ended("ended", 0));
        await stream.SendAsync(Ended("held", cut + 3));
        await stream.WaitUntilAsync(s => s.IsFinished("ended") && s.IsFinished("held"));

        var ended = Assert.Single(stream.ResponsesFor("ended"));
        var held = Assert.Single(stream.ResponsesFor("held"));
        Assert.Equal(cut, Tokens(ended));
        Assert.True(Tokens(held) >= cut + 3, $"min_tokens {cut + 3} gave {Tokens(held)}: '{Text(held)}'");
    }

    [Fact]
    public async Task PresencePenalty_OnTheTimingEngine_ChangesTheGreedyAnswer()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Ensemble("free", "The weather today is", 40, stream: false));
        await stream.SendAsync(With(Ensemble("penalised", "The weather today is", 40, stream: false), "presence_penalty", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32([50f])));
        await stream.WaitUntilAsync(s => s.IsFinished("free") && s.IsFinished("penalised"));

        var free = Text(Assert.Single(stream.ResponsesFor("free")));
        var penalised = Text(Assert.Single(stream.ResponsesFor("penalised")));
        var words = free.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(words.Length > words.Distinct().Count(), $"the free answer should repeat a word: '{free}'");
        Assert.NotEqual(free, penalised);
    }

    /// <summary>A tensorrt_llm_bls model beside the shipped ones, with the template's tensors this deployment uses.</summary>
    private const string BlsConfig = """
        name: "tensorrt_llm_bls"
        backend: "python"
        max_batch_size: 64
        model_transaction_policy { decoupled: true }
        input [
          { name: "text_input" data_type: TYPE_STRING dims: [ -1 ] },
          { name: "max_tokens" data_type: TYPE_INT32 dims: [ -1 ] },
          { name: "bad_words" data_type: TYPE_STRING dims: [ -1 ] optional: true },
          { name: "stop_words" data_type: TYPE_STRING dims: [ -1 ] optional: true },
          { name: "end_id" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
          { name: "pad_id" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
          { name: "top_k" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
          { name: "top_p" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "temperature" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "length_penalty" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "repetition_penalty" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "min_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
          { name: "presence_penalty" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "frequency_penalty" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
          { name: "seed" data_type: TYPE_UINT64 dims: [ 1 ] optional: true },
          { name: "return_log_probs" data_type: TYPE_BOOL dims: [ 1 ] optional: true },
          { name: "beam_width" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
          { name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true }
        ]
        output [
          { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] },
          { name: "cum_log_probs" data_type: TYPE_FP32 dims: [ -1 ] },
          { name: "output_log_probs" data_type: TYPE_FP32 dims: [ -1, -1 ] }
        ]
        instance_group [ { count: 64 kind: KIND_CPU } ]
        parameters: { key: "accumulate_tokens" value: { string_value: "false" } }
        parameters: { key: "tensorrt_llm_model_name" value: { string_value: "tensorrt_llm" } }
        """;

    [Fact]
    public async Task TensorRtLlmBls_CallsTheSameModels_AndAnswersAsTheEnsemble()
    {
        var root = Directory.CreateTempSubdirectory("trtllm-bls-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(RepositoryPaths.TrtLlmModelsFolder, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(root, Path.GetRelativePath(RepositoryPaths.TrtLlmModelsFolder, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            Directory.CreateDirectory(Path.Combine(root, "tensorrt_llm_bls", "1"));
            File.WriteAllText(Path.Combine(root, "tensorrt_llm_bls", "config.pbtxt"), BlsConfig);
            await using var emulator = await TestEmulator.StartAsync([], profile: "zero-latency", repository: root);
            await using var stream = new StreamRecorder(emulator.Client);
            ModelInferRequest Bls(ModelInferRequest request)
            {
                request.ModelName = "tensorrt_llm_bls";
                request.Id = "bls-" + request.Id;
                return request;
            }
            foreach (var streamed in (bool[])[false, true])
            {
                await stream.SendAsync(Ensemble($"e{streamed}", "The weather today is", 12, streamed, " sunny"));
                await stream.SendAsync(Bls(Ensemble($"e{streamed}", "The weather today is", 12, streamed, " sunny")));
            }
            await stream.WaitUntilAsync(s => new[] { "eFalse", "eTrue", "bls-eFalse", "bls-eTrue" }.All(s.IsFinished));

            Assert.True((await emulator.Client.ModelReadyAsync(new ModelReadyRequest { Name = "tensorrt_llm_bls" })).Ready);
            foreach (var id in (string[])["eFalse", "eTrue"])
            {
                Assert.Null(stream.ErrorFor("bls-" + id));
                var ensemble = stream.ResponsesFor(id);
                var bls = stream.ResponsesFor("bls-" + id);
                Assert.Equal(string.Concat(ensemble.Select(Text)), string.Concat(bls.Select(Text)));
                Assert.Equal(ensemble.Sum(Tokens), bls.Sum(Tokens));
                Assert.Equal(ensemble.Count, bls.Count);
                Assert.All(bls, r => Assert.Equal("tensorrt_llm_bls", r.ModelName));
            }
            Assert.True(stream.ResponsesFor("bls-eTrue").Count > 3);
            var stats = await emulator.Client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "tensorrt_llm_bls" });
            Assert.Equal(2ul, stats.ModelStats.Single().InferenceStats.Success.Count);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task BadRequests_GetTritonsErrors()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        var missing = Ensemble("missing", "Hi", 4, stream: true);
        var at = missing.Inputs.Select(static i => i.Name).ToList().IndexOf("max_tokens");
        missing.Inputs.RemoveAt(at);
        missing.RawInputContents.RemoveAt(at);
        await stream.SendAsync(missing);
        await stream.SendAsync(Ensemble("long", string.Concat(Enumerable.Repeat("word ", 1100)).TrimEnd(), 4, stream: true));
        await stream.WaitUntilAsync(s => s.IsFinished("missing") && s.IsFinished("long"));

        Assert.Equal("[request id: missing] expected 2 inputs but got 3 inputs for model 'ensemble'. Got input(s) ['text_input','stream','return_log_probs'], but missing required input(s) ['max_tokens']. Please provide all required input(s).",
            stream.ErrorFor("missing"));
        Assert.Equal("in ensemble 'ensemble', [request id: long] Prompt length (1100) exceeds maximum input length (1024).", stream.ErrorFor("long"));
    }

    [Fact]
    public async Task Metrics_ExportTensorRtLlmsFiveFamilies_WithTheirLabels()
    {
        await using var emulator = await StartAsync();
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Ensemble("m", "The weather today is", 8, stream: true));
        await stream.WaitUntilAsync(s => s.IsFinished("m"));
        using var http = new HttpClient { BaseAddress = emulator.Endpoints.Metrics };

        var text = await http.GetStringAsync("/metrics");

        string[] expected =
        [
            .. new[] { "active", "max", "scheduled", "context", "waiting" }.Select(static t => $"nv_trt_llm_request_metrics{{model=\"tensorrt_llm\",request_type=\"{t}\",version=\"1\"}}"),
            .. new[] { "max", "free", "used", "tokens_per", "reused", "fraction" }.Select(static t => $"nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"{t}\",model=\"tensorrt_llm\",version=\"1\"}}"),
            .. new[] { "cpu", "gpu", "pinned" }.Select(static t => $"nv_trt_llm_runtime_memory_metrics{{memory_type=\"{t}\",model=\"tensorrt_llm\",version=\"1\"}}"),
            .. new[] { "total_context_tokens", "generation_requests", "micro_batch_id", "paused_requests" }.Select(static t => $"nv_trt_llm_inflight_batcher_metrics{{inflight_batcher_specific_metric=\"{t}\",model=\"tensorrt_llm\",version=\"1\"}}"),
            .. new[] { "timestamp", "iteration_counter" }.Select(static t => $"nv_trt_llm_general_metrics{{general_type=\"{t}\",model=\"tensorrt_llm\",version=\"1\"}}"),
        ];
        var lines = text.Split('\n');
        foreach (var series in expected)
        {
            Assert.Contains(lines, line => line.StartsWith(series + " ", StringComparison.Ordinal));
        }
        Assert.Contains("nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\",model=\"tensorrt_llm\",version=\"1\"} 960", lines);
        Assert.Contains("nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"tokens_per\",model=\"tensorrt_llm\",version=\"1\"} 64", lines);
        Assert.Contains("nv_trt_llm_request_metrics{model=\"tensorrt_llm\",request_type=\"max\",version=\"1\"} 64", lines);
        Assert.DoesNotContain(lines, line => line.StartsWith("nv_trt_llm_general_metrics{general_type=\"iteration_counter\",model=\"tensorrt_llm\",version=\"1\"} 0", StringComparison.Ordinal));
    }
}
