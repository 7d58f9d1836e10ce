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

namespace Gateway.Tests.EndToEnd;

/// <summary>The real TritonEmulator (the repository's models/, A100 GPT-J timing) with a gateway in front.</summary>
public sealed class EmulatorHost : IAsyncLifetime, IContractEngine
{
    private const uint EndId = 50256;

    /// <summary>GPT-2 BPE straight from Microsoft.ML.Tokenizers, not through the gateway's tokenizer.</summary>
    private static readonly Microsoft.ML.Tokenizers.Tokenizer Gpt2 = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2");

    public const string LongModel = "gpt-j-6b-long";

    public WebApplication Emulator { get; private set; } = null!;

    public EmulatorEndpoints Endpoints { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public GrpcChannel TritonChannel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = BuildEmulator("a100-gptj-6b");
        await Emulator.StartAsync();
        Endpoints = Emulator.GetEndpoints();
        TritonChannel = GrpcChannel.ForAddress(Endpoints.Grpc);
        var models = new Dictionary<string, string?>();
        foreach (var (key, value) in global::Gateway.Hosting.GatewayServiceCollectionExtensions.DefaultCatalog)
        {
            models[key] = value;
            // "gpt-j-6b-long": the same Triton model with an end id the engine's corpus never produces,
            // so a generation runs to max_tokens (seconds on the A100 profile) for cancellation tests.
            models[key.Replace("gpt-j-6b", LongModel, StringComparison.Ordinal)] = key.EndsWith(":EndId", StringComparison.Ordinal) ? "50255" : value;
        }
        Gateway = await GatewayHost.StartAsync(Endpoints.Grpc, models);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        TritonChannel.Dispose();
        await Emulator.StopAsync(new CancellationToken(canceled: true));
        await Emulator.DisposeAsync();
    }

    string IContractEngine.Contract => "fastertransformer";

    GatewayHost IContractEngine.Gateway => Gateway;

    string IContractEngine.Model => "gpt-j-6b";

    string IContractEngine.ChatTemplate => global::Gateway.Text.ChatTemplates.GptPlain;

    string IContractEngine.ChatPrompt => "Tell me about the weather";

    string IContractEngine.LongModel => LongModel;

    // 400 tokens take ≈ 9 s on the A100 profile, and the long model's end id never comes.
    OpenAI.Chat.ChatCompletionOptions IContractEngine.LongRunningOptions() => new() { MaxOutputTokenCount = 400 };

    Task<ulong> IContractEngine.CancelledAsync() => CancelledCountAsync();

    /// <summary>
    /// Greedy generation asked of the engine with FT's own tensors (GPT-2 ids in, cumulative
    /// <c>output_ids</c> out); the answer ends at the end id, after <paramref name="maxTokens"/>,
    /// or (in text) before the first stop string. Token counts exclude the end id, as OpenAI's do.
    /// </summary>
    async Task<EngineAnswer> IContractEngine.GreedyAsync(string prompt, int maxTokens, IReadOnlyList<string> stop)
    {
        var ids = Gpt2.EncodeToIds(prompt).Select(static id => (uint)id).ToArray();
        var request = new ModelInferRequest { ModelName = "fastertransformer", Id = "direct-" + Guid.NewGuid().ToString("N") };
        void Add(string name, string datatype, long[] shape, Google.Protobuf.ByteString raw)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add(shape);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(raw);
        }
        Add("input_ids", TensorDataTypes.UInt32, [1, ids.Length], TensorCodec.EncodeUInt32(ids));
        Add("input_lengths", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([(uint)ids.Length]));
        Add("request_output_len", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([(uint)maxTokens]));
        Add("end_id", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([EndId]));
        Add("runtime_top_k", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([1]));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel).ModelStreamInfer(cancellationToken: timeout.Token);
        await call.RequestStream.WriteAsync(request, timeout.Token);
        await call.RequestStream.CompleteAsync();
        var generated = new List<int>();
        var ended = false;
        await foreach (var message in call.ResponseStream.ReadAllAsync(timeout.Token))
        {
            Assert.Empty(message.ErrorMessage);
            var response = message.InferResponse;
            var outputs = response.Outputs.Select(static o => o.Name).ToList();
            if (outputs.IndexOf("output_ids") is var at and >= 0)
            {
                // Cumulative: prompt + every token so far, valid up to sequence_length.
                var length = (int)TensorCodec.ReadUInt32(response.RawOutputContents[outputs.IndexOf("sequence_length")].Span, 0);
                generated.Clear();
                ended = false;
                for (var i = ids.Length; i < length && !ended; i++)
                {
                    var id = (int)TensorCodec.ReadUInt32(response.RawOutputContents[at].Span, i);
                    ended = id == EndId;
                    if (!ended)
                    {
                        generated.Add(id);
                    }
                }
            }
        }
        var text = Gpt2.Decode(generated) ?? "";
        var cut = stop.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(static i => i >= 0).DefaultIfEmpty(-1).Min();
        return cut >= 0
            ? new EngineAnswer(text[..cut], "stop", ids.Length, generated.Count)
            : new EngineAnswer(text, ended ? "stop" : "length", ids.Length, generated.Count);
    }

    /// <summary>Cancelled requests of the FT model in Triton's own statistics (response_stats cancel count).</summary>
    public async Task<ulong> CancelledCountAsync()
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel);
        var stats = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "fastertransformer" });
        return stats.ModelStats.Aggregate(0ul, (sum, model) => sum + model.ResponseStats.Values.Aggregate(0ul, (s, r) => s + (r.Cancel?.Count ?? 0)));
    }

    /// <summary>Waits until Triton's statistics count more cancelled requests than <paramref name="before"/>.</summary>
    public async Task WaitForCancelAsync(ulong before, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (await CancelledCountAsync() <= before)
        {
            // Statistics have no push channel; poll them until the cancel shows (bounded by the timeout).
            await Task.Delay(TimeSpan.FromMilliseconds(50), cts.Token);
        }
    }

    /// <summary>A TritonEmulator on loopback port 0 serving the repository's models/ with a timing profile.</summary>
    public static WebApplication BuildEmulator(string profile) => EmulatorApplication.Build([], builder =>
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Emulator:HttpPort"] = "0",
            ["Emulator:GrpcPort"] = "0",
            ["Emulator:MetricsPort"] = "0",
            ["Emulator:ListenAddress"] = "127.0.0.1",
            ["Emulator:ModelRepository"] = FindModels(),
            ["Emulator:Profile"] = profile,
        });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
    });

    internal static string FindModels()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "models", "fastertransformer", "config.pbtxt");
            if (File.Exists(candidate))
            {
                return Path.Combine(dir.FullName, "models");
            }
        }
        throw new DirectoryNotFoundException("models/ not found above the test output folder");
    }
}
