using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Functional;
using Grpc.Core;
using Llm.Gateway.V1;
using OpenAI;
using OpenAI.Chat;
using Gateway.Tests.EndToEnd.Contracts;
using TritonEmulator.Tests.Models.Vllm;

namespace Gateway.Tests.EndToEnd.Vllm;

/// <summary>
/// The tiny llama GGUF served by the real TritonEmulator under the vLLM backend contract, the
/// gateway in front (catalogue entries with <c>Contract=vllm</c>), shared by the tests of a class.
/// </summary>
public sealed class VllmHost : IAsyncLifetime, IContractEngine
{
    /// <summary>The two-context tiny model, chat template chatml.</summary>
    public const string Model = "tiny-chat";

    /// <summary>The single-context tiny model with an 8192-token context, for long generations.</summary>
    public const string LongModel = "tiny-long";

    public TinyLlamaEngine Engine { get; } = new();

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Engine.InitializeAsync();
        Gateway = await GatewayHost.StartAsync(Engine.GrpcAddress, new Dictionary<string, string?>
        {
            [$"Gateway:Models:{Model}:TritonModel"] = TinyLlamaEngine.Model,
            [$"Gateway:Models:{Model}:Contract"] = "vllm",
            [$"Gateway:Models:{Model}:ChatTemplate"] = "chatml",
            [$"Gateway:Models:{Model}:ContextWindow"] = "256",
            [$"Gateway:Models:{Model}:MaxOutputTokens"] = "200",
            [$"Gateway:Models:{LongModel}:TritonModel"] = TinyLlamaEngine.SingleContextModel,
            [$"Gateway:Models:{LongModel}:Contract"] = "vllm",
            [$"Gateway:Models:{LongModel}:ChatTemplate"] = "zephyr",
            [$"Gateway:Models:{LongModel}:ContextWindow"] = "8192",
            [$"Gateway:Models:{LongModel}:MaxOutputTokens"] = "8000",
        });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Engine.DisposeAsync();
    }

    string IContractEngine.Contract => "vllm";

    GatewayHost IContractEngine.Gateway => Gateway;

    string IContractEngine.Model => Model;

    string IContractEngine.ChatTemplate => global::Gateway.Text.ChatTemplates.ChatMl;

    string IContractEngine.ChatPrompt => "abc";

    string IContractEngine.LongModel => LongModel;

    /// <summary>
    /// Negative penalties reward tokens already generated, so at temperature 2 the tiny model soon
    /// repeats one token for ever and never samples its end: 8000 tokens, seconds of work (measured: 13 s).
    /// </summary>
    ChatCompletionOptions IContractEngine.LongRunningOptions()
    {
        var options = new ChatCompletionOptions { Temperature = 2, FrequencyPenalty = -2, PresencePenalty = -2, MaxOutputTokenCount = 8000 };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
        options.Seed = 5;
#pragma warning restore OPENAI001
        return options;
    }

    Task<ulong> IContractEngine.CancelledAsync() => Engine.FailuresAsync(TinyLlamaEngine.SingleContextModel);

    /// <summary>The vLLM contract asked directly: prompt and sampling JSON in, text, finish reason and exact counts out.</summary>
    async Task<EngineAnswer> IContractEngine.GreedyAsync(string prompt, int maxTokens, IReadOnlyList<string> stop)
    {
        var sampling = JsonSerializer.Serialize(new Dictionary<string, object> { ["temperature"] = 0, ["max_tokens"] = maxTokens, ["stop"] = stop });
        var messages = await Engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "direct-" + Guid.NewGuid().ToString("N"), prompt, sampling,
            ("exclude_input_in_output", true), ("return_finish_reason", true), ("return_num_input_tokens", true), ("return_num_output_tokens", true)));
        var response = Assert.Single(messages).InferResponse;
        return new EngineAnswer(TinyLlamaEngine.Text(response, "text_output")!, TinyLlamaEngine.Text(response, "finish_reason")!,
            (int)TinyLlamaEngine.UInt(response, "num_input_tokens")!.Value, (int)TinyLlamaEngine.UInt(response, "num_output_tokens")!.Value);
    }
}

/// <summary>Official clients → gateway → real TritonEmulator running the tiny llama model (vLLM contract).</summary>
public sealed class VllmEndToEndTests(VllmHost host) : IClassFixture<VllmHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<(string Text, string Finish, int PromptTokens, int CompletionTokens)> CompleteAsync(string json)
    {
        using var response = await host.Gateway.Http.PostAsync("/v1/completions", Json(json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var root = Functional.Json.Parse(body);
        var choice = root.GetProperty("choices")[0];
        var usage = root.GetProperty("usage");
        return (choice.GetProperty("text").GetString()!, choice.GetProperty("finish_reason").GetString()!,
            usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Completion_Greedy_IsTheModelsExactTextWithTheBackendsUsage()
    {
        var backend = await ((IContractEngine)host).GreedyAsync("abc", 100, []);
        Assert.Equal(new EngineAnswer(TinyLlama.AfterC, "stop", 4, 24), backend);

        var (text, finish, prompt, completion) = await CompleteAsync($$"""{"model":"{{VllmHost.Model}}","prompt":"abc","temperature":0,"max_tokens":100}""");

        Assert.Equal(TinyLlama.AfterC, text);
        Assert.Equal("stop", finish);
        // The backend's exact counts (<s> ▁a b c; ▁d … ▁z </s>), not the gateway's GPT-2 estimate (1 token for "abc").
        Assert.Equal(4, prompt);
        Assert.Equal(24, completion);
    }

    [Fact]
    public async Task Completion_Streaming_DeltasAddUpToTheGreedyTextAndUsageIsTheBackends()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = Json($$$"""{"model":"{{{VllmHost.Model}}}","prompt":"abc","temperature":0,"max_tokens":100,"stream":true,"stream_options":{"include_usage":true}}"""),
        };
        using var response = await host.Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (text, deltas, finish, usage) = await StreamedCompletion.ReadAsync(response);

        Assert.Equal(TinyLlama.AfterC, text);
        Assert.True(deltas > 1, $"expected streamed deltas, got {deltas}");
        Assert.Equal("stop", finish);
        Assert.Equal(4, usage!.Value.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(24, usage.Value.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Completion_StopString_IsNeverSentStreamingOrNot()
    {
        var (text, finish, _, _) = await CompleteAsync($$"""{"model":"{{VllmHost.Model}}","prompt":"abc","temperature":0,"max_tokens":100,"stop":["h i"]}""");
        Assert.Equal(" d e f g ", text);
        Assert.Equal("stop", finish);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = Json($$"""{"model":"{{VllmHost.Model}}","prompt":"abc","temperature":0,"max_tokens":100,"stop":["h i"],"stream":true}"""),
        };
        using var response = await host.Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var pieces = (await sse.ReadAllAsync())[..^1].Select(Functional.Json.Parse)
            .Where(static c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(static c => c.GetProperty("choices")[0].GetProperty("text").GetString()!).ToList();
        Assert.Equal(" d e f g ", string.Concat(pieces));
        Assert.DoesNotContain(pieces, static p => p.Contains('h'));
    }

    [Fact]
    public async Task MaxTokens_EndsWithLengthAndTheBackendsTokenCount()
    {
        var (text, finish, _, completion) = await CompleteAsync($$"""{"model":"{{VllmHost.Model}}","prompt":"abc","temperature":0,"max_tokens":5}""");

        Assert.Equal(" d e f g h", text);
        Assert.Equal("length", finish);
        Assert.Equal(5, completion);

    }

    [Fact]
    public async Task GrpcFace_StreamCompletion_DeltasThenFinalWithBackendUsage()
    {
        var client = new LlmGateway.LlmGatewayClient(host.Gateway.Grpc);
        using var call = client.StreamCompletion(new CompletionRequest
        {
            Model = VllmHost.Model,
            Prompt = "abc",
            Sampling = new SamplingOptions { MaxTokens = 100, Temperature = 0 },
        }, new Metadata { { "authorization", $"Bearer {TestKeys.Full}" } });
        var events = await call.ResponseStream.ReadAllAsync().ToListAsync();

        var deltas = events.Where(static e => e.EventCase == GenerateEvent.EventOneofCase.Delta).ToList();
        Assert.Equal(TinyLlama.AfterC, string.Concat(deltas.Select(static e => e.Delta.Text)));
        Assert.True(deltas.Count > 1);
        var final = Assert.Single(events, static e => e.EventCase == GenerateEvent.EventOneofCase.Final).Final;
        Assert.Equal(Llm.Gateway.V1.FinishReason.Stop, final.FinishReason);
        Assert.Equal(4u, final.Usage.PromptTokens);
        Assert.Equal(24u, final.Usage.CompletionTokens);
        Assert.Equal((uint)deltas.Sum(static e => e.Delta.TokenCount), final.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Models_ListsTheVllmModels()
    {
        using var response = await host.Gateway.Http.GetAsync("/v1/models");
        var ids = Functional.Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("data").EnumerateArray().Select(static m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains(VllmHost.Model, ids);
        Assert.Contains(VllmHost.LongModel, ids);
    }
}
