using System.Runtime.CompilerServices;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using Web.Chat;
using ChatPage = Web.Components.Pages.Chat;
using Web.Conversations;

namespace Web.Tests.Components;

/// <summary>The chat page with a fake gateway: the settings' response format reaches the request, and only when valid.</summary>
public sealed class ChatPageStructuredTests : ChatTestContext
{
    private const string Schema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private sealed class FakeBackend : IChatBackend
    {
        public List<ChatPrompt> Prompts { get; } = [];
        public ChatError? Fail { get; set; }
        public AnswerEvent[] Answer { get; set; } = [new AnswerDelta("""{"city":"Paris"}""", 5), new AnswerFinal("stop", 10, 5, 12, "llama")];

        public Task<IReadOnlyList<ModelSummary>> ListModelsAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<ModelSummary>>([new ModelSummary("llama", 4096, 1024)]);

        public async IAsyncEnumerable<AnswerEvent> StreamChatAsync(ChatPrompt prompt, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Prompts.Add(prompt);
            await Task.Yield();
            if (Fail is { } error)
            {
                throw new ChatException(error);
            }
            foreach (var item in Answer)
            {
                yield return item;
            }
        }
    }

    private readonly FakeBackend _backend = new();

    public ChatPageStructuredTests()
    {
        JSInterop.SetupModule("./chat.js");
        Services.AddSingleton<IChatBackend>(_backend);
        Services.AddSingleton<AnswerStreamer>();
        Services.AddScoped<ConversationStore>();
        Services.AddLogging();
    }

    private IRenderedComponent<ChatPage> RenderPage()
    {
        var cut = Render<ChatPage>();
        cut.WaitForAssertion(() => Assert.Equal("llama", cut.Find("select").GetAttribute("value")));
        return cut;
    }

    private static void Send(IRenderedComponent<ChatPage> cut, string text)
    {
        cut.Find("#message-input").Input(text);
        cut.Find("form.composer").Submit();
    }

    [Fact]
    public void InvalidSchema_IsNeverSent_BannerSaysWhatToFix_DraftKept()
    {
        var cut = RenderPage();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonSchema));
        cut.Find("#schema-text").Change("""{"type":""");

        Send(cut, "Weather in Paris?");

        var banner = cut.Find(".error-banner");
        Assert.Equal("Fix the settings before sending", banner.QuerySelector(".error-title")!.TextContent);
        Assert.Contains("not valid JSON", banner.QuerySelector(".error-detail")!.TextContent, StringComparison.Ordinal);
        Assert.Empty(_backend.Prompts);
        Assert.Empty(cut.FindAll("ol.transcript > li"));
        Assert.Equal("Weather in Paris?", cut.Find("#message-input").GetAttribute("value"));
    }

    [Fact]
    public void ValidSchema_IsSent_AndTheAnswerShowsAsHighlightedJson()
    {
        var cut = RenderPage();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonSchema));
        cut.Find("#schema-text").Change(Schema);

        Send(cut, "Weather in Paris?");

        cut.WaitForAssertion(() => Assert.Equal("\"city\"", cut.Find(".message-assistant .json-key").TextContent));
        var structured = Assert.Single(_backend.Prompts).Structured;
        Assert.NotNull(structured);
        Assert.Equal(ResponseFormatKind.JsonSchema, structured.Format);
        Assert.Equal(Schema, structured.Schema);
        Assert.Empty(cut.FindAll(".error-banner"));
    }

    [Fact]
    public void PlainText_SendsNoStructuredOutput()
    {
        var cut = RenderPage();

        Send(cut, "Hello");

        cut.WaitForAssertion(() => Assert.Single(_backend.Prompts));
        Assert.Null(_backend.Prompts[0].Structured);
    }

    [Fact]
    public void UnsupportedByTheModel_ShowsTheGatewaysErrorInTheBanner()
    {
        _backend.Fail = ChatErrors.FromHttp(System.Net.HttpStatusCode.BadRequest,
            new GatewayErrorBody("The model `gpt-j-6b` runs on Triton's fastertransformer backend, which has no constrained (guided) decoding.", "invalid_request_error", "response_format", "unsupported_parameter"), null);
        var cut = RenderPage();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonObject));

        Send(cut, "Answer in JSON");

        cut.WaitForAssertion(() => Assert.Equal("This model does not support Response format (structured output)", cut.Find(".error-banner .error-title").TextContent));
        Assert.Contains("gpt-j-6b", cut.Find(".error-banner .error-gateway").TextContent, StringComparison.Ordinal);
        Assert.Equal("Answer in JSON", cut.Find("#message-input").GetAttribute("value"));
    }
}
