using Gateway.Auth;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Auth;

public sealed class ApiKeyAuthenticatorTests
{
    private static ApiKeyAuthenticator Create()
    {
        var options = new ApiKeyOptions();
        options.ApiKeys["team-a"] = new ApiKeyEntry { Sha256 = ApiKeyHash.ToHex("sk-a"), Tenant = "a", AllowedModels = ["*"] };
        options.ApiKeys["team-b"] = new ApiKeyEntry { Sha256 = ApiKeyHash.ToHex("sk-b").ToUpperInvariant(), Tenant = "b", AllowedModels = ["gpt-j-6b"], RequestsPerMinute = 5 };
        return new ApiKeyAuthenticator(Options.Create(options));
    }

    [Fact]
    public void ToHex_IsLowercaseSha256OfUtf8()
    {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ApiKeyHash.ToHex("abc"));
    }

    [Fact]
    public void Authenticate_KnownKeys_ResolveTheirTenantAndLimits()
    {
        var authenticator = Create();
        Assert.Equal("a", authenticator.Authenticate("Bearer sk-a")?.Tenant);
        var b = authenticator.Authenticate("bearer  sk-b ");
        Assert.NotNull(b);
        Assert.Equal("team-b", b.KeyName);
        Assert.Equal(5, b.RequestsPerMinute);
        Assert.True(b.MayUse("gpt-j-6b"));
        Assert.False(b.MayUse("other"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sk-a")]
    [InlineData("Basic sk-a")]
    [InlineData("Bearer ")]
    [InlineData("Bearer sk-c")]
    [InlineData("Bearer sk-a2")]
    public void Authenticate_MissingMalformedOrUnknown_IsNull(string? header)
    {
        Assert.Null(Create().Authenticate(header));
    }

    [Fact]
    public void Validator_PlainKeyInsteadOfHash_FailsNamingTheKey()
    {
        var options = new ApiKeyOptions();
        options.ApiKeys["oops"] = new ApiKeyEntry { Sha256 = "sk-live-123", Tenant = "t", AllowedModels = ["*"] };
        var result = new ApiKeyOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("Gateway:ApiKeys:oops:Sha256", result.FailureMessage);
    }
}
