using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using TritonEmulator.Tests.Models.Vllm;
using TritonEmulator.Tests.Repository;
using static TritonEmulator.Tests.Models.TensorRtLlm.TensorRtLlmEnsembleTests;

namespace TritonEmulator.Tests.Models.TensorRtLlm;

/// <summary>One engine serving the shipped TensorRT-LLM repository with the tiny GGUF as its engine, shared by a test class.</summary>
public sealed class TinyTrtLlmEngine : IAsyncLifetime
{
    private TinyTrtLlmRepository? _repository;

    internal TestEmulator Emulator { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _repository = new TinyTrtLlmRepository(RepositoryPaths.TrtLlmModelsFolder);
        Emulator = await TestEmulator.StartAsync([], repository: _repository.Root);
    }

    public async Task DisposeAsync()
    {
        await Emulator.DisposeAsync();
        _repository?.Dispose();
    }
}

/// <summary>
/// TensorRT-LLM's ensemble when <c>gpt_model_path</c> holds a GGUF: <c>tensorrt_llm</c> runs the model
/// on llama.cpp (in-flight batched, paged KV blocks), pre/postprocessing use the GGUF's vocabulary.
/// The tiny model continues the alphabet greedily: "abc" → " d e f … z", then its end of sequence.
/// </summary>
public sealed class TensorRtLlmGgufTests(TinyTrtLlmEngine engine) : IClassFixture<TinyTrtLlmEngine>
{
    private TestEmulator Emulator => engine.Emulator;

    private static ModelInferRequest With(ModelInferRequest request, string name, string datatype, ByteString raw, long elements = 1)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
        tensor.Shape.Add([1, elements]);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(raw);
        return request;
    }

    private static ModelInferRequest Int(ModelInferRequest request, string name, int value) => With(request, name, TensorDataTypes.Int32, TensorCodec.EncodeInt32([value]));

    private static ModelInferRequest Float(ModelInferRequest request, string name, float value) => With(request, name, TensorDataTypes.Fp32, TensorCodec.EncodeFloat32([value]));

    private async Task<List<ModelInferResponse>> RunAsync(ModelInferRequest request)
    {
        await using var stream = new StreamRecorder(Emulator.Client);
        await stream.SendAsync(request);
        await stream.WaitUntilAsync(s => s.IsFinished(request.Id), seconds: 60);
        Assert.Null(stream.ErrorFor(request.Id));
        return stream.ResponsesFor(request.Id);
    }

    [Fact]
    public async Task Ensemble_OnAGguf_IsTheModelsGreedyText_WholeOrStreamedAsOneTokenDeltas()
    {
        var whole = Assert.Single(await RunAsync(Ensemble("whole", "abc", 40, stream: false)));
        var deltas = await RunAsync(Ensemble("deltas", "abc", 40, stream: true));

        Assert.Equal(TinyLlama.AfterC, Text(whole));
        Assert.Equal(23, Tokens(whole));
        Assert.Equal(TinyLlama.AfterC, string.Concat(deltas.Select(Text)));
        Assert.All(deltas.Where(r => Tokens(r) > 0), r => Assert.Equal(1, Tokens(r)));
        Assert.Equal(23, deltas.Sum(Tokens));
        Assert.True(deltas[^1].Parameters["triton_final_response"].BoolParam);
    }

    [Fact]
    public async Task InflightBatching_TwoStreamsAtOnce_EachGetsItsOwnAnswer()
    {
        await using var stream = new StreamRecorder(Emulator.Client);
        await stream.SendAsync(Ensemble("first", "abc", 40, stream: true));
        await stream.SendAsync(Ensemble("second", "ghi", 40, stream: true));
        await stream.SendAsync(Ensemble("third", "uv", 3, stream: true));
        await stream.WaitUntilAsync(s => s.IsFinished("first") && s.IsFinished("second") && s.IsFinished("third"), seconds: 60);

        Assert.Equal(TinyLlama.AfterC, string.Concat(stream.ResponsesFor("first").Select(Text)));
        Assert.Equal(TinyLlama.AfterC[(TinyLlama.AfterC.IndexOf('i') + 1)..], string.Concat(stream.ResponsesFor("second").Select(Text)));
        Assert.Equal(" w x y", string.Concat(stream.ResponsesFor("third").Select(Text)));
    }

    [Fact]
    public async Task StopWords_AndBadWords_AreTokenizedWithTheGgufsVocabulary()
    {
        var stopped = With(Ensemble("stop", "abc", 40, stream: false), "stop_words", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(["g"]));
        var banned = With(Ensemble("bad", "abc", 5, stream: false), "bad_words", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(["e"]));

        Assert.Equal(" d e f g", Text(Assert.Single(await RunAsync(stopped))));
        var text = Text(Assert.Single(await RunAsync(banned)));
        Assert.StartsWith(" d", text);
        Assert.DoesNotContain(" e", text);
    }

    [Fact]
    public async Task MinTokens_KeepsTheEndIdAwayUntilReached()
    {
        var free = Assert.Single(await RunAsync(Int(Ensemble("free", "xy", 20, stream: false), "min_tokens", 0)));
        var held = Assert.Single(await RunAsync(Int(Ensemble("held", "xy", 20, stream: false), "min_tokens", 6)));

        Assert.Equal((" z", 1), (Text(free), Tokens(free)));
        Assert.StartsWith(" z", Text(held));
        Assert.True(Tokens(held) >= 6, $"min_tokens 6 gave {Tokens(held)} tokens: '{Text(held)}'");
    }

    [Fact]
    public async Task FrequencyAndPresencePenalties_ReachLlamaCppsSampler()
    {
        // A negative penalty (beyond the ~28 logit margin of the next letter) rewards a token already generated: greedy decoding then repeats " d".
        var frequency = Assert.Single(await RunAsync(Float(Ensemble("frequency", "abc", 6, stream: false), "frequency_penalty", -60f)));
        var presence = Assert.Single(await RunAsync(Float(Ensemble("presence", "abc", 6, stream: false), "presence_penalty", -60f)));

        var sampled = Assert.Single(await RunAsync(Float(Float(Float(Ensemble("sampledf", "abc", 6, stream: false), "frequency_penalty", -60f), "temperature", 0.01f), "top_p", 0.5f)));
        Assert.Equal(" d d d d d d", Text(sampled));
        Assert.Equal(" d d d d d d", Text(frequency));
        Assert.Equal(" d d d d d d", Text(presence));
    }

    [Fact]
    public async Task Seed_SameSeedSameText_OnLlamaCpp()
    {
        ModelInferRequest Sampled(string id, ulong seed)
        {
            var request = Float(Float(Ensemble(id, "abc", 12, stream: false), "temperature", 30f), "top_p", 1f);
            return With(request, "seed", TensorDataTypes.UInt64, TensorCodec.EncodeUInt64([seed]));
        }

        var first = Text(Assert.Single(await RunAsync(Sampled("s1", 11))));
        var again = Text(Assert.Single(await RunAsync(Sampled("s2", 11))));
        var other = Text(Assert.Single(await RunAsync(Sampled("s3", 12))));

        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public async Task CancelledStreams_GiveTheirLlamaCppSequencesBack()
    {
        // Twice as many cancelled requests as the engine has sequences: a sequence kept by a cancelled
        // request would leave the requests after it without one.
        for (var round = 0; round < 2; round++)
        {
            using var cancel = new CancellationTokenSource();
            await using var abandoned = new StreamRecorder(Emulator.Client, cancellationToken: cancel.Token);
            var ids = Enumerable.Range(0, TinyTrtLlmRepository.MaxBatchSize).Select(i => $"long-{round}-{i}").ToList();
            foreach (var id in ids)
            {
                await abandoned.SendAsync(Int(Ensemble(id, "abc", 220, stream: true), "min_tokens", 220));
            }
            await abandoned.WaitUntilAsync(s => ids.All(id => s.ResponsesFor(id).Count > 0), seconds: 60);
            await cancel.CancelAsync();
        }
        await using var stream = new StreamRecorder(Emulator.Client);
        var fresh = Enumerable.Range(0, TinyTrtLlmRepository.MaxBatchSize).Select(i => $"fresh-{i}").ToList();
        foreach (var id in fresh)
        {
            await stream.SendAsync(Ensemble(id, "abc", 40, stream: false));
        }
        await stream.WaitUntilAsync(s => fresh.All(s.IsFinished), seconds: 60);

        Assert.All(fresh, id => Assert.Equal(TinyLlama.AfterC, Text(Assert.Single(stream.ResponsesFor(id)))));
    }

    [Fact]
    public async Task Metrics_CountTheGgufEnginesKvBlocks()
    {
        await RunAsync(Ensemble("m", "abc", 8, stream: true));
        using var http = new HttpClient { BaseAddress = Emulator.Endpoints.Metrics };

        var lines = (await http.GetStringAsync("/metrics")).Split('\n');

        Assert.Contains($"nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"max\",model=\"tensorrt_llm\",version=\"1\"}} {TinyTrtLlmRepository.KvBlocks}", lines);
        Assert.Contains($"nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type=\"tokens_per\",model=\"tensorrt_llm\",version=\"1\"}} {TinyTrtLlmRepository.TokensPerBlock}", lines);
        Assert.Contains($"nv_trt_llm_request_metrics{{model=\"tensorrt_llm\",request_type=\"max\",version=\"1\"}} {TinyTrtLlmRepository.MaxBatchSize}", lines);
        Assert.DoesNotContain(lines, line => line.StartsWith("nv_trt_llm_general_metrics{general_type=\"iteration_counter\",model=\"tensorrt_llm\",version=\"1\"} 0", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SamplingConfigOutOfRange_GetsTheExecutorsChecks()
    {
        await using var stream = new StreamRecorder(Emulator.Client);
        await stream.SendAsync(Float(Ensemble("temperature", "abc", 4, stream: true), "temperature", -1f));
        await stream.SendAsync(Float(Ensemble("repetition", "abc", 4, stream: true), "repetition_penalty", 0f));
        await stream.SendAsync(Int(Ensemble("min", "abc", 4, stream: true), "min_tokens", -2));
        await stream.WaitUntilAsync(s => s.IsFinished("temperature") && s.IsFinished("repetition") && s.IsFinished("min"));

        Assert.Equal("in ensemble 'ensemble', [request id: temperature] Assertion failed: temperature.value() >= 0.f", stream.ErrorFor("temperature"));
        Assert.Equal("in ensemble 'ensemble', [request id: repetition] Repetition penalty should be strictly greater than zero. Provided value was 0.000000", stream.ErrorFor("repetition"));
        Assert.Equal("in ensemble 'ensemble', [request id: min] Assertion failed: minTokens.value() >= 0", stream.ErrorFor("min"));
    }

    [Fact]
    public async Task BeamWidthAboveTheConfiguredMaximum_IsTensorRtLlmsError()
    {
        await using var stream = new StreamRecorder(Emulator.Client);
        var request = Int(Ensemble("beams", "abc", 4, stream: true), "beam_width", 2);
        await stream.SendAsync(request);
        await stream.WaitUntilAsync(s => s.IsFinished("beams"));

        Assert.Equal("in ensemble 'ensemble', [request id: beams] Requested beam width 2 is larger than configured max beam width 1", stream.ErrorFor("beams"));
    }

    private HttpClient Http() => new() { BaseAddress = Emulator.Endpoints.Http, Timeout = TimeSpan.FromSeconds(60) };

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task GenerateExtension_OnTheEnsemble_MapsJsonKeysToInputs_AndOutputsToKeys()
    {
        using var http = Http();

        // The request of TensorRT-LLM's README: inputs at the top level, an empty bad_words string.
        using var response = await http.PostAsync("/v2/models/ensemble/generate", Json("""{"text_input": "abc", "max_tokens": 40, "bad_words": "", "stop_words": ""}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(TinyLlama.AfterC, json.GetProperty("text_output").GetString());
        Assert.Equal(("ensemble", "1"), (json.GetProperty("model_name").GetString(), json.GetProperty("model_version").GetString()));
        Assert.Equal(23, json.GetProperty("output_log_probs").GetArrayLength());
        Assert.Equal(JsonValueKind.Number, json.GetProperty("cum_log_probs").ValueKind);
        var keys = json.EnumerateObject().Select(static p => p.Name).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
        Assert.DoesNotContain("triton_final_response", keys);
    }

    [Fact]
    public async Task GenerateExtension_ParametersObject_AlsoBindsInputsByName()
    {
        using var http = Http();

        using var response = await http.PostAsync("/v2/models/ensemble/generate",
            Json("""{"text_input": "abc", "parameters": {"max_tokens": 40, "stop_words": ["g"], "priority": 1}}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(" d e f g", JsonDocument.Parse(body).RootElement.GetProperty("text_output").GetString());
    }

    [Fact]
    public async Task GenerateStreamExtension_OnTheEnsemble_SendsOneEventPerEngineIteration()
    {
        using var http = Http();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/ensemble/generate_stream")
        {
            Content = Json("""{"text_input": "abc", "max_tokens": 40, "stream": true}"""),
        };

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = new List<JsonElement>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    events.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone());
                }
            }
        }

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(events.Count > 3, $"one event per token, got {events.Count}");
        Assert.All(events, e => Assert.False(e.TryGetProperty("error", out _)));
        Assert.Equal(TinyLlama.AfterC, string.Concat(events.Select(static e => e.GetProperty("text_output").GetString())));
    }

    [Fact]
    public async Task GenerateExtension_Errors_AreTritons()
    {
        using var http = Http();

        using var missing = await http.PostAsync("/v2/models/ensemble/generate", Json("""{"text_input": "abc"}"""));
        using var streamed = await http.PostAsync("/v2/models/ensemble/generate", Json("""{"text_input": "abc", "max_tokens": 8, "stream": true}"""));

        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("missing required input(s) ['max_tokens']", JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        Assert.Equal(
            "generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses",
            JsonDocument.Parse(await streamed.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }
}
