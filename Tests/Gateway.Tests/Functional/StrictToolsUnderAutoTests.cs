using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;

namespace Gateway.Tests.Functional;

/// <summary>
/// Strict tools under tool_choice auto: on vLLM the gateway sends a structural tag (free text until the
/// model's tool-call marker, then the call held to the tool's schema); where the backend has none, a 400.
/// </summary>
public sealed class StrictToolsUnderAutoTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private const string Tools = """
        "tools":[
          {"type":"function","function":{"name":"get_weather","strict":true,
            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}},
          {"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]
        """;

    private static Dictionary<string, string?> Catalogue(string contract, string parser) => new()
    {
        ["Gateway:Models:llama:TritonModel"] = contract == "vllm" ? "vllm_model" : "ensemble",
        ["Gateway:Models:llama:Contract"] = contract,
        ["Gateway:Models:llama:ChatTemplate"] = "chatml",
        ["Gateway:Models:llama:ToolCallParser"] = parser,
        ["Gateway:Models:llama:ContextWindow"] = "4096",
        ["Gateway:Models:llama:MaxOutputTokens"] = "1024",
    };

    private static StringContent Chat(string model, string extra = "") => new(
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Weather in Oslo?"}],{{Tools}},"tool_choice":"auto"{{extra}}}""", Encoding.UTF8, "application/json");

    [Theory]
    [InlineData("hermes", "<tool_call>", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ", "}\n</tool_call>", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>")]
    [InlineData("mistral", "[TOOL_CALLS]", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": ", "}]", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]")]
    [InlineData("llama3_json", "{\"name\": ", "{\"name\": \"get_weather\", \"parameters\": ", "}", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}")]
    public async Task Vllm_SendsAStructuralTagInTheModelsFormat_AndTheCallComesBackAsToolCalls(string parser, string trigger, string begin, string end, string answer)
    {
        await using var triton = await ScriptedTriton.StartAsync(call => call.SendVllmDeltaAsync(answer, 12, "stop", final: true));
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue("vllm", parser));

        using var response = await gateway.Http.PostAsync("/v1/chat/completions", Chat("llama"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);

        var request = (await triton.FirstCall.WaitAsync(Wait)).Request;
        var sampling = Json.Parse(Assert.Single(TensorCodec.DecodeStrings(request.RawInputContents[request.Inputs.ToList().FindIndex(t => t.Name == "sampling_parameters")].Span)));
        using var structured = JsonDocument.Parse(sampling.GetProperty("structured_outputs").GetString()!);
        using var tag = JsonDocument.Parse(structured.RootElement.GetProperty("structural_tag").GetString()!);
        Assert.Equal("structural_tag", tag.RootElement.GetProperty("type").GetString());
        Assert.Equal([trigger], tag.RootElement.GetProperty("triggers").EnumerateArray().Select(t => t.GetString()));
        var structures = tag.RootElement.GetProperty("structures").EnumerateArray().ToList();
        Assert.Equal(2, structures.Count);
        Assert.Equal(begin, structures[0].GetProperty("begin").GetString());
        Assert.Equal(end, structures[0].GetProperty("end").GetString());
        Assert.Equal("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}""", structures[0].GetProperty("schema").GetRawText());
        Assert.Equal("""{"type":"object"}""", structures[1].GetProperty("schema").GetRawText()); // not strict: any object

        using var answerJson = JsonDocument.Parse(body);
        var choice = answerJson.RootElement.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var call = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray().ToList());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("Oslo", JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("city").GetString());
    }

    [Fact]
    public async Task Vllm_NoStrictTool_NoConstraint()
    {
        await using var triton = await ScriptedTriton.StartAsync(call => call.SendVllmDeltaAsync("Sunny.", 2, "stop", final: true));
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue("vllm", "hermes"));
        var loose = Tools.Replace("\"strict\":true,", "", StringComparison.Ordinal);
        using var content = new StringContent($$"""{"model":"llama","messages":[{"role":"user","content":"Hi"}],{{loose}},"tool_choice":"auto"}""", Encoding.UTF8, "application/json");
        using var response = await gateway.Http.PostAsync("/v1/chat/completions", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var request = (await triton.FirstCall.WaitAsync(Wait)).Request;
        var sampling = Json.Parse(Assert.Single(TensorCodec.DecodeStrings(request.RawInputContents[request.Inputs.ToList().FindIndex(t => t.Name == "sampling_parameters")].Span)));
        Assert.False(sampling.TryGetProperty("structured_outputs", out _));
    }

    [Theory]
    [InlineData("tensorrtllm", "has no structural tag")]
    [InlineData("fastertransformer", "has no constrained (guided) decoding")]
    public async Task BackendWithoutStructuralTags_Is400UnsupportedParameter_AndNothingIsSent(string contract, string why)
    {
        await using var triton = await ScriptedTriton.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(triton.Address, Catalogue(contract, "hermes"));

        using var response = await gateway.Http.PostAsync("/v1/chat/completions", Chat("llama"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = Json.Parse(body).GetProperty("error");
        Assert.Equal("unsupported_parameter", error.GetProperty("code").GetString());
        Assert.Equal("tools[0].function.strict", error.GetProperty("param").GetString());
        Assert.Contains(why, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("get_weather", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(triton.Calls);
    }
}
