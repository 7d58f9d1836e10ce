using Gateway.Grpc.Tensors;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Triton.Inference;
using TritonEmulator.Hosting;

namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>
/// A temporary model repository with the tiny GGUF behind <c>backend: "vllm"</c> (<c>tiny</c>: two
/// contexts; <c>tiny_single</c>: one, with an 8192-token context) and a vLLM model whose GGUF is missing (<c>missing</c>),
/// served by a real engine on loopback port 0. Shared by the tests of a class.
/// </summary>
public sealed class TinyLlamaEngine : IAsyncLifetime
{
    public const string Model = "tiny";
    public const string SingleContextModel = "tiny_single";
    public const string TwoContextModel = "tiny_pair";
    public const string MissingModel = "missing";
    public const string CachedModel = "tiny_cached";

    private WebApplication? _app;

    public string Repository { get; } = Directory.CreateTempSubdirectory("vllm-repo-").FullName;

    public GrpcChannel Channel { get; private set; } = null!;

    /// <summary>The engine's gRPC address (for a gateway in front of it).</summary>
    public Uri GrpcAddress { get; private set; } = null!;

    public GRPCInferenceService.GRPCInferenceServiceClient Client { get; private set; } = null!;

    /// <summary>The engine's Prometheus endpoint.</summary>
    public Uri MetricsAddress { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    internal TinyLlama Weights { get; } = TinyLlama.Create();

    public async Task InitializeAsync()
    {
        var gguf = Path.Combine(Repository, "tiny.gguf");
        Weights.WriteGguf(gguf);
        WriteModel(Model, """{"model": "tiny.gguf", "gpu_memory_utilization": 0.5}""", maxContexts: 2, copyFrom: gguf);
        // Beyond the trained 256 tokens (llama.cpp allows it), so a request can run long enough to be cancelled.
        WriteModel(SingleContextModel, """{"model": "../../tiny.gguf", "max_model_len": 8192}""", maxContexts: 1, copyFrom: null);
        WriteModel(TwoContextModel, """{"model": "../../tiny.gguf", "max_model_len": 8192}""", maxContexts: 2, copyFrom: null);
        WriteModel(CachedModel, """{"model": "../../tiny.gguf", "max_model_len": 1024, "enable_prefix_caching": true}""", maxContexts: 1, copyFrom: null);
        WriteModel(MissingModel, """{"model": "not-here.gguf"}""", maxContexts: 1, copyFrom: null);
        _app = EmulatorApplication.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Emulator:HttpPort"] = "0",
            ["Emulator:GrpcPort"] = "0",
            ["Emulator:MetricsPort"] = "0",
            ["Emulator:ListenAddress"] = "127.0.0.1",
            ["Emulator:ModelRepository"] = Repository,
        }));
        await _app.StartAsync();
        var endpoints = _app.GetEndpoints();
        GrpcAddress = endpoints.Grpc;
        MetricsAddress = endpoints.Metrics;
        Channel = GrpcChannel.ForAddress(endpoints.Grpc);
        Client = new GRPCInferenceService.GRPCInferenceServiceClient(Channel);
        Http = new HttpClient { BaseAddress = endpoints.Http };
    }

    private void WriteModel(string name, string engineArgs, int maxContexts, string? copyFrom)
    {
        var version = Directory.CreateDirectory(Path.Combine(Repository, name, "1")).FullName;
        File.WriteAllText(Path.Combine(Repository, name, "config.pbtxt"), $$"""
            backend: "vllm"
            instance_group [ { count: 1, kind: KIND_MODEL } ]
            parameters { key: "emulator_max_contexts" value { string_value: "{{maxContexts}}" } }
            parameters { key: "emulator_threads" value { string_value: "2" } }
            """);
        File.WriteAllText(Path.Combine(version, "model.json"), engineArgs);
        if (copyFrom is not null)
        {
            File.Copy(copyFrom, Path.Combine(version, "tiny.gguf"));
        }
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        Channel?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        Directory.Delete(Repository, recursive: true);
    }

    /// <summary>A vLLM-contract request: the prompt, sampling parameters as JSON, and optional BOOL flags.</summary>
    public static ModelInferRequest Request(string model, string id, string prompt, string samplingJson, params (string Name, bool Value)[] flags)
    {
        var request = new ModelInferRequest { ModelName = model, Id = id };
        request.Parameters["triton_enable_empty_final_response"] = new InferParameter { BoolParam = false };
        AddBytes(request, "text_input", prompt);
        AddBytes(request, "sampling_parameters", samplingJson);
        foreach (var (name, value) in flags)
        {
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = "BOOL", Shape = { 1 } });
            request.RawInputContents.Add(TensorCodec.EncodeBool([value]));
        }
        return request;
    }

    private static void AddBytes(ModelInferRequest request, string name, string value)
    {
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = "BYTES", Shape = { 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeStrings(value));
    }

    /// <summary>Sends requests on one ModelStreamInfer call and reads until each has its final response or an error.</summary>
    public async Task<List<ModelStreamInferResponse>> StreamAsync(params ModelInferRequest[] requests)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = Client.ModelStreamInfer(cancellationToken: timeout.Token);
        foreach (var request in requests)
        {
            await call.RequestStream.WriteAsync(request, timeout.Token);
        }
        var open = requests.Select(static r => r.Id).ToHashSet();
        var messages = new List<ModelStreamInferResponse>();
        await foreach (var message in call.ResponseStream.ReadAllAsync(timeout.Token))
        {
            messages.Add(message);
            if (!string.IsNullOrEmpty(message.ErrorMessage) || IsFinal(message.InferResponse))
            {
                open.Remove(message.InferResponse?.Id ?? "");
                if (!string.IsNullOrEmpty(message.ErrorMessage) && requests.Length == 1)
                {
                    open.Clear();
                }
            }
            if (open.Count == 0)
            {
                break;
            }
        }
        await call.RequestStream.CompleteAsync();
        return messages;
    }

    /// <summary>
    /// Sends <paramref name="first"/>, waits for its first response (so it holds a context), then
    /// sends <paramref name="second"/> on the same stream; reads until both have ended.
    /// </summary>
    public async Task<List<ModelStreamInferResponse>> StreamWhileFirstRunsAsync(ModelInferRequest first, ModelInferRequest second)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = Client.ModelStreamInfer(cancellationToken: timeout.Token);
        await call.RequestStream.WriteAsync(first, timeout.Token);
        var messages = new List<ModelStreamInferResponse>();
        var open = new HashSet<string> { first.Id };
        var sent = false;
        await foreach (var message in call.ResponseStream.ReadAllAsync(timeout.Token))
        {
            Assert.Empty(message.ErrorMessage);
            messages.Add(message);
            if (!sent)
            {
                sent = true;
                open.Add(second.Id);
                await call.RequestStream.WriteAsync(second, timeout.Token);
            }
            if (IsFinal(message.InferResponse))
            {
                open.Remove(message.InferResponse.Id);
            }
            if (open.Count == 0)
            {
                break;
            }
        }
        await call.RequestStream.CompleteAsync();
        return messages;
    }

    public static bool IsFinal(ModelInferResponse? response) =>
        response is not null && response.Parameters.TryGetValue("triton_final_response", out var p) && p.BoolParam;

    public static string? Text(ModelInferResponse response, string output) =>
        Index(response, output) is var i and >= 0 ? string.Concat(TensorCodec.DecodeStrings(response.RawOutputContents[i].Span)) : null;

    public static uint? UInt(ModelInferResponse response, string output) =>
        Index(response, output) is var i and >= 0 ? TensorCodec.ReadUInt32(response.RawOutputContents[i].Span, 0) : null;

    private static int Index(ModelInferResponse response, string output)
    {
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            if (response.Outputs[i].Name == output)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Failed (e.g. cancelled) requests of a model, from the statistics extension.</summary>
    public async Task<ulong> FailuresAsync(string model)
    {
        var statistics = await Client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = model });
        return statistics.ModelStats.Single().InferenceStats.Fail.Count;
    }
}
