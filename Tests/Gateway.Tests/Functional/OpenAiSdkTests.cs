using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Functional;

/// <summary>
/// The official OpenAI .NET SDK and Microsoft.Extensions.AI as unchanged clients of the gateway,
/// against a scripted Triton that answers under either contract: FasterTransformer (cumulative
/// token ids) or vLLM (text deltas with the backend's counts and finish reason). Every test runs
/// once per contract and expects the same behaviour.
/// </summary>
public sealed class OpenAiSdkTests
{
    public static TheoryData<string> Contracts => new() { "fastertransformer", "vllm" };

    /// <summary>A vLLM-contract catalogue entry under the same public name as the default FT one.</summary>
    private static readonly Dictionary<string, string?> VllmCatalogue = new()
    {
        ["Gateway:Models:gpt-j-6b:TritonModel"] = "vllm_model",
        ["Gateway:Models:gpt-j-6b:Contract"] = "vllm",
        ["Gateway:Models:gpt-j-6b:ChatTemplate"] = "chatml",
        ["Gateway:Models:gpt-j-6b:ContextWindow"] = "2048",
        ["Gateway:Models:gpt-j-6b:MaxOutputTokens"] = "1024",
    };

    private static ChatClient Client(GatewayHost gateway, string key = TestKeys.Full, string model = "gpt-j-6b") =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(gateway.Endpoints.Rest, "v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    /// <summary>
    /// A backend that answers <paramref name="text"/> (GPT-2 tokens), cut at the request's token
    /// limit, in the contract's own form: FT sends one cumulative response per token and Triton's
    /// empty final response; vLLM sends one text delta per token and ends with its finish reason.
    /// Neither applies stop strings: the gateway must.
    /// </summary>
    private static async Task<ScriptedBackend> StartAsync(string contract, string text)
    {
        var ids = RestStreamingTests.Gpt2.Encode(text);
        var triton = await ScriptedTriton.StartAsync(async call =>
        {
            if (contract == "vllm")
            {
                var max = Json.Parse(call.InputString("sampling_parameters")).GetProperty("max_tokens").GetInt32();
                var count = Math.Min(max, ids.Count);
                for (var i = 0; i < count; i++)
                {
                    var last = i == count - 1;
                    await call.SendVllmDeltaAsync(RestStreamingTests.Gpt2.CreateDetokenizerText(ids[i]), 1, last ? (count < ids.Count ? "length" : "stop") : "None", final: last);
                }
                return;
            }
            var limit = (int)call.InputIds("request_output_len")[0];
            await call.SendTokensAsync(ids.Take(limit));
            await call.SendEmptyFinalAsync();
        });
        return new ScriptedBackend(triton, await GatewayHost.StartAsync(triton.Address, contract == "vllm" ? VllmCatalogue : null));
    }

    private sealed record ScriptedBackend(ScriptedTriton Triton, GatewayHost Gateway) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Gateway.DisposeAsync();
            await Triton.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Contracts))]
    public async Task OpenAiSdk_CompleteChat_TextFinishReasonAndUsage(string contract)
    {
        await using var backend = await StartAsync(contract, " The sky is blue.");
        ChatCompletion completion = await Client(backend.Gateway).CompleteChatAsync([new UserChatMessage("Sky color?")], new ChatCompletionOptions { MaxOutputTokenCount = 50 });
        Assert.Equal(" The sky is blue.", completion.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.True(completion.Usage.InputTokenCount > 0);
        Assert.Equal(RestStreamingTests.Gpt2.Encode(" The sky is blue.").Count, completion.Usage.OutputTokenCount);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Theory]
    [MemberData(nameof(Contracts))]
    public async Task OpenAiSdk_StreamChat_UpdatesThenLengthAndUsage(string contract)
    {
        await using var backend = await StartAsync(contract, " one two three four five");
        var text = new System.Text.StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Client(backend.Gateway).CompleteChatStreamingAsync([new UserChatMessage("Count")], new ChatCompletionOptions { MaxOutputTokenCount = 3 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.Equal(" one two three", text.ToString());
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, finish);
        Assert.NotNull(usage);
        Assert.Equal(3, usage.OutputTokenCount);
        Assert.True(updates >= 5); // role, three tokens, finish (+ usage)
    }

    [Theory]
    [MemberData(nameof(Contracts))]
    public async Task OpenAiSdk_StopSequence_IsHonouredAndNotReturned(string contract)
    {
        await using var backend = await StartAsync(contract, " Hello world and more");
        var options = new ChatCompletionOptions { StopSequences = { " and" } };
        ChatCompletion completion = await Client(backend.Gateway).CompleteChatAsync([new UserChatMessage("Greet")], options);
        Assert.Equal(" Hello world", completion.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
    }

    [Theory]
    [MemberData(nameof(Contracts))]
    public async Task OpenAiSdk_UnknownModel_Throws404(string contract)
    {
        await using var backend = await StartAsync(contract, " x");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client(backend.Gateway, model: "gpt-9").CompleteChatAsync([new UserChatMessage("Hi")]));
        Assert.Equal(404, error.Status);
        Assert.Contains("model_not_found", error.Message);
    }

    [Theory]
    [MemberData(nameof(Contracts))]
    public async Task ExtensionsAi_GetResponse_AndStreaming(string contract)
    {
        await using var backend = await StartAsync(contract, " Fine, thanks.");
        IChatClient chat = Client(backend.Gateway).AsIChatClient();

        var response = await chat.GetResponseAsync("How are you?", new ChatOptions { MaxOutputTokens = 2 });
        Assert.Equal(" Fine,", response.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(2, response.Usage?.OutputTokenCount);

        var streamed = new System.Text.StringBuilder();
        UsageDetails? usage = null;
        await foreach (var update in chat.GetStreamingResponseAsync("How are you?"))
        {
            streamed.Append(update.Text);
            usage ??= update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }
        Assert.Equal(" Fine, thanks.", streamed.ToString());
        Assert.Equal(RestStreamingTests.Gpt2.Encode(" Fine, thanks.").Count, usage?.OutputTokenCount);
    }
}
