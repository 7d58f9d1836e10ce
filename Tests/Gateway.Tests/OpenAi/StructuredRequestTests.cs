using System.Text.Json;
using Gateway.Errors;
using Gateway.Generation;
using Gateway.OpenAi;
using Gateway.Structured;
using Gateway.Text;

namespace Gateway.Tests.OpenAi;

/// <summary>response_format, tools and tool_choice checked as OpenAI checks them; tool turns rendered per format.</summary>
public sealed class StructuredRequestTests
{
    private const string User = """{"role":"user","content":"Answer in JSON"}""";

    private const string Weather = """
        {"type":"function","function":{"name":"get_weather","description":"Weather in a city","strict":true,
          "parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}}}
        """;

    private static ChatCompletionRequest Chat(string json) => JsonSerializer.Deserialize(json, OpenAiJsonContext.Default.ChatCompletionRequest)!;

    private static GenerationRequest Map(string extra, string messages = User) =>
        OpenAiRequestMapper.MapChat(Chat($$"""{"model":"m","messages":[{{messages}}]{{extra}}}"""));

    [Fact]
    public void JsonSchema_Strict_BecomesTheGuide()
    {
        var request = Map(""","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],"additionalProperties":false}}}""");
        Assert.Equal(GuideKind.JsonSchema, request.Guide!.Kind);
        Assert.Equal("response_format", request.GuideParam);
        Assert.Contains("\"a\"", request.Guide.Schema);
    }

    [Fact]
    public void JsonObject_WithJsonInTheMessages_IsAnyObject()
    {
        var request = Map(""","response_format":{"type":"json_object"}""");
        Assert.Equal(OutputGuide.AnyJsonObject, request.Guide);
    }

    [Theory]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}""", "'additionalProperties' is required to be supplied and to be false")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a"],"additionalProperties":false}""", "Missing 'b'")]
    [InlineData("""{"type":"array","items":{"type":"string"}}""", "type: \"object\"")]
    [InlineData("""{"type":"object","properties":{"a":{"allOf":[{"type":"string"}],"not":{}}},"required":["a"],"additionalProperties":false}""", "'allOf' (at properties/a), 'not' (at properties/a)")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","pattern":"(?=x)a"}},"required":["a"],"additionalProperties":false}""", "lookarounds")]
    [InlineData("""{"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}},"required":["a"],"additionalProperties":false}""", "could not be resolved")]
    public void JsonSchema_TheGrammarCannotFollow_Is400NamingResponseFormat(string schema, string message)
    {
        var error = Assert.Throws<GatewayException>(() => Map($$$""","response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,"schema":{{{schema}}}}}"""));
        Assert.Equal(GatewayError.InvalidRequest, error.Error);
        Assert.Equal("response_format", error.Param);
        Assert.Contains(message, error.Message);
    }

    [Theory]
    [InlineData(""","response_format":{"type":"xml"}""", "response_format.type")]
    [InlineData(""","response_format":{"type":"json_schema"}""", "response_format.json_schema")]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"schema":{}}}""", "response_format.json_schema.name")]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"name":"a b"}}""", "response_format.json_schema.name")]
    [InlineData(",\"tool_choice\":\"auto\"", "tool_choice")]
    [InlineData(""","parallel_tool_calls":false""", "parallel_tool_calls")]
    [InlineData(""","tools":[]""", "tools")]
    [InlineData(""","tools":[{"type":"function","function":{"name":"bad name"}}]""", "tools[0].function.name")]
    [InlineData(""","tools":[{"type":"web"}]""", "tools[0].type")]
    [InlineData(""","tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}]""", "tools[0].function.parameters")]
    [InlineData(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"sometimes\"", "tool_choice")]
    [InlineData(""","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}""", "tool_choice")]
    [InlineData(""","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","patternProperties":{}}}}],"tool_choice":"required","n":1""", "tools[0].function.parameters")]
    public void BadStructuredParameters_Are400NamingTheParameter(string extra, string param)
    {
        var error = Assert.Throws<GatewayException>(() => Map(extra));
        Assert.Equal(GatewayError.InvalidRequest, error.Error);
        Assert.Equal(param, error.Param);
    }

    [Fact]
    public void NamedToolChoice_ConstrainsToTheFunctionsParameters()
    {
        var request = Map($$$""","tools":[{{{Weather}}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}""");
        Assert.Equal(ToolChoiceMode.Named, request.Tools!.Mode);
        Assert.Equal("tool_choice", request.GuideParam);
        Assert.Equal(request.Tools.Tools[0].Parameters, request.Guide!.Schema);
    }

    [Fact]
    public void RequiredToolChoice_ConstrainsToAnArrayOfCalls_OneWithoutParallelCalls()
    {
        var request = Map($$""","tools":[{{Weather}}],"tool_choice":"required","parallel_tool_calls":false""");
        using var schema = JsonDocument.Parse(request.Guide!.Schema!);
        Assert.Equal("array", schema.RootElement.GetProperty("type").GetString());
        Assert.Equal(1, schema.RootElement.GetProperty("maxItems").GetInt32());
        var option = schema.RootElement.GetProperty("items").GetProperty("anyOf")[0];
        Assert.Equal("get_weather", option.GetProperty("properties").GetProperty("name").GetProperty("const").GetString());
    }

    [Fact]
    public void AutoAndNone_AreNotConstrained()
    {
        Assert.Null(Map($$""","tools":[{{Weather}}]""").Guide);
        Assert.Equal(ToolChoiceMode.Auto, Map($$""","tools":[{{Weather}}]""").Tools!.Mode);
        Assert.Equal(ToolChoiceMode.None, Map($$""","tools":[{{Weather}}],"tool_choice":"none","n":1""").Tools!.Mode);
    }

    [Fact]
    public void ToolTurns_AreMappedWithTheirIds_AndRenderedInTheModelsFormat()
    {
        var messages = """
            {"role":"user","content":"Weather in Paris?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"18 C"}
            """;
        var request = Map($$""","tools":[{{Weather}}]""", messages);
        var turns = request.Messages!;
        Assert.Equal("call_1", turns[2].ToolCallId);
        Assert.Equal(new ChatToolCall("call_1", "get_weather", """{"city":"Paris","unit":"c"}"""), Assert.Single(turns[1].ToolCalls!));

        var prompt = ChatTemplates.Get(ChatTemplates.ChatMl).Render(ToolPrompts.Prepare(turns, request.Tools, ToolCallParsers.Hermes));
        Assert.StartsWith("<|im_start|>system\n# Tools", prompt);
        Assert.Contains("<tools>\n{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"", prompt);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"unit\":\"c\"}}\n</tool_call><|im_end|>", prompt);
        Assert.Contains("<|im_start|>tool\n<tool_response>\n{\"tool_call_id\": \"call_1\", \"content\": \"18 C\"}\n</tool_response><|im_end|>", prompt);

        var mistral = ChatTemplates.Get(ChatTemplates.Llama2).Render(ToolPrompts.Prepare(turns, request.Tools, ToolCallParsers.Mistral));
        Assert.Contains("[AVAILABLE_TOOLS]", mistral);
        Assert.Contains("[TOOL_CALLS][{\"name\": \"get_weather\"", mistral);
        Assert.Contains("[TOOL_RESULTS]{\"call_id\": \"call_1\", \"content\": \"18 C\"}[/TOOL_RESULTS]", mistral);
    }

    [Fact]
    public void ToolMessage_WithoutItsCall_Is400()
    {
        var error = Assert.Throws<GatewayException>(() => Map("", """{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"1"}"""));
        Assert.Equal("messages[1].role", error.Param);
        var missing = Assert.Throws<GatewayException>(() => Map("", """{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"1"}"""));
        Assert.Equal("messages[1].tool_call_id", missing.Param);
    }
}

/// <summary>Each parser's format, whole and streamed a character at a time.</summary>
public sealed class ToolCallParserTests
{
    public static TheoryData<string, string, string?, string[]> Answers => new()
    {
        { ToolCallParsers.Hermes, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>", "Let me check.", ["get_weather:{\"city\": \"Paris\"}", "get_time:{}"] },
        { ToolCallParsers.Llama3Json, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_time\", \"parameters\": {}}", null, ["get_weather:{\"city\": \"Paris\"}", "get_time:{}"] },
        { ToolCallParsers.Llama3Json, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", null, ["get_weather:{\"city\": \"Paris\"}"] },
        { ToolCallParsers.Mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_time\", \"arguments\": {}}]", null, ["get_weather:{\"city\": \"Paris\"}", "get_time:{}"] },
        { ToolCallParsers.Hermes, "No tools needed: it is <b>sunny</b>.", "No tools needed: it is <b>sunny</b>.", [] },
        { ToolCallParsers.Llama3Json, "It is sunny {really}.", "It is sunny {really}.", [] },
        { ToolCallParsers.Mistral, "[TOOL_CALLS] not json", "[TOOL_CALLS] not json", [] },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public void Parse_WholeAnswer(string parser, string text, string? content, string[] calls)
    {
        var (parsedContent, parsed) = ToolCallParsers.Parse(parser, text);
        Assert.Equal(content, parsedContent);
        Assert.Equal(calls, parsed.Select(c => c.Name + ":" + c.Arguments));
    }

    [Theory]
    [MemberData(nameof(Answers))]
    public void Parse_StreamedCharByChar_GivesTheSameCallsAndContent(string parser, string text, string? content, string[] calls)
    {
        var stream = new ToolCallStreamParser(parser);
        var events = new List<ToolCallEvent>();
        var firstCallAt = -1;
        for (var i = 0; i < text.Length; i++)
        {
            stream.Push(text.AsSpan(i, 1), events);
            if (firstCallAt < 0 && events.Any(e => e.Call is not null))
            {
                firstCallAt = i;
            }
        }
        stream.Finish(events);
        Assert.Equal(calls, events.Where(e => e.Call is not null).Select(e => e.Call!.Name + ":" + e.Call.Arguments));
        var streamedContent = string.Concat(events.Select(e => e.Content));
        Assert.Equal(content ?? "", calls.Length > 0 ? streamedContent.Trim() : streamedContent);
        if (calls.Length > 1)
        {
            Assert.True(firstCallAt < text.Length - 10, "the first call is reported when its JSON completes, before the text ends");
        }
    }
}
