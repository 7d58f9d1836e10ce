using Grpc.Core;
using Web.Chat;

namespace Web.Tests.Chat;

public sealed class ChatErrorsTests
{
    [Fact]
    public void ResourceExhausted_WithRetryAfterTrailer_IsRateLimitedWithWait()
    {
        var exception = new RpcException(new Status(StatusCode.ResourceExhausted, "Rate limit reached for requests per minute."),
            new Metadata { { "retry-after", "12" }, { "error-code", "rate_limit_exceeded" } });

        var error = ChatErrors.FromRpc(exception);

        Assert.Equal(ChatErrorKind.RateLimited, error.Kind);
        Assert.Equal(TimeSpan.FromSeconds(12), error.RetryAfter);
        Assert.Contains("Try again in 12 seconds", error.Detail, StringComparison.Ordinal);
        Assert.Equal("Rate limit reached for requests per minute.", error.GatewayMessage);
    }

    [Fact]
    public void ResourceExhausted_WithRetryInMessage_IsRateLimited()
    {
        var exception = new RpcException(new Status(StatusCode.ResourceExhausted, "Too many requests; retry after 3 s."));

        var error = ChatErrors.FromRpc(exception);

        Assert.Equal(ChatErrorKind.RateLimited, error.Kind);
        Assert.Equal(TimeSpan.FromSeconds(3), error.RetryAfter);
    }

    [Fact]
    public void InvalidArgument_ContextLengthCode_IsContextTooLong()
    {
        var exception = new RpcException(new Status(StatusCode.InvalidArgument, "This model's maximum context length is 2048 tokens."),
            new Metadata { { "error-code", "context_length_exceeded" }, { "error-param", "messages" } });

        var error = ChatErrors.FromRpc(exception);

        Assert.Equal(ChatErrorKind.ContextTooLong, error.Kind);
        Assert.Contains("context window", error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(StatusCode.Unavailable, ChatErrorKind.NoBackend)]
    [InlineData(StatusCode.InvalidArgument, ChatErrorKind.InvalidRequest)]
    [InlineData(StatusCode.Unauthenticated, ChatErrorKind.BadApiKey)]
    [InlineData(StatusCode.PermissionDenied, ChatErrorKind.NotAllowed)]
    [InlineData(StatusCode.NotFound, ChatErrorKind.ModelNotFound)]
    [InlineData(StatusCode.DeadlineExceeded, ChatErrorKind.Timeout)]
    [InlineData(StatusCode.Internal, ChatErrorKind.Unexpected)]
    public void StatusCode_MapsToKind(StatusCode code, ChatErrorKind kind)
    {
        var error = ChatErrors.FromRpc(new RpcException(new Status(code, "detail")));

        Assert.Equal(kind, error.Kind);
        Assert.False(string.IsNullOrWhiteSpace(error.Title));
        Assert.False(string.IsNullOrWhiteSpace(error.Detail));
    }

    [Fact]
    public void Unavailable_ConnectionFailure_SaysTheGatewayIsUnreachable()
    {
        var exception = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new HttpRequestException("Connection refused")));

        var error = ChatErrors.FromRpc(exception);

        Assert.Equal(ChatErrorKind.NoBackend, error.Kind);
        Assert.Equal("Cannot reach the gateway", error.Title);
    }
}
