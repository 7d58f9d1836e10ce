extern alias JsonSchemaNet;
using System.ClientModel;
using System.Text;
using System.Text.Json;
using JsonSchemaNet::Json.Schema;
using Gateway.Tests.Functional;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.EndToEnd.Vllm;

/// <summary>
/// Structured outputs and forced tool calls through the official OpenAI SDK → gateway → real
/// TritonEmulator on llama.cpp. The tiny model only ever continues the alphabet, so every JSON
/// answer here exists because the grammar constrained its sampling.
/// </summary>
public sealed class StructuredOutputEndToEndTests(VllmHost host) : IClassFixture<VllmHost>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    internal const string PersonSchema = """
        {"type":"object","properties":{
          "name":{"type":"string","minLength":2,"maxLength":8},
          "age":{"type":"integer","minimum":18,"maximum":120},
          "member":{"type":"boolean"},
          "tags":{"type":"array","items":{"enum":["red","green","blue"]},"minItems":1,"maxItems":3},
          "nickname":{"anyOf":[{"type":"string","maxLength":4},{"type":"null"}]},
          "home":{"$ref":"#/$defs/place"},
          "code":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"}
        },
        "required":["name","age","member","tags","nickname","home","code"],
        "additionalProperties":false,
        "$defs":{"place":{"type":"object","properties":{"city":{"type":"string","maxLength":6},"zip":{"type":"integer","minimum":1000,"maximum":99999}},"required":["city","zip"],"additionalProperties":false}}}
        """;

    internal const string WeatherParameters = """
        {"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7}},
         "required":["city","unit","days"],"additionalProperties":false}
        """;

    private ChatClient Client(string model) => new(model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(host.Gateway.Endpoints.Rest, "v1"), NetworkTimeout = Wait });

    internal static void AssertValid(string schema, string json)
    {
        using var document = JsonDocument.Parse(json);
        var result = JsonSchema.FromText(schema).Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, $"{json} is not valid: {JsonSerializer.Serialize(result)}");
    }

    private static ChatCompletionOptions PersonOptions(float temperature = 0) => new()
    {
        Temperature = temperature,
        MaxOutputTokenCount = 200,
        ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema), jsonSchemaIsStrict: true),
    };

    private static ChatCompletionOptions WeatherOptions()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 120, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather") };
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "The weather forecast for a city", BinaryData.FromString(WeatherParameters), functionSchemaIsStrict: true));
        options.Tools.Add(ChatTool.CreateFunctionTool("get_time", "The time in a city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string","maxLength":10}},"required":["city"],"additionalProperties":false}"""), functionSchemaIsStrict: true));
        return options;
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(1.2f)]
    public async Task JsonSchemaStrict_Unary_ContentIsSchemaValid(float temperature)
    {
        ChatCompletion completion = await Client(VllmHost.Model).CompleteChatAsync([new UserChatMessage("abc")], PersonOptions(temperature));

        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        AssertValid(PersonSchema, completion.Content[0].Text);
    }

    [Fact]
    public async Task JsonSchemaStrict_Streamed_ContentIsSchemaValid()
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        var updates = 0;
        await foreach (var update in Client(VllmHost.Model).CompleteChatStreamingAsync([new UserChatMessage("abc")], PersonOptions()))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
            finish ??= update.FinishReason;
        }

        Assert.True(updates > 10, "the JSON arrives token by token");
        Assert.Equal(ChatFinishReason.Stop, finish);
        AssertValid(PersonSchema, text.ToString());
    }

    [Fact]
    public async Task StrictToolUnderAuto_TheEngineTakesTheStructuralTag_AndTheModelsTextStaysFree()
    {
        // The alphabet model never writes "<tool_call>", so the lazy grammar never triggers: the answer is
        // its own text, and the request succeeding shows the engine compiled the gateway's structural tag.
        var options = WeatherOptions();
        options.ToolChoice = ChatToolChoice.CreateAutoChoice();
        options.MaxOutputTokenCount = 60;
        ChatCompletion completion = await Client(VllmHost.LongModel).CompleteChatAsync([new UserChatMessage("abc")], options);

        Assert.Empty(completion.ToolCalls);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Contains("x y z", completion.Content[0].Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedToolChoice_Unary_IsOneCallWithSchemaValidArguments_FinishStop()
    {
        ChatCompletion completion = await Client(VllmHost.LongModel).CompleteChatAsync([new UserChatMessage("Weather in Paris?")], WeatherOptions());

        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.Id);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason); // OpenAI's reason for a named tool_choice
        AssertValid(WeatherParameters, call.FunctionArguments.ToString());
    }

    [Fact]
    public async Task NamedToolChoice_Streamed_TheSdkAccumulatesOneCall()
    {
        var ids = new Dictionary<int, string>();
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        var argumentUpdates = 0;
        await foreach (var update in Client(VllmHost.LongModel).CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris?")], WeatherOptions()))
        {
            foreach (var piece in update.ToolCallUpdates)
            {
                if (piece.ToolCallId is { } id)
                {
                    ids[piece.Index] = id;
                }
                if (piece.FunctionName is { } name)
                {
                    names[piece.Index] = name;
                }
                if (piece.FunctionArgumentsUpdate is { } part && part.ToMemory().Length > 0)
                {
                    argumentUpdates++;
                    (arguments.TryGetValue(piece.Index, out var b) ? b : arguments[piece.Index] = new StringBuilder()).Append(part.ToString());
                }
            }
            finish ??= update.FinishReason;
        }

        Assert.Equal([0], ids.Keys);
        Assert.StartsWith("call_", ids[0]);
        Assert.Equal("get_weather", names[0]);
        Assert.True(argumentUpdates > 5, "the arguments stream token by token");
        Assert.Equal(ChatFinishReason.Stop, finish);
        AssertValid(WeatherParameters, arguments[0].ToString());
    }

    [Fact]
    public async Task RequiredToolChoice_Unary_CallsAreValid_FinishToolCalls()
    {
        var options = WeatherOptions();
        options.ToolChoice = ChatToolChoice.CreateRequiredChoice();
        options.AllowParallelToolCalls = false;
        options.MaxOutputTokenCount = 200;

        ChatCompletion completion = await Client(VllmHost.LongModel).CompleteChatAsync([new UserChatMessage("Weather in Paris?")], options);

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Contains(call.FunctionName, new[] { "get_weather", "get_time" });
        if (call.FunctionName == "get_weather")
        {
            AssertValid(WeatherParameters, call.FunctionArguments.ToString());
        }
    }

    [Fact]
    public async Task SchemaTheGrammarCannotExpress_Is400BeforeAnythingRuns()
    {
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("bad", BinaryData.FromString(
                """{"type":"object","properties":{"a":{"type":"string","not":{"const":"x"}}},"required":["a"],"additionalProperties":false}"""), jsonSchemaIsStrict: true),
        };
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client(VllmHost.Model).CompleteChatAsync([new UserChatMessage("abc")], options));

        Assert.Equal(400, error.Status);
        Assert.Contains("Parameter: response_format", error.Message);
        Assert.Contains("'not' (at properties/a)", error.Message);
    }
}
