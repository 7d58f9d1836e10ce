using System.ClientModel;
using System.Text;
using Gateway.Tests.EndToEnd.Vllm;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using OpenAI;
using TritonEmulator.Hosting;
using OpenAI.Chat;
using TritonEmulator.Tests.Models.TensorRtLlm;

namespace Gateway.Tests.EndToEnd.TensorRtLlm;

/// <summary>
/// The shipped <c>models-trtllm/</c> repository on the tiny GGUF (llama.cpp under <c>tensorrt_llm</c>),
/// with room for a tool prompt (max input 1024, max sequence 2048), behind the gateway.
/// </summary>
public sealed class TensorRtLlmStructuredHost : IAsyncLifetime
{
    public const string Model = "tiny-trtllm";

    private TinyTrtLlmRepository? _repository;

    public WebApplication Emulator { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _repository = new TinyTrtLlmRepository(TensorRtLlmHost.ShippedRepository, maxInputLength: 1024, maxSequenceLength: 2048);
        Emulator = TensorRtLlmHost.BuildEmulator(_repository.Root);
        await Emulator.StartAsync();
        Gateway = await GatewayHost.StartAsync(Emulator.GetEndpoints().Grpc, new Dictionary<string, string?>
        {
            [$"Gateway:Models:{Model}:TritonModel"] = "ensemble",
            [$"Gateway:Models:{Model}:Contract"] = "tensorrtllm",
            [$"Gateway:Models:{Model}:ChatTemplate"] = "chatml",
            [$"Gateway:Models:{Model}:ContextWindow"] = "2048",
            [$"Gateway:Models:{Model}:MaxInputTokens"] = "1024",
            [$"Gateway:Models:{Model}:MaxOutputTokens"] = "200",
            [$"Gateway:Models:{Model}:EndId"] = "2",
        });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Emulator.StopAsync(new CancellationToken(canceled: true));
        await Emulator.DisposeAsync();
        _repository?.Dispose();
    }
}

/// <summary>
/// Structured outputs and a named tool call through the official OpenAI SDK on the TensorRT-LLM
/// contract: the gateway sends guided_decoding_guide_type / guided_decoding_guide, the ensemble maps
/// them to tensorrt_llm, whose llama.cpp sampler follows the grammar.
/// </summary>
public sealed class TensorRtLlmStructuredEndToEndTests(TensorRtLlmStructuredHost host) : IClassFixture<TensorRtLlmStructuredHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private ChatClient Client() => new(TensorRtLlmStructuredHost.Model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(host.Gateway.Endpoints.Rest, "v1"), NetworkTimeout = Wait });

    private static ChatCompletionOptions Person() => new()
    {
        Temperature = 0,
        MaxOutputTokenCount = 200,
        ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(StructuredOutputEndToEndTests.PersonSchema), jsonSchemaIsStrict: true),
    };

    private static ChatCompletionOptions Weather()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 120, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather") };
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "Forecast", BinaryData.FromString(StructuredOutputEndToEndTests.WeatherParameters), functionSchemaIsStrict: true));
        return options;
    }

    [Fact]
    public async Task JsonSchemaStrict_UnaryAndStreamed_AreSchemaValid()
    {
        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("abc")], Person());
        Assert.True(completion.FinishReason == ChatFinishReason.Stop, completion.Content[0].Text);
        StructuredOutputEndToEndTests.AssertValid(StructuredOutputEndToEndTests.PersonSchema, completion.Content[0].Text);

        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("abc")], Person()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(completion.Content[0].Text, text.ToString());
    }

    [Fact]
    public async Task NamedToolChoice_UnaryAndStreamed_ArgumentsAreSchemaValid()
    {
        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Weather in Paris?")], Weather());
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal(("get_weather", ChatFinishReason.Stop), (call.FunctionName, completion.FinishReason));
        StructuredOutputEndToEndTests.AssertValid(StructuredOutputEndToEndTests.WeatherParameters, call.FunctionArguments.ToString());

        var arguments = new StringBuilder();
        string? name = null;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], Weather()))
        {
            foreach (var piece in update.ToolCallUpdates)
            {
                name ??= piece.FunctionName;
                arguments.Append(piece.FunctionArgumentsUpdate?.ToString());
            }
        }
        Assert.Equal("get_weather", name);
        Assert.Equal(call.FunctionArguments.ToString(), arguments.ToString());
    }
}

/// <summary>
/// The same through the timing engine (GPT-J on the token model, no weights): a guided row writes a
/// schema-valid instance, so demos and tests without a GGUF still run the whole structured path.
/// </summary>
public sealed class TensorRtLlmTimingStructuredTests(TensorRtLlmHost host) : IClassFixture<TensorRtLlmHost>
{
    private ChatClient Client() => new(TensorRtLlmHost.Model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(host.Gateway.Endpoints.Rest, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    [Fact]
    public async Task TimingEngine_JsonSchemaAndNamedTool_AreSchemaValid_StreamedToo()
    {
        const string schema = """
            {"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":18,"maximum":120},
             "tags":{"type":"array","items":{"enum":["red","green"]},"minItems":1,"maxItems":2},"home":{"$ref":"#/$defs/place"},"kind":{"const":"person"}},
             "required":["name","age","tags","home","kind"],"additionalProperties":false,
             "$defs":{"place":{"type":"object","properties":{"zip":{"type":"integer","minimum":1000,"maximum":9999}},"required":["zip"],"additionalProperties":false}}}
            """;
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 200, ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(schema), jsonSchemaIsStrict: true) };
        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Invent a person.")], options);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        StructuredOutputEndToEndTests.AssertValid(schema, completion.Content[0].Text);

        var tool = new ChatCompletionOptions { MaxOutputTokenCount = 100, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather") };
        tool.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "Forecast", BinaryData.FromString(StructuredOutputEndToEndTests.WeatherParameters), functionSchemaIsStrict: true));
        var arguments = new StringBuilder();
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], tool))
        {
            foreach (var piece in update.ToolCallUpdates)
            {
                arguments.Append(piece.FunctionArgumentsUpdate?.ToString());
            }
        }
        StructuredOutputEndToEndTests.AssertValid(StructuredOutputEndToEndTests.WeatherParameters, arguments.ToString());
    }
}
