using Web.Chat;

namespace Web.Tests.Chat;

public sealed class GatewayClientOptionsTests
{
    private static readonly GatewayClientOptionsValidator Validator = new();

    [Fact]
    public void RestAddress_IsOptional()
    {
        Assert.True(Validator.Validate(null, new GatewayClientOptions { Address = "http://localhost:5081", ApiKey = "k" }).Succeeded);
        Assert.True(Validator.Validate(null, new GatewayClientOptions { Address = "http://localhost:5081", RestAddress = "https://gateway:5080", ApiKey = "k" }).Succeeded);
    }

    [Theory]
    [InlineData("localhost:5080")]
    [InlineData("ftp://gateway")]
    public void RestAddress_NotAnHttpUrl_FailsNamingTheKey(string address)
    {
        var result = Validator.Validate(null, new GatewayClientOptions { Address = "http://localhost:5081", RestAddress = address, ApiKey = "k" });

        Assert.False(result.Succeeded);
        Assert.Contains("GatewayClient:RestAddress", result.FailureMessage, StringComparison.Ordinal);
    }
}
