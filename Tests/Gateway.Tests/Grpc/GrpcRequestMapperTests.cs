using Gateway.Errors;
using Gateway.Grpc;
using Llm.Gateway.V1;

namespace Gateway.Tests.Grpc;

/// <summary>The gRPC face's own mapping into the shared <c>GenerationRequest</c>, without a server.</summary>
public sealed class GrpcRequestMapperTests
{
    [Fact]
    public void MapChat_CarriesTurnsSamplingStopAndPriority()
    {
        var request = GrpcRequestMapper.MapChat(new ChatRequest
        {
            Model = "gpt-j-6b",
            Messages = { new ChatMessage { Role = "system", Content = "Be brief." }, new ChatMessage { Role = "user", Content = "Hi" } },
            Sampling = new SamplingOptions { MaxTokens = 12, Temperature = 0.5f, TopK = 40, Stop = { "\n" } },
            Priority = 1,
        });

        Assert.Equal("gpt-j-6b", request.Model);
        Assert.Equal(["system", "user"], request.Messages!.Select(t => t.Role));
        Assert.Null(request.Prompt);
        Assert.Equal(12, request.MaxTokens);
        Assert.Equal("sampling.max_tokens", request.MaxTokensParam);
        Assert.Equal(0.5, request.Sampling.Temperature);
        Assert.Equal(40, request.Sampling.TopK);
        Assert.Null(request.Sampling.TopP); // unset in the proto: the contract's default
        Assert.Equal(["\n"], request.Stop);
        Assert.Equal(1, request.Priority);
    }

    [Fact]
    public void MapCompletion_WithoutSampling_LeavesEveryDefaultToTheContract()
    {
        var request = GrpcRequestMapper.MapCompletion(new CompletionRequest { Model = "gpt-j-6b", Prompt = "Once" });

        Assert.Equal("Once", request.Prompt);
        Assert.Null(request.Messages);
        Assert.Null(request.MaxTokens);
        Assert.Equal(new Gateway.Triton.Contracts.SamplingParameters(), request.Sampling);
        Assert.Empty(request.Stop);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("messages")]
    [InlineData("messages[0].role")]
    [InlineData("temperature")]
    [InlineData("sampling.stop")]
    public void MapChat_Invalid_NamesTheField(string field)
    {
        var request = new ChatRequest
        {
            Model = field == "model" ? " " : "gpt-j-6b",
            Sampling = new SamplingOptions { Temperature = field == "temperature" ? 2.5f : 1f },
        };
        if (field != "messages")
        {
            request.Messages.Add(new ChatMessage { Role = field == "messages[0].role" ? "tool" : "user", Content = "Hi" });
        }
        if (field == "sampling.stop")
        {
            request.Sampling.Stop.Add("");
        }

        var error = Assert.Throws<GatewayException>(() => GrpcRequestMapper.MapChat(request));

        Assert.Equal(GatewayError.InvalidRequest, error.Error);
        Assert.Equal(field, error.Param);
    }
}
