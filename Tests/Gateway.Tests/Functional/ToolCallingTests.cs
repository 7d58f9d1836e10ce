using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Functional;

/// <summary>
/// tool_choice auto: the model's own answer, read by its tool-call parser (hermes, llama3_json,
/// mistral), through the official OpenAI SDK, unary and streamed; a scripted Triton writes each
/// format in small pieces. And the FasterTransformer contract's refusal of constrained output.
/// </summary>
public sealed class ToolCallingTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private static readonly Dictionary<string, string> Answers = new()
    {
        ["hermes"] = "I will look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
        ["llama3_json"] = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
        ["mistral"] = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]",
    };

    private ScriptedTriton _triton = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _triton = await ScriptedTriton.StartAsync(async call =>
        {
            var answer = Answers[call.Request.ModelName];
            for (var i = 0; i < answer.Length; i += 5)
            {
                var last = i + 5 >= answer.Length;
                await call.SendVllmDeltaAsync(answer.Substring(i, Math.Min(5, answer.Length - i)), 1, last ? "stop" : "None", final: last);
            }
        });
        var catalogue = new Dictionary<string, string?>
        {
            ["Gateway:Models:gpt-j-6b:TritonModel"] = "fastertransformer",
        };
        foreach (var parser in Answers.Keys)
        {
            catalogue[$"Gateway:Models:{parser}-model:TritonModel"] = parser;
            catalogue[$"Gateway:Models:{parser}-model:Contract"] = "vllm";
            catalogue[$"Gateway:Models:{parser}-model:ChatTemplate"] = "chatml";
            catalogue[$"Gateway:Models:{parser}-model:ToolCallParser"] = parser;
            catalogue[$"Gateway:Models:{parser}-model:ContextWindow"] = "4096";
            catalogue[$"Gateway:Models:{parser}-model:MaxOutputTokens"] = "1024";
        }
        _gateway = await GatewayHost.StartAsync(_triton.Address, catalogue);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _triton.DisposeAsync();
    }

    private ChatClient Client(string model) => new(model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(_gateway.Endpoints.Rest, "v1"), NetworkTimeout = Wait });

    private static ChatCompletionOptions Auto()
    {
        var options = new ChatCompletionOptions();
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "Weather in a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""")));
        return options;
    }

    [Theory]
    [InlineData("hermes")]
    [InlineData("llama3_json")]
    [InlineData("mistral")]
    public async Task Auto_Unary_TheParserReadsTheCalls(string parser)
    {
        ChatCompletion completion = await Client(parser + "-model").CompleteChatAsync([new UserChatMessage("Weather in Paris and Oslo?")], Auto());

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        Assert.Equal(["Paris", "Oslo"], completion.ToolCalls.Select(c => JsonDocument.Parse(c.FunctionArguments).RootElement.GetProperty("city").GetString()));
        Assert.All(completion.ToolCalls, c => Assert.Equal("get_weather", c.FunctionName));
        Assert.Equal(2, completion.ToolCalls.Select(c => c.Id).Distinct().Count());
        Assert.Equal(parser == "hermes" ? "I will look." : "", string.Concat(completion.Content.Select(p => p.Text)));
        // The tools went into the prompt in the model's format.
        var prompt = (await _triton.FirstCall).InputString("text_input");
        Assert.Contains("get_weather", _triton.Calls.Last().InputString("text_input"));
        Assert.NotNull(prompt);
    }

    [Theory]
    [InlineData("hermes")]
    [InlineData("llama3_json")]
    [InlineData("mistral")]
    public async Task Auto_Streamed_TheSdkAccumulatesEachCall(string parser)
    {
        var names = new Dictionary<int, string>();
        var ids = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        var content = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Client(parser + "-model").CompleteChatStreamingAsync([new UserChatMessage("Weather in Paris and Oslo?")], Auto()))
        {
            foreach (var part in update.ContentUpdate)
            {
                content.Append(part.Text);
            }
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
                if (piece.FunctionArgumentsUpdate is { } args)
                {
                    (arguments.TryGetValue(piece.Index, out var b) ? b : arguments[piece.Index] = new StringBuilder()).Append(args.ToString());
                }
            }
            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal([0, 1], names.Keys.Order());
        Assert.All(names.Values, n => Assert.Equal("get_weather", n));
        Assert.Equal(2, ids.Values.Distinct().Count());
        Assert.Equal(["Paris", "Oslo"], arguments.OrderBy(a => a.Key).Select(a => JsonDocument.Parse(a.Value.ToString()).RootElement.GetProperty("city").GetString()));
        Assert.Equal(parser == "hermes" ? "I will look." : "", content.ToString().Trim());
        Assert.DoesNotContain("tool_call", content.ToString());
    }

    [Theory]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}""", "response_format")]
    [InlineData(""","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required" """, "tool_choice")]
    public async Task FasterTransformerModel_ConstrainedOutput_Is400UnsupportedNamingTheModelsThatHaveIt(string extra, string param)
    {
        using var response = await _gateway.Http.PostAsync("/v1/chat/completions", new StringContent(
            $$"""{"model":"gpt-j-6b","messages":[{"role":"user","content":"json please"}]{{extra}}}""", Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(("invalid_request_error", "unsupported_parameter", param), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        Assert.Contains("'hermes-model'", error.GetProperty("message").GetString());
        Assert.Contains("fastertransformer", error.GetProperty("message").GetString());
    }
}
