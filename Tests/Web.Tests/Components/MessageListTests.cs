using Bunit;
using Web.Components.Chat;
using Web.Conversations;

namespace Web.Tests.Components;

public sealed class MessageListTests : ChatTestContext
{
    private static ChatTurn User(string id, string text) =>
        new() { Id = id, Role = ChatRoles.User, Content = text, State = TurnState.Complete };

    private static ChatTurn Answer(string id, string text, TurnState state = TurnState.Complete, AnswerStats? stats = null) =>
        new() { Id = id, Role = ChatRoles.Assistant, Content = text, State = state, Stats = stats };

    [Fact]
    public void Render_IsListLabelledConversation_WithOneItemPerMessageInOrder()
    {
        List<ChatTurn> turns = [User("1", "Hi"), Answer("2", "Hello **there**"), User("3", "More?")];

        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));

        var list = cut.Find("ol");
        Assert.Equal("list", list.GetAttribute("role"));
        Assert.Equal("Conversation", list.GetAttribute("aria-label"));
        var items = cut.FindAll("ol > li");
        Assert.Equal(["You", "Assistant", "You"], items.Select(i => i.GetAttribute("aria-label")));
        Assert.Equal("Hi", items[0].TextContent.Trim());
        Assert.Equal("there", items[1].QuerySelector("strong")!.TextContent);
    }

    [Fact]
    public void Render_UserText_IsNeverMarkdownOrHtml()
    {
        List<ChatTurn> turns = [User("1", "**not bold** <b>nor this</b>")];

        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));

        Assert.Empty(cut.FindAll("strong"));
        Assert.Empty(cut.FindAll("b"));
        Assert.Equal("**not bold** <b>nor this</b>", cut.Find(".user-text").TextContent);
    }

    [Fact]
    public void StreamingAnswer_IsBusyUntilFinished_ThenShowsStatsAndActions()
    {
        var answer = Answer("2", "", TurnState.Streaming);
        List<ChatTurn> turns = [User("1", "Hi"), answer];
        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));

        var item = cut.FindAll("ol > li")[1];
        Assert.Equal("true", item.GetAttribute("aria-busy"));
        Assert.Empty(cut.FindAll("button"));

        answer.Append("Hello");
        cut.WaitForAssertion(() => Assert.Contains("Hello", cut.FindAll("ol > li")[1].TextContent, StringComparison.Ordinal));
        Assert.Equal("true", cut.FindAll("ol > li")[1].GetAttribute("aria-busy"));

        answer.Finish(TurnState.Complete, new AnswerStats
        {
            TimeToFirstTokenMs = 123.4,
            TokensPerSecond = 48.25,
            PromptTokens = 12,
            CompletionTokens = 34,
            FinishReason = "stop",
        }, null);

        cut.WaitForAssertion(() => Assert.Equal("false", cut.FindAll("ol > li")[1].GetAttribute("aria-busy")));
        var footer = cut.Find(".message-footer").TextContent;
        Assert.Contains("TTFT 123 ms", footer, StringComparison.Ordinal);
        Assert.Contains("48.3 tok/s", footer, StringComparison.Ordinal);
        Assert.Contains("12 prompt + 34 completion tokens", footer, StringComparison.Ordinal);
        Assert.Equal(["Copy", "Regenerate"], cut.FindAll("button").Select(b => b.TextContent));
    }

    [Fact]
    public void Tokens_RenderOnlyTheGrowingMessage()
    {
        var answer = Answer("4", "", TurnState.Streaming);
        List<ChatTurn> turns = [User("1", "Hi"), Answer("2", "Earlier answer"), User("3", "Again"), answer];
        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));
        var items = cut.FindComponents<MessageItem>();
        var before = items.Select(i => i.RenderCount).ToArray();

        for (var i = 0; i < 5; i++)
        {
            answer.Append($"token{i} ");
            cut.WaitForAssertion(() => Assert.Contains($"token{i}", items[3].Markup, StringComparison.Ordinal));
        }

        Assert.Equal(before[..3], items.Take(3).Select(i => i.RenderCount).ToArray());
        Assert.True(items[3].RenderCount > before[3]);
    }

    [Fact]
    public void Regenerate_IsOfferedOnlyOnTheLastAnswer_AndInvokesCallback()
    {
        var regenerated = 0;
        List<ChatTurn> turns = [User("1", "Hi"), Answer("2", "One"), User("3", "Again"), Answer("4", "Two")];

        var cut = Render<MessageList>(p => p
            .Add(x => x.Turns, turns)
            .Add(x => x.OnRegenerate, () => regenerated++));

        Assert.Equal(2, cut.FindAll("button").Count(b => b.TextContent == "Copy"));
        var regenerate = Assert.Single(cut.FindAll("button"), b => b.TextContent == "Regenerate");
        Assert.Same(cut.FindAll("ol > li")[3], regenerate.Closest("li"));
        regenerate.Click();
        Assert.Equal(1, regenerated);
    }

    [Fact]
    public void StoppedAnswer_ShowsWhyItEnded()
    {
        List<ChatTurn> turns = [User("1", "Hi"), Answer("2", "Partial")];
        turns[1].Finish(TurnState.Stopped, new AnswerStats { CompletionTokens = 3 }, "Stopped");

        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));

        Assert.Equal("Stopped", cut.Find(".message-note").TextContent);
        Assert.Contains("3 tokens", cut.Find(".message-stats").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void Copy_SendsTheAnswerTextToTheClipboard()
    {
        var module = JSInterop.SetupModule("./chat.js");
        module.Setup<bool>("copyText", "The answer").SetResult(true);
        List<ChatTurn> turns = [User("1", "Hi"), Answer("2", "The answer")];
        var cut = Render<MessageList>(p => p.Add(x => x.Turns, turns));

        cut.FindAll("button").First(b => b.TextContent == "Copy").Click();

        cut.WaitForAssertion(() => Assert.Equal("Copied", cut.Find("[role=status]").TextContent));
        module.VerifyInvoke("copyText");
    }
}
