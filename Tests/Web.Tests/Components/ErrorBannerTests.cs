using Bunit;
using Web.Chat;
using Web.Components.Chat;

namespace Web.Tests.Components;

public sealed class ErrorBannerTests : ChatTestContext
{
    [Fact]
    public void Render_NoError_RendersNothing()
    {
        var cut = Render<ErrorBanner>(p => p.Add(x => x.Error, null));

        Assert.Empty(cut.FindAll("[role=alert]"));
    }

    [Fact]
    public void Render_RateLimited_ShowsAlertWithWhenToRetry()
    {
        var error = new ChatError(ChatErrorKind.RateLimited, "Too many requests",
            "The gateway's rate limit for this app was reached. Try again in 12 seconds.", TimeSpan.FromSeconds(12), "Rate limit reached for requests per minute.");

        var cut = Render<ErrorBanner>(p => p.Add(x => x.Error, error));

        var alert = cut.Find("[role=alert]");
        Assert.Equal("Too many requests", alert.QuerySelector(".error-title")!.TextContent);
        Assert.Contains("Try again in 12 seconds", alert.TextContent, StringComparison.Ordinal);
        Assert.Contains("Gateway: Rate limit reached for requests per minute.", alert.TextContent, StringComparison.Ordinal);
        Assert.Equal("RateLimited", alert.GetAttribute("data-error-kind"));
    }

    [Fact]
    public void Render_GatewayMessageWithMarkup_IsText()
    {
        var error = new ChatError(ChatErrorKind.Unexpected, "Something went wrong", "Try again.", null, "<img src=x onerror=alert(1)>");

        var cut = Render<ErrorBanner>(p => p.Add(x => x.Error, error));

        Assert.Empty(cut.FindAll("img"));
        Assert.Contains("<img src=x onerror=alert(1)>", cut.Find(".error-gateway").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void Dismiss_InvokesCallback()
    {
        var dismissed = false;
        var error = new ChatError(ChatErrorKind.NoBackend, "No model server is available", "Try again in a moment.");
        var cut = Render<ErrorBanner>(p => p
            .Add(x => x.Error, error)
            .Add(x => x.OnDismiss, () => dismissed = true));

        cut.Find("button[aria-label='Dismiss error']").Click();

        Assert.True(dismissed);
    }
}
