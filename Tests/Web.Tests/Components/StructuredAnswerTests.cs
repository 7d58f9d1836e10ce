using Bunit;
using Web.Components.Chat;
using Web.Conversations;

namespace Web.Tests.Components;

/// <summary>JSON answers and tool calls in the transcript: collapsible, highlighted, escaped.</summary>
public sealed class StructuredAnswerTests : ChatTestContext
{
    private static ChatTurn JsonAnswer(string text, TurnState state = TurnState.Complete) =>
        new() { Id = "2", Role = ChatRoles.Assistant, Format = ContentFormats.Json, Content = text, State = state };

    private IRenderedComponent<MessageList> RenderTurns(params ChatTurn[] turns) =>
        Render<MessageList>(p => p.Add(x => x.Turns, [new ChatTurn { Id = "1", Role = ChatRoles.User, Content = "Hi", State = TurnState.Complete }, .. turns]));

    [Fact]
    public void JsonAnswer_IsPrettyPrintedAndHighlightedInAnOpenDisclosure()
    {
        var cut = RenderTurns(JsonAnswer("""{"city":"Paris","temp":21,"sunny":true,"rain":null}"""));

        var details = cut.Find(".message-assistant details.json-view");
        Assert.True(details.HasAttribute("open"));
        Assert.Equal("JSON answer", details.QuerySelector("summary .json-label")!.TextContent);
        Assert.Equal(["\"city\"", "\"temp\"", "\"sunny\"", "\"rain\""], cut.FindAll(".json-key").Select(e => e.TextContent));
        Assert.Equal("\"Paris\"", cut.Find(".json-string").TextContent);
        Assert.Equal("21", cut.Find(".json-number").TextContent);
        Assert.Equal("true", cut.Find(".json-bool").TextContent);
        Assert.Equal("null", cut.Find(".json-null").TextContent);
        Assert.Contains("\n  \"temp\": 21,", cut.Find("pre.json").TextContent, StringComparison.Ordinal);
        Assert.Empty(cut.FindAll(".markdown"));
    }

    [Fact]
    public void JsonAnswer_WithMarkupInStrings_IsEscaped()
    {
        var cut = RenderTurns(JsonAnswer("""{"html":"<img src=x onerror=alert(1)><script>alert(2)</script>"}"""));

        Assert.Empty(cut.FindAll("img"));
        Assert.Empty(cut.FindAll("script"));
        Assert.Equal("\"<img src=x onerror=alert(1)><script>alert(2)</script>\"", cut.Find(".json-string").TextContent);
    }

    [Fact]
    public void JsonAnswer_CutShort_ShowsRawTextMarkedInvalid()
    {
        var cut = RenderTurns(JsonAnswer("""{"city":"Par"""));

        Assert.Empty(cut.FindAll(".json-key"));
        Assert.Equal("not valid JSON", cut.Find(".json-note").TextContent);
        Assert.Equal("""{"city":"Par""", cut.Find("pre.json-raw").TextContent);
    }

    [Fact]
    public void JsonAnswer_WhileStreaming_IsRaw_ThenHighlightedWhenDone()
    {
        var answer = JsonAnswer("", TurnState.Streaming);
        var cut = RenderTurns(answer);

        answer.Append("""{"a":""");
        cut.WaitForAssertion(() => Assert.Equal("receiving…", cut.Find(".json-note").TextContent));
        answer.Append("1}");
        answer.Finish(TurnState.Complete, null, null);

        cut.WaitForAssertion(() => Assert.Equal("\"a\"", cut.Find(".json-key").TextContent));
    }

    [Fact]
    public void TextAnswer_ThatLooksLikeJson_StaysMarkdown()
    {
        var cut = RenderTurns(new ChatTurn { Id = "2", Role = ChatRoles.Assistant, Content = """{"a":1}""", State = TurnState.Complete });

        Assert.Empty(cut.FindAll(".json-view"));
        Assert.NotEmpty(cut.FindAll(".markdown"));
    }

    [Fact]
    public void ToolCalls_AreCollapsedCardsNamedLikeACall_WithHighlightedArguments()
    {
        var answer = new ChatTurn
        {
            Id = "2",
            Role = ChatRoles.Assistant,
            State = TurnState.Complete,
            ToolCalls = [new ToolCall("call_1", "get_weather", """{"city":"Paris","unit":"celsius","days":3,"detail":"hourly"}"""), new ToolCall("call_2", "get_time", """{"zone":"<b>CET</b>"}""")],
        };

        var cut = RenderTurns(answer);

        var cards = cut.FindAll(".tool-call");
        Assert.Equal(2, cards.Count);
        Assert.False(cards[0].HasAttribute("open"));
        Assert.Equal("get_weather", cards[0].QuerySelector("summary .tool-call-name")!.TextContent);
        Assert.StartsWith("({\"city\":\"Paris\",", cards[0].QuerySelector("summary .tool-call-args")!.TextContent, StringComparison.Ordinal);
        Assert.EndsWith("…)", cards[0].QuerySelector("summary .tool-call-args")!.TextContent, StringComparison.Ordinal);
        Assert.Equal(["\"city\"", "\"unit\"", "\"days\"", "\"detail\""], cards[0].QuerySelectorAll(".json-key").Select(e => e.TextContent));
        Assert.Equal("call_1", cards[0].QuerySelector(".tool-call-id code")!.TextContent);
        Assert.Equal("get_time({\"zone\":\"<b>CET</b>\"})", cards[1].QuerySelector("summary")!.TextContent.Replace("ƒ", "", StringComparison.Ordinal).Trim());
        Assert.Empty(cut.FindAll("b"));
        // No empty text block above the cards, and no typing dots once done.
        Assert.Empty(cut.FindAll(".message-assistant .markdown"));
        Assert.Empty(cut.FindAll(".typing"));
    }

    [Fact]
    public void ToolCalls_StreamIntoTheCard()
    {
        var answer = new ChatTurn { Id = "2", Role = ChatRoles.Assistant, State = TurnState.Streaming };
        var cut = RenderTurns(answer);
        Assert.NotEmpty(cut.FindAll(".typing"));

        answer.AppendToolCall(0, "call_1", "get_weather", "{\"city\":");
        cut.WaitForAssertion(() => Assert.Equal("get_weather", cut.Find(".tool-call-name").TextContent));
        Assert.Empty(cut.FindAll(".typing"));
        answer.AppendToolCall(0, null, null, "\"Oslo\"}");
        answer.Finish(TurnState.Complete, new AnswerStats { FinishReason = "tool_calls", CompletionTokens = 9 }, null);

        cut.WaitForAssertion(() => Assert.Equal("\"Oslo\"", cut.Find(".tool-call .json-string").TextContent));
    }
}
