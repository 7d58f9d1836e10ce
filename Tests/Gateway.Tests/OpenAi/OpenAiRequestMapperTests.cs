using System.Text.Json;
using Gateway.Errors;
using Gateway.OpenAi;
using Gateway.Triton.Contracts;

namespace Gateway.Tests.OpenAi;

public sealed class OpenAiRequestMapperTests
{
    private static ChatCompletionRequest Chat(string json) =>
        JsonSerializer.Deserialize(json, OpenAiJsonContext.Default.ChatCompletionRequest)!;

    private static CompletionRequest Completion(string json) =>
        JsonSerializer.Deserialize(json, OpenAiJsonContext.Default.CompletionRequest)!;

    [Fact]
    public void MapChat_FullRequest_MapsEveryParameter()
    {
        var request = OpenAiRequestMapper.MapChat(Chat("""
            {"model":"gpt-j-6b","messages":[{"role":"system","content":"Be terse."},
             {"role":"user","content":[{"type":"text","text":"Say hi"},{"type":"text","text":" twice"}]}],
             "max_completion_tokens":32,"max_tokens":99,"temperature":0.2,"top_p":0.9,"top_k":40,"seed":7,
             "presence_penalty":0.5,"frequency_penalty":-0.5,"stop":["\n\n","END"],"stream":true,
             "stream_options":{"include_usage":true},"n":1,"user":"u1","priority":1}
            """));
        Assert.Equal("gpt-j-6b", request.Model);
        Assert.Equal(32, request.MaxTokens);
        Assert.Equal("max_completion_tokens", request.MaxTokensParam);
        Assert.Equal(["\n\n", "END"], request.Stop);
        Assert.Equal("Say hi twice", request.Messages![1].Content);
        Assert.Equal(new SamplingParameters { Temperature = 0.2, TopP = 0.9, TopK = 40, Seed = 7, PresencePenalty = 0.5, FrequencyPenalty = -0.5 }, request.Sampling);
        Assert.Equal(1, request.Priority);
    }

    [Fact]
    public void MapCompletion_DefaultsMaxTokensTo16LikeOpenAi()
    {
        var request = OpenAiRequestMapper.MapCompletion(Completion("""{"model":"m","prompt":["Once upon"],"stop":"."}"""));
        Assert.Equal("Once upon", request.Prompt);
        Assert.Equal(16, request.MaxTokens);
        Assert.Equal(["."], request.Stop);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"m"}""", "messages")]
    [InlineData("""{"model":"m","messages":[]}""", "messages")]
    [InlineData("""{"model":"m","messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5}""", "temperature")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":-0.1}""", "top_p")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"presence_penalty":3}""", "presence_penalty")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}""", "stop")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stop":""}""", "stop")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}""", "tools[0].function")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}""", "messages")]
    [InlineData("""{"model":"m","messages":[{"role":"tool","content":"x","tool_call_id":"1"}]}""", "messages[0].role")]
    public void MapChat_InvalidValue_Is400NamingTheParameter(string json, string param)
    {
        var error = Assert.Throws<GatewayException>(() => OpenAiRequestMapper.MapChat(Chat(json)));
        Assert.Equal(GatewayError.InvalidRequest, error.Error);
        Assert.Equal(param, error.Param);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}""", "n", "n > 1 is not supported")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}""", "logprobs", "not supported")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content[0].type", "not supported")]
    public void MapChat_UnsupportedOption_Is400SayingSo(string json, string param, string message)
    {
        var error = Assert.Throws<GatewayException>(() => OpenAiRequestMapper.MapChat(Chat(json)));
        Assert.Equal(GatewayError.Unsupported, error.Error);
        Assert.Equal(param, error.Param);
        Assert.Contains(message, error.Message);
    }

    [Theory]
    [InlineData("""{"model":"m","prompt":["a","b"]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":[1,2,3]}""", "prompt")]
    [InlineData("""{"model":"m","prompt":"x","echo":true}""", "echo")]
    [InlineData("""{"model":"m","prompt":"x","best_of":2}""", "best_of")]
    [InlineData("""{"model":"m","prompt":"x","logprobs":1}""", "logprobs")]
    [InlineData("""{"model":"m","prompt":"x","suffix":"y"}""", "suffix")]
    public void MapCompletion_UnsupportedOption_Is400SayingSo(string json, string param)
    {
        var error = Assert.Throws<GatewayException>(() => OpenAiRequestMapper.MapCompletion(Completion(json)));
        Assert.Equal(GatewayError.Unsupported, error.Error);
        Assert.Equal(param, error.Param);
    }
}
