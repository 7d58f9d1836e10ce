using System.ClientModel;
using System.Text;
using Gateway.Tests.Functional;
using Gateway.Text;
using Grpc.Core;
using Llm.Gateway.V1;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using ChatFinishReason = OpenAI.Chat.ChatFinishReason;

namespace Gateway.Tests.EndToEnd.Contracts;

/// <summary>
/// The OpenAI .NET SDK, Microsoft.Extensions.AI and the gateway's gRPC face against a real engine,
/// once per Triton contract (<see cref="FasterTransformerSdkTests"/>, <see cref="VllmSdkTests"/>,
/// <see cref="TensorRtLlmSdkTests"/>):
/// the same behaviours must hold whichever contract serves the model. Expected answers come from
/// the engine itself, asked directly over Triton's protocol.
/// </summary>
public abstract class OpenAiSdkContractTests
{
    private const int MaxTokens = 24;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private readonly IContractEngine _engine;

    private protected OpenAiSdkContractTests(IContractEngine engine) => _engine = engine;

    private ChatClient Client(string? model = null) => new(model ?? _engine.Model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(_engine.Gateway.Endpoints.Rest, "v1"), NetworkTimeout = Wait });

    private IChatTemplate Template => ChatTemplates.Get(_engine.ChatTemplate);

    private string ChatPromptRendered => Template.Render([new ChatTurn("user", _engine.ChatPrompt)]);

    private Task<EngineAnswer> GreedyChatAsync(int maxTokens, params string[] stop) =>
        _engine.GreedyAsync(ChatPromptRendered, maxTokens, [.. Template.StopStrings, .. stop]);

    private static ChatFinishReason Finish(string reason) => reason switch
    {
        "stop" => ChatFinishReason.Stop,
        "length" => ChatFinishReason.Length,
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    private Task<(string Text, ChatFinishReason? Finish, ChatTokenUsage? Usage, int Updates)> StreamAsync(ChatCompletionOptions options, string? model = null) =>
        StreamChatAsync(Client(model), _engine.ChatPrompt, options);

    /// <summary>Streams one user message with the official SDK: the text, finish reason, usage and how many updates came.</summary>
    internal static async Task<(string Text, ChatFinishReason? Finish, ChatTokenUsage? Usage, int Updates)> StreamChatAsync(ChatClient client, string prompt, ChatCompletionOptions options)
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage(prompt)], options))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish = update.FinishReason ?? finish;
            usage = update.Usage ?? usage;
        }
        return (text.ToString(), finish, usage, updates);
    }

    [Fact]
    public async Task OpenAiSdk_Chat_IsTheEnginesGreedyAnswerWithItsUsage_StreamedOrNot()
    {
        var expected = await GreedyChatAsync(MaxTokens);
        Assert.True(expected.CompletionTokens > 2, $"{_engine.Contract}: the engine's answer should have several tokens, got '{expected.Text}'");
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens };

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(_engine.ChatPrompt)], options);

        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(Finish(expected.FinishReason), completion.FinishReason);
        Assert.Equal(expected.PromptTokens, completion.Usage.InputTokenCount);
        Assert.Equal(expected.CompletionTokens, completion.Usage.OutputTokenCount);

        var streamed = await StreamAsync(options);
        Assert.Equal(expected.Text, streamed.Text);
        Assert.Equal(Finish(expected.FinishReason), streamed.Finish);
        Assert.Equal(expected.PromptTokens, streamed.Usage?.InputTokenCount);
        Assert.Equal(expected.CompletionTokens, streamed.Usage?.OutputTokenCount);
        Assert.True(streamed.Updates > 3, $"tokens should arrive as separate updates, got {streamed.Updates}");
    }

    [Fact]
    public async Task ExtensionsAi_Streaming_IsTheEnginesGreedyAnswerWithItsUsage()
    {
        var expected = await GreedyChatAsync(MaxTokens);
        IChatClient chat = Client().AsIChatClient();
        var text = new StringBuilder();
        UsageDetails? usage = null;

        await foreach (var update in chat.GetStreamingResponseAsync(
            [new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, _engine.ChatPrompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = MaxTokens }))
        {
            text.Append(update.Text);
            usage ??= update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }

        Assert.Equal(expected.Text, text.ToString());
        Assert.Equal(expected.PromptTokens, usage?.InputTokenCount);
        Assert.Equal(expected.CompletionTokens, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task OpenAiSdk_MaxTokens_EndsWithLengthAfterExactlyThatMany_StreamedOrNot()
    {
        var expected = await GreedyChatAsync(3);
        Assert.Equal("length", expected.FinishReason);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 };

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(_engine.ChatPrompt)], options);
        var streamed = await StreamAsync(options);

        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(3, completion.Usage.OutputTokenCount);
        Assert.Equal((expected.Text, ChatFinishReason.Length, 3), (streamed.Text, streamed.Finish, streamed.Usage?.OutputTokenCount));
    }

    [Fact]
    public async Task OpenAiSdk_StopString_AnswerEndsJustBeforeIt_StreamedOrNot()
    {
        var full = await GreedyChatAsync(MaxTokens);
        // Three characters from the middle of the engine's own answer, at their first occurrence:
        // the answer must end right before them, whichever tokens they straddle.
        var at = Enumerable.Range(full.Text.Length / 2, full.Text.Length - full.Text.Length / 2 - 3)
            .First(i => full.Text.IndexOf(full.Text.Substring(i, 3), StringComparison.Ordinal) == i && full.Text.Substring(i, 3).Trim().Length > 0);
        var stop = full.Text.Substring(at, 3);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens, StopSequences = { stop } };

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(_engine.ChatPrompt)], options);
        var streamed = await StreamAsync(options);

        Assert.Equal(full.Text[..at], completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal((full.Text[..at], ChatFinishReason.Stop), (streamed.Text, streamed.Finish));
        Assert.Equal((await GreedyChatAsync(MaxTokens, stop)).Text, streamed.Text); // the engine, told the stop string, agrees
    }

    [Fact]
    public async Task OpenAiSdk_Seed_SameSeedSameAnswer_OtherSeedOtherAnswer()
    {
        async Task<string> Sample(long seed)
        {
            var options = new ChatCompletionOptions { Temperature = 2, MaxOutputTokenCount = 16 };
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
            options.Seed = seed;
#pragma warning restore OPENAI001
            ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(_engine.ChatPrompt)], options);
            return completion.Content[0].Text;
        }

        var first = await Sample(11);
        var greedy = await GreedyChatAsync(16);

        Assert.Equal(first, await Sample(11));
        Assert.NotEqual(first, await Sample(12));
        Assert.NotEqual(greedy.Text, first); // temperature 2 really samples
    }

    [Fact]
    public async Task OpenAiSdk_StreamAbandoned_EngineCountsTheRequestCancelled_AndServesTheNext()
    {
        var before = await _engine.CancelledAsync();
        using (var cancel = new CancellationTokenSource(Wait))
        {
            await foreach (var update in Client(_engine.LongModel).CompleteChatStreamingAsync([new UserChatMessage(_engine.ChatPrompt)], _engine.LongRunningOptions(), cancel.Token))
            {
                if (update.ContentUpdate.Count > 0 && update.ContentUpdate[0].Text.Length > 0)
                {
                    break; // disposes the SSE response: the gateway sees its client go
                }
            }
        }

        // Triton's statistics have no push channel: poll them until the cancelled request shows (bounded).
        using var timeout = new CancellationTokenSource(Wait);
        while (await _engine.CancelledAsync() <= before)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(50), timeout.Token);
        }
        // Whatever the request held (a batch slot, a llama.cpp context) is free again.
        ChatCompletion next = await Client(_engine.LongModel).CompleteChatAsync([new UserChatMessage(_engine.ChatPrompt)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 });
        Assert.Equal((ChatFinishReason.Length, 3), (next.FinishReason, next.Usage.OutputTokenCount));
    }

    [Fact]
    public async Task GrpcFace_StreamChat_IsTheEnginesGreedyAnswerWithItsUsage()
    {
        var expected = await GreedyChatAsync(MaxTokens);
        var client = new LlmGateway.LlmGatewayClient(_engine.Gateway.Grpc);
        using var call = client.StreamChat(new ChatRequest
        {
            Model = _engine.Model,
            Messages = { new Llm.Gateway.V1.ChatMessage { Role = "user", Content = _engine.ChatPrompt } },
            Sampling = new SamplingOptions { MaxTokens = MaxTokens, Temperature = 0 },
        }, new Metadata { { "authorization", $"Bearer {TestKeys.Full}" } });

        var events = await call.ResponseStream.ReadAllAsync().ToListAsync();

        var deltas = events.Where(static e => e.EventCase == GenerateEvent.EventOneofCase.Delta).ToList();
        Assert.Equal(expected.Text, string.Concat(deltas.Select(static e => e.Delta.Text)));
        Assert.True(deltas.Count > 2, $"expected streamed deltas, got {deltas.Count}");
        var final = Assert.Single(events, static e => e.EventCase == GenerateEvent.EventOneofCase.Final).Final;
        Assert.Same(events[^1].Final, final);
        Assert.Equal(expected.FinishReason == "stop" ? Llm.Gateway.V1.FinishReason.Stop : Llm.Gateway.V1.FinishReason.Length, final.FinishReason);
        Assert.Equal((uint)expected.PromptTokens, final.Usage.PromptTokens);
        Assert.Equal((uint)expected.CompletionTokens, final.Usage.CompletionTokens);
    }
}

/// <summary>The contract tests over the FasterTransformer GPT-J contract (the engine's token model, A100 timing).</summary>
public sealed class FasterTransformerSdkTests(EmulatorHost host) : OpenAiSdkContractTests(host), IClassFixture<EmulatorHost>;

/// <summary>The contract tests over the vLLM text contract (the tiny llama GGUF through llama.cpp).</summary>
public sealed class VllmSdkTests(Vllm.VllmHost host) : OpenAiSdkContractTests(host), IClassFixture<Vllm.VllmHost>;

/// <summary>The contract tests over TensorRT-LLM's ensemble (models-trtllm/: preprocessing, tensorrt_llm on the timing engine, postprocessing).</summary>
public sealed class TensorRtLlmSdkTests(TensorRtLlm.TensorRtLlmHost host) : OpenAiSdkContractTests(host), IClassFixture<TensorRtLlm.TensorRtLlmHost>;
