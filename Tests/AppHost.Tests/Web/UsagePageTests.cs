using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace AppHost.Tests.Web;

/// <summary>The admin's usage page in headless Chromium: sign in with the admin key, create a key, see its usage charted, revoke it.</summary>
[Collection(WebAppCollection.Name)]
public sealed class UsagePageTests(WebAppFixture fixture)
{
    private static readonly float Timeout = 30_000;

    [Fact]
    public async Task AdminKey_CreateKey_UsageIsCharted_RevokeRefusesTheKey()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync("/admin/usage");

        // A user key is not an admin key: the page says so and stays signed out.
        await page.Locator("#admin-key").FillAsync(GatewayResourceExtensions.DevApiKey);
        await page.Locator("#admin-sign-in").ClickAsync();
        await Expect(page.Locator("#usage-error")).ToContainTextAsync("admin key", new() { Timeout = Timeout });
        await Expect(page.Locator("#admin-key")).ToBeVisibleAsync();

        await page.Locator("#admin-key").FillAsync(GatewayResourceExtensions.DevAdminKey);
        await page.Locator("#admin-sign-in").ClickAsync();
        await Expect(page.Locator("#keys")).ToBeVisibleAsync(new() { Timeout = Timeout });

        var name = "browser-" + Guid.NewGuid().ToString("N")[..8];
        await page.Locator("#key-name").FillAsync(name);
        await page.Locator("#key-tenant").FillAsync("browser");
        await page.Locator("#create-key").ClickAsync();
        var secretText = page.Locator("#new-secret");
        await Expect(secretText).ToContainTextAsync("sk-gw-", new() { Timeout = Timeout });
        var secret = (await secretText.InnerTextAsync()).Trim();
        var row = page.Locator("#keys tbody tr", new() { HasText = name });
        await Expect(row.Locator(".status")).ToHaveTextAsync("active");

        // The new key works on /v1; its usage reaches the ledger and the chart.
        using var http = fixture.App.CreateHttpClient("gateway", "http");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""", Encoding.UTF8, "application/json"),
        })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (await row.Locator(".used").InnerTextAsync() == "0" && DateTime.UtcNow < deadline)
        {
            await page.Locator("#refresh").ClickAsync();
            await Task.Delay(250); // the ledger writes asynchronously: poll the page's own refresh
        }
        Assert.NotEqual("0", await row.Locator(".used").InnerTextAsync());
        // Radzen draws the charts as SVG with a legend entry per key and per model.
        await Expect(page.Locator("#tokens-by-key svg").First).ToBeVisibleAsync();
        await Expect(page.Locator("#tokens-by-key")).ToContainTextAsync(name);
        await Expect(page.Locator("#tokens-by-model")).ToContainTextAsync("gpt-j-6b");

        await row.Locator("button.revoke").ClickAsync();
        await Expect(row.Locator(".status")).ToHaveTextAsync("revoked", new() { Timeout = Timeout });
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""", Encoding.UTF8, "application/json"),
        })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
    }
}
