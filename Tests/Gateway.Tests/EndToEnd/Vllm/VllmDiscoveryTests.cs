using System.ClientModel;
using System.Text.Json;
using Gateway.Models;
using Gateway.Tests.Functional;
using OpenAI;
using OpenAI.Chat;
using Triton.Inference;
using TritonEmulator.Tests.Models.Vllm;

namespace Gateway.Tests.EndToEnd.Vllm;

/// <summary>
/// Model folders with <c>backend: "vllm"</c> that the catalogue does not name are found in Triton's
/// repository index and served without configuration (<c>Gateway:ModelDiscovery:Enabled</c>).
/// </summary>
public sealed class VllmDiscoveryTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private readonly TinyLlamaEngine _engine = new();
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        await _engine.InitializeAsync();
        _gateway = await GatewayHost.StartAsync(_engine.GrpcAddress, new Dictionary<string, string?>
        {
            // One configured model; the engine's other ready vLLM models are left to discovery.
            ["Gateway:Models:tiny-chat:TritonModel"] = TinyLlamaEngine.Model,
            ["Gateway:Models:tiny-chat:Contract"] = "vllm",
            ["Gateway:Models:tiny-chat:ChatTemplate"] = "chatml",
            ["Gateway:Models:tiny-chat:ContextWindow"] = "256",
            ["Gateway:Models:tiny-chat:MaxOutputTokens"] = "200",
            ["Gateway:ModelDiscovery:Enabled"] = "true",
            ["Gateway:ModelDiscovery:Interval"] = "00:00:00.2",
        });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _engine.DisposeAsync();
    }

    [Fact]
    public async Task UnconfiguredVllmModel_IsListedAndAnswersThroughTheOpenAiSdk()
    {
        // Discovery adds the models of one index read one after another: wait for both.
        var listed = await WaitForModelsAsync(TinyLlamaEngine.TwoContextModel, TinyLlamaEngine.SingleContextModel);

        Assert.Contains("tiny-chat", listed);
        Assert.Contains(TinyLlamaEngine.SingleContextModel, listed);
        Assert.DoesNotContain(TinyLlamaEngine.Model, listed); // already served as tiny-chat
        Assert.DoesNotContain(TinyLlamaEngine.MissingModel, listed); // UNAVAILABLE in Triton

        var client = new ChatClient(TinyLlamaEngine.TwoContextModel, new ApiKeyCredential(TestKeys.Full),
            new OpenAIClientOptions { Endpoint = new Uri(_gateway.Endpoints.Rest, "v1"), NetworkTimeout = Wait });
        ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("abc")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 100 });

        // The default template (chatml) ends the prompt with a newline, which the tiny model continues with "▁a".
        Assert.Equal(" a b c" + TinyLlama.AfterC, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public void ToCatalogEntry_ReadsTemplateAndWindowFromConfigParameters_AndSkipsTokenIdModels()
    {
        var options = new ModelDiscoveryOptions();
        var vllm = new ModelConfig { Name = "llama", Backend = "vllm" };
        vllm.Parameters["chat_template"] = new ModelParameter { StringValue = "zephyr" };
        vllm.Parameters["max_model_len"] = new ModelParameter { StringValue = "2048" };

        var entry = TritonModelDiscovery.ToCatalogEntry(vllm, null, options);

        Assert.NotNull(entry);
        Assert.Equal(("llama", "vllm", "zephyr", 2048, 1024), (entry.TritonModel, entry.Contract, entry.ChatTemplate, entry.ContextWindow, entry.MaxOutputTokens));
        var plain = TritonModelDiscovery.ToCatalogEntry(new ModelConfig { Name = "other", Backend = "vllm" }, null, options);
        Assert.Equal(("chatml", 4096), (plain!.ChatTemplate, plain.ContextWindow));
        Assert.Null(TritonModelDiscovery.ToCatalogEntry(new ModelConfig { Name = "fastertransformer", Backend = "fastertransformer" }, null, options));
    }

    private async Task<List<string>> WaitForModelsAsync(params string[] models)
    {
        using var timeout = new CancellationTokenSource(Wait);
        while (true)
        {
            var body = await _gateway.Http.GetStringAsync("/v1/models", timeout.Token);
            var ids = JsonDocument.Parse(body).RootElement.GetProperty("data").EnumerateArray()
                .Select(static m => m.GetProperty("id").GetString()!).ToList();
            if (models.All(ids.Contains))
            {
                return ids;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), timeout.Token);
        }
    }
}
