using Gateway.Grpc.Tensors;
using Gateway.Tests.EndToEnd.Contracts;
using Gateway.Tests.Functional;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Triton.Inference;
using TritonEmulator.Hosting;

namespace Gateway.Tests.EndToEnd.TensorRtLlm;

/// <summary>
/// The real TritonEmulator serving the shipped <c>models-trtllm/</c> repository (TensorRT-LLM's
/// ensemble, A100 GPT-J timing) with a gateway in front: <c>gpt-j-6b</c> → the <c>ensemble</c> model
/// under the <c>tensorrtllm</c> contract, with model discovery on.
/// </summary>
public sealed class TensorRtLlmHost : IAsyncLifetime, IContractEngine
{
    private const int EndId = 50256;

    /// <summary>GPT-2 BPE straight from Microsoft.ML.Tokenizers, not through the gateway's tokenizer.</summary>
    private static readonly Microsoft.ML.Tokenizers.Tokenizer Gpt2 = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2");

    public const string Model = "gpt-j-6b";
    public const string LongModel = "gpt-j-6b-long";

    public WebApplication Emulator { get; private set; } = null!;

    public EmulatorEndpoints Endpoints { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public GrpcChannel TritonChannel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = BuildEmulator(ShippedRepository);
        await Emulator.StartAsync();
        Endpoints = Emulator.GetEndpoints();
        TritonChannel = GrpcChannel.ForAddress(Endpoints.Grpc);
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:ModelDiscovery:Enabled"] = "true",
            ["Gateway:ModelDiscovery:Interval"] = "00:00:00.2",
        };
        foreach (var (id, endId) in new[] { (Model, EndId), (LongModel, EndId - 1) })
        {
            // The long model: an end id the engine's corpus never produces, so it runs to max_tokens.
            settings[$"Gateway:Models:{id}:TritonModel"] = "ensemble";
            settings[$"Gateway:Models:{id}:Contract"] = "tensorrtllm";
            settings[$"Gateway:Models:{id}:ContextWindow"] = "2048";
            settings[$"Gateway:Models:{id}:MaxInputTokens"] = "1024";
            settings[$"Gateway:Models:{id}:MaxOutputTokens"] = "1024";
            settings[$"Gateway:Models:{id}:EndId"] = endId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        Gateway = await GatewayHost.StartAsync(Endpoints.Grpc, settings);
    }

    /// <summary>The shipped <c>models-trtllm/</c> folder.</summary>
    internal static string ShippedRepository => Path.Combine(Path.GetDirectoryName(EmulatorHost.FindModels())!, "models-trtllm");

    /// <summary>A real TritonEmulator on loopback port 0 serving <paramref name="repository"/>.</summary>
    internal static WebApplication BuildEmulator(string repository) => EmulatorApplication.Build([], builder =>
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Emulator:HttpPort"] = "0",
            ["Emulator:GrpcPort"] = "0",
            ["Emulator:MetricsPort"] = "0",
            ["Emulator:ListenAddress"] = "127.0.0.1",
            ["Emulator:ModelRepository"] = repository,
        });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
    });

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        TritonChannel.Dispose();
        await Emulator.StopAsync(new CancellationToken(canceled: true));
        await Emulator.DisposeAsync();
    }

    string IContractEngine.Contract => "tensorrtllm";

    GatewayHost IContractEngine.Gateway => Gateway;

    string IContractEngine.Model => Model;

    string IContractEngine.ChatTemplate => global::Gateway.Text.ChatTemplates.GptPlain;

    string IContractEngine.ChatPrompt => "Tell me about the weather";

    string IContractEngine.LongModel => LongModel;

    OpenAI.Chat.ChatCompletionOptions IContractEngine.LongRunningOptions() => new() { MaxOutputTokenCount = 400 };

    Task<ulong> IContractEngine.CancelledAsync() => CancelledCountAsync();

    /// <summary>
    /// Greedy generation asked of the engine's <c>tensorrt_llm</c> model itself, with TensorRT-LLM's
    /// own tensors (GPT-2 ids in, streamed new ids out): the text is what the ensemble's postprocessing
    /// makes of it, each streamed response decoded on its own; it ends at the end id, after
    /// <paramref name="maxTokens"/>, or (in text) before the first stop string.
    /// </summary>
    async Task<EngineAnswer> IContractEngine.GreedyAsync(string prompt, int maxTokens, IReadOnlyList<string> stop)
    {
        var ids = Gpt2.EncodeToIds(prompt).ToArray();
        var request = new ModelInferRequest { ModelName = "tensorrt_llm", Id = "direct-" + Guid.NewGuid().ToString("N") };
        void Add(string name, string datatype, long[] shape, Google.Protobuf.ByteString raw)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(shape);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(raw);
        }
        Add("input_ids", TensorDataTypes.Int32, [1, ids.Length], TensorCodec.EncodeInt32(ids));
        Add("input_lengths", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([ids.Length]));
        Add("request_output_len", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([maxTokens]));
        Add("end_id", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([EndId]));
        Add("runtime_top_k", TensorDataTypes.Int32, [1, 1], TensorCodec.EncodeInt32([1]));
        Add("streaming", TensorDataTypes.Bool, [1, 1], TensorCodec.EncodeBool([true]));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel).ModelStreamInfer(cancellationToken: timeout.Token);
        await call.RequestStream.WriteAsync(request, timeout.Token);
        await call.RequestStream.CompleteAsync();
        var text = new System.Text.StringBuilder();
        var generated = 0;
        await foreach (var message in call.ResponseStream.ReadAllAsync(timeout.Token))
        {
            Assert.Empty(message.ErrorMessage);
            var response = message.InferResponse;
            var outputs = response.Outputs.Select(static o => o.Name).ToList();
            if (outputs.IndexOf("output_ids") is var at and >= 0)
            {
                var length = TensorCodec.ReadInt32(response.RawOutputContents[outputs.IndexOf("sequence_length")].Span, 0);
                var step = new List<int>();
                for (var i = 0; i < length; i++)
                {
                    step.Add(TensorCodec.ReadInt32(response.RawOutputContents[at].Span, i));
                }
                generated += step.Count;
                text.Append(step.Count == 0 ? "" : Gpt2.Decode(step));
            }
        }
        var answer = text.ToString();
        var cut = stop.Select(s => answer.IndexOf(s, StringComparison.Ordinal)).Where(static i => i >= 0).DefaultIfEmpty(-1).Min();
        return cut >= 0
            ? new EngineAnswer(answer[..cut], "stop", ids.Length, generated)
            : new EngineAnswer(answer, generated < maxTokens ? "stop" : "length", ids.Length, generated);
    }

    /// <summary>Cancelled requests of the tensorrt_llm model in Triton's own statistics (response_stats cancel count).</summary>
    public async Task<ulong> CancelledCountAsync()
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel);
        var stats = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "tensorrt_llm" });
        return stats.ModelStats.Aggregate(0ul, (sum, model) => sum + model.ResponseStats.Values.Aggregate(0ul, (s, r) => s + (r.Cancel?.Count ?? 0)));
    }
}
