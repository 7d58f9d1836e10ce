using Gateway.Errors;
using Gateway.Generation;

namespace Gateway.Tests.Generation;

/// <summary>The <c>x-priority</c> header as both faces apply it to a request before admission.</summary>
public sealed class PriorityHeaderTests
{
    [Theory]
    [InlineData("high", 1)]
    [InlineData("LOW", 2)]
    [InlineData("normal", 0)]
    [InlineData(" 3 ", 3)]
    public void PriorityHeader_SetsTheTritonPriority(string header, int expected)
    {
        var request = new GenerationRequest { Model = "m", Prompt = "x", Priority = 5 };
        Assert.Equal(expected, PriorityHeader.Apply(request, header, 2).Priority);
        Assert.Equal(5, PriorityHeader.Apply(request, null, 2).Priority);
        var error = Assert.Throws<GatewayException>(() => PriorityHeader.Apply(request, "urgent", 2));
        Assert.Equal("x-priority", error.Param);
    }
}
