using Aspire.Hosting.ApplicationModel;
using System.Globalization;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace AppHost.Tests.Web;

/// <summary>The chat page in headless Chromium against the running AppHost (web → gateway → emulator).</summary>
[Collection(WebAppCollection.Name)]
public sealed class ChatPageTests(WebAppFixture fixture)
{
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(60);

    public static string ScreenshotFolder { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts", "screenshots");

    [Fact]
    public async Task Send_AnswerGrowsInSteps_ThenEndsWithStats()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        await SetMaxTokensAsync(page, 64);
        await RecordAnswerGrowthAsync(page);

        await Message(page).FillAsync("Tell me about GPUs.");
        await Message(page).PressAsync("Enter");

        var answer = Transcript(page).Locator("li[aria-label='Assistant']").Last;
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "true");
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });

        var lengths = await page.EvaluateAsync<int[]>("() => window.__answerLengths");
        var finalText = await answer.Locator(".message-bubble").InnerTextAsync();
        var growing = lengths.Where(n => n > 0 && n < finalText.Length).Distinct().ToArray();
        Assert.True(growing.Length >= 2, $"expected the answer to grow in at least two steps before it ended; saw lengths [{string.Join(", ", lengths)}], final {finalText.Length}");
        Assert.Equal(["You", "Assistant"], await Transcript(page).Locator("> li").EvaluateAllAsync<string[]>("items => items.map(i => i.getAttribute('aria-label'))"));
        await Expect(answer.Locator(".message-stats")).ToContainTextAsync("TTFT");
        await Expect(answer.Locator(".message-stats")).ToContainTextAsync("completion tokens");
        await Expect(answer.GetByRole(AriaRole.Button, new() { Name = "Copy", Exact = true })).ToBeVisibleAsync();
        await Expect(answer.GetByRole(AriaRole.Button, new() { Name = "Regenerate", Exact = true })).ToBeEnabledAsync();
        // Focus comes back to the message box for the next question.
        await Expect(Message(page)).ToBeFocusedAsync();
    }

    [Fact]
    public async Task Stop_MidAnswer_EndsGeneration_AndTritonCountsACancelledRequest()
    {
        // The request may land on any Triton replica (the gateway routes by load): count them all.
        var metrics = TritonMetricsClients();
        var cancelledBefore = await CancelledRequestsAsync(metrics);
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        await SetMaxTokensAsync(page, 512);

        await Message(page).FillAsync("Write a long story about a data center.");
        await page.GetByRole(AriaRole.Button, new() { Name = "Send", Exact = true }).ClickAsync();
        var answer = Transcript(page).Locator("li[aria-label='Assistant']").Last;
        await Expect(answer.Locator(".markdown")).ToBeVisibleAsync(new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "true");

        await page.GetByRole(AriaRole.Button, new() { Name = "Stop", Exact = true }).ClickAsync();

        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = 10_000 });
        await Expect(answer.Locator(".message-note")).ToHaveTextAsync("Stopped");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Send", Exact = true })).ToBeVisibleAsync();
        var stoppedText = await answer.Locator(".message-bubble").InnerTextAsync();
        Assert.False(string.IsNullOrWhiteSpace(stoppedText));

        // The gRPC cancellation reached Triton: its failure counter has a new CANCELED request.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var cancelledAfter = cancelledBefore;
        while (cancelledAfter <= cancelledBefore && !cts.IsCancellationRequested)
        {
            await Task.Delay(100, CancellationToken.None);
            cancelledAfter = await CancelledRequestsAsync(metrics);
        }
        metrics.ForEach(static client => client.Dispose());
        Assert.True(cancelledAfter > cancelledBefore, $"nv_inference_request_failure{{reason=\"CANCELED\"}} stayed at {cancelledBefore}");
    }

    [Fact]
    public async Task FinishedConversation_SurvivesReload_AndIsScreenshotAtDesktopAndPhoneWidths()
    {
        await using var context = await fixture.NewContextAsync(1280, 800);
        var page = await OpenAsync(context);
        await SetMaxTokensAsync(page, 48);

        await Message(page).FillAsync("Explain *tensor parallelism* in two sentences.");
        await Message(page).PressAsync("Enter");
        var answer = Transcript(page).Locator("li[aria-label='Assistant']").Last;
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        var answerText = await answer.Locator(".message-bubble").InnerTextAsync();

        await page.ReloadAsync();

        await Expect(Transcript(page).Locator("li[aria-label='You']")).ToHaveTextAsync("Explain *tensor parallelism* in two sentences.");
        var restored = Transcript(page).Locator("li[aria-label='Assistant'] .message-bubble");
        await Expect(restored).ToBeVisibleAsync();
        Assert.Equal(answerText, await restored.InnerTextAsync());
        await Expect(page.GetByRole(AriaRole.Navigation, new() { Name = "Conversations" }).GetByRole(AriaRole.Button, new() { Name = "Explain *tensor parallelism* in two sentences.", Exact = true }))
            .ToHaveAttributeAsync("aria-current", "page");

        Directory.CreateDirectory(ScreenshotFolder);
        await page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotFolder, "chat-desktop-1280x800.png") });
        await page.SetViewportSizeAsync(390, 844);
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Conversations" })).ToBeVisibleAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotFolder, "chat-phone-390x844.png") });
        Assert.True(new FileInfo(Path.Combine(ScreenshotFolder, "chat-phone-390x844.png")).Length > 0);
    }

    [Fact]
    public async Task ContextTooLong_ShowsReadableError_AndKeepsTheTypedMessage()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        // ≈2400 GPT-2 tokens: more than the model's 2048-token context window.
        var longMessage = string.Join(' ', Enumerable.Repeat("lorem ipsum dolor", 800));

        await Message(page).FillAsync(longMessage);
        await Message(page).PressAsync("Enter");

        var alert = page.GetByRole(AriaRole.Alert);
        await Expect(alert).ToContainTextAsync("too long for this model", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        await Expect(alert).ToContainTextAsync("context");
        await Expect(Message(page)).ToHaveValueAsync(longMessage);
        await Expect(Transcript(page).Locator("> li")).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task TinyLlamaModel_FoundByDiscovery_AnswersInTheChat()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        await SelectTinyModelAsync(page);
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();

        await Message(page).FillAsync("abc");
        await Message(page).PressAsync("Enter");

        // llama.cpp runs the tiny model, whose greedy continuation walks the alphabet.
        var answer = Transcript(page).Locator("li[aria-label='Assistant']").Last;
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        await Expect(answer.Locator(".message-bubble")).ToContainTextAsync("d e f g h i j k");
        await Expect(answer.Locator(".message-stats")).ToContainTextAsync("completion tokens");
    }

    [Fact]
    public async Task ResponseFormat_OnTheFasterTransformerModel_ShowsTheGatewaysRefusal_AndKeepsTheMessage()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();
        await page.Locator("#response-format").SelectOptionAsync("JsonObject");
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();

        await Message(page).FillAsync("Answer in JSON.");
        await Message(page).PressAsync("Enter");

        // gpt-j-6b runs on FasterTransformer, which has no guided decoding: 400 unsupported_parameter.
        var alert = page.GetByRole(AriaRole.Alert);
        await Expect(alert).ToContainTextAsync("This model does not support Response format", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        await Expect(alert.Locator(".error-gateway")).ToContainTextAsync(new System.Text.RegularExpressions.Regex("fastertransformer.*response_format", System.Text.RegularExpressions.RegexOptions.IgnoreCase));
        await Expect(Message(page)).ToHaveValueAsync("Answer in JSON.");
        await Expect(Transcript(page).Locator("> li")).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task JsonSchema_OnTinyLlama_AnswerIsHighlightedJson_AndStaysSoAfterReload()
    {
        await using var context = await fixture.NewContextAsync();
        var page = await OpenAsync(context);
        // Room for the schema's longest instance (the tiny model's tokens are about one character).
        await SelectTinyModelAsync(page, maxTokens: 120);
        await page.Locator("#response-format").SelectOptionAsync("JsonSchema");
        await page.Locator("#schema-text").FillAsync("{\"type\":\"object\"");
        await page.Locator("#schema-text").PressAsync("Tab");
        await Expect(page.Locator("#schema-error")).ToContainTextAsync("not valid JSON");
        await page.Locator("#schema-text").FillAsync(WeatherSchema);
        await page.Locator("#schema-text").PressAsync("Tab");
        await Expect(page.Locator("#schema-error")).ToHaveCountAsync(0);
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();

        await Message(page).FillAsync("abc");
        await Message(page).PressAsync("Enter");

        // llama.cpp's grammar holds the tiny model to the schema.
        var answer = Transcript(page).Locator("li[aria-label='Assistant']").Last;
        await Expect(answer).ToHaveAttributeAsync("aria-busy", "false", new() { Timeout = (float)AnswerTimeout.TotalMilliseconds });
        await Expect(answer.Locator("details.json-view .json-key")).ToHaveTextAsync(["\"city\"", "\"unit\""]);
        await Expect(answer.Locator(".json-string").Last).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^\"(celsius|fahrenheit)\"$"));
        Directory.CreateDirectory(ScreenshotFolder);
        await page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotFolder, "chat-json-answer-1280x800.png") });

        await page.ReloadAsync();
        await Expect(Transcript(page).Locator("li[aria-label='Assistant'] .json-key")).ToHaveTextAsync(["\"city\"", "\"unit\""]);
    }

    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    /// <summary>Waits for model discovery to list the tiny llama model, then picks it at temperature 0; leaves Settings open.</summary>
    private static async Task SelectTinyModelAsync(IPage page, int maxTokens = 64)
    {
        var picker = page.GetByRole(AriaRole.Combobox, new() { Name = "Model", IncludeHidden = true });
        // The gateway finds the vLLM model in Triton's repository index; a reload lists it once it has.
        using (var found = new CancellationTokenSource(AnswerTimeout))
        {
            string[] options;
            while (!(options = await page.EvaluateAsync<string[]>("() => [...document.querySelectorAll('select option')].map(o => o.value)")).Contains(WebAppFixture.TinyModel))
            {
                Assert.False(found.IsCancellationRequested, $"the model picker never listed {WebAppFixture.TinyModel}: [{string.Join(", ", options)}]");
                await Task.Delay(500, CancellationToken.None);
                await page.ReloadAsync();
                await Expect(picker).Not.ToHaveValueAsync("", new() { Timeout = 30_000 });
            }
        }
        await SetMaxTokensAsync(page, maxTokens); // the tiny model's window is 256 tokens
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();
        await picker.SelectOptionAsync(WebAppFixture.TinyModel);
        var temperature = page.GetByRole(AriaRole.Spinbutton, new() { Name = "Temperature" });
        await temperature.FillAsync("0");
        await temperature.PressAsync("Tab");
    }

    private static ILocator Message(IPage page) => page.GetByRole(AriaRole.Textbox, new() { Name = "Message", Exact = true });

    private static ILocator Transcript(IPage page) => page.GetByRole(AriaRole.List, new() { Name = "Conversation", Exact = true });

    private static async Task<IPage> OpenAsync(IBrowserContext context)
    {
        var page = await context.NewPageAsync();
        await page.GotoAsync("/");
        // The circuit is up and the gateway listed its models once the (collapsed) picker has a value.
        await Expect(page.GetByRole(AriaRole.Combobox, new() { Name = "Model", IncludeHidden = true })).Not.ToHaveValueAsync("", new() { Timeout = 30_000 });
        return page;
    }

    private static async Task SetMaxTokensAsync(IPage page, int maxTokens)
    {
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();
        var input = page.GetByRole(AriaRole.Spinbutton, new() { Name = "Max tokens" });
        await input.FillAsync(maxTokens.ToString(CultureInfo.InvariantCulture));
        await input.PressAsync("Tab");
        await Expect(input).ToHaveValueAsync(maxTokens.ToString(CultureInfo.InvariantCulture));
        await page.GetByText("Settings", new() { Exact = true }).ClickAsync();
    }

    /// <summary>Records, in the page, each length the busy answer's text takes.</summary>
    private static async Task RecordAnswerGrowthAsync(IPage page)
    {
        await Expect(Transcript(page)).ToBeAttachedAsync();
        await page.EvaluateAsync("""
            () => {
              window.__answerLengths = [];
              const list = document.querySelector('ol[aria-label="Conversation"]');
              new MutationObserver(() => {
                const busy = list.querySelector('li[aria-busy="true"] .message-bubble');
                if (!busy) return;
                const n = busy.innerText.trim().length, a = window.__answerLengths;
                if (a.length === 0 || a[a.length - 1] !== n) a.push(n);
              }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
            }
            """);
    }

    /// <summary>A metrics client per Triton replica resource (triton, triton-1, …).</summary>
    private List<HttpClient> TritonMetricsClients() =>
        [.. fixture.App.Services.GetRequiredService<DistributedApplicationModel>().Resources
            .Where(static r => r.Name == "triton" || r.Name.StartsWith("triton-", StringComparison.Ordinal))
            .Where(static r => r.Annotations.OfType<EndpointAnnotation>().Any(static e => e.Name == "metrics"))
            .Select(r => fixture.App.CreateHttpClient(r.Name, "metrics"))];

    private static async Task<double> CancelledRequestsAsync(IEnumerable<HttpClient> replicas)
    {
        var total = 0.0;
        foreach (var metrics in replicas)
        {
            var text = await metrics.GetStringAsync("/metrics");
            foreach (var line in text.Split('\n'))
            {
                if (line.StartsWith("nv_inference_request_failure{", StringComparison.Ordinal) && line.Contains("reason=\"CANCELED\"", StringComparison.Ordinal))
                {
                    total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
                }
            }
        }
        return total;
    }
}
