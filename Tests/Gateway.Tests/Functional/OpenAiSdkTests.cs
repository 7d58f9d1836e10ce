using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Functional;

/// <summary>The official OpenAI .NET SDK and Microsoft.Extensions.AI as unchanged clients of the gateway (scripted Triton).</summary>
public sealed class OpenAiSdkTests
{
    private static ChatClient Client(GatewayHost gateway, string key = TestKeys.Full, string model = "gpt-j-6b") =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(gateway.Endpoints.Rest, "v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    private static Task<ScriptedTriton> Script(string text) => ScriptedTriton.StartAsync(async call =>
    {
        var ids = RestStreamingTests.Gpt2.Encode(text);
        var max = (int)call.InputIds("request_output_len")[0];
        await call.SendTokensAsync(ids.Take(max));
        await call.SendEmptyFinalAsync();
    });

    [Fact]
    public async Task OpenAiSdk_CompleteChat_TextFinishReasonAndUsage()
    {
        await using var triton = await Script(" The sky is blue.");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        ChatCompletion completion = await Client(gateway).CompleteChatAsync([new UserChatMessage("Sky color?")], new ChatCompletionOptions { MaxOutputTokenCount = 50 });
        Assert.Equal(" The sky is blue.", completion.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.True(completion.Usage.InputTokenCount > 0);
        Assert.Equal(RestStreamingTests.Gpt2.Encode(" The sky is blue.").Count, completion.Usage.OutputTokenCount);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task OpenAiSdk_StreamChat_UpdatesThenLengthAndUsage()
    {
        await using var triton = await Script(" one two three four five");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var text = new System.Text.StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Client(gateway).CompleteChatStreamingAsync([new UserChatMessage("Count")], new ChatCompletionOptions { MaxOutputTokenCount = 3 }))
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

    [Fact]
    public async Task OpenAiSdk_StopSequence_IsHonouredAndNotReturned()
    {
        await using var triton = await Script(" Hello world and more");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var options = new ChatCompletionOptions { StopSequences = { " and" } };
        ChatCompletion completion = await Client(gateway).CompleteChatAsync([new UserChatMessage("Greet")], options);
        Assert.Equal(" Hello world", completion.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public async Task OpenAiSdk_UnknownModel_Throws404()
    {
        await using var triton = await Script(" x");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client(gateway, model: "gpt-9").CompleteChatAsync([new UserChatMessage("Hi")]));
        Assert.Equal(404, error.Status);
        Assert.Contains("model_not_found", error.Message);
    }

    [Fact]
    public async Task ExtensionsAi_GetResponse_AndStreaming()
    {
        await using var triton = await Script(" Fine, thanks.");
        await using var gateway = await GatewayHost.StartAsync(triton.Address);
        IChatClient chat = Client(gateway).AsIChatClient();

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
