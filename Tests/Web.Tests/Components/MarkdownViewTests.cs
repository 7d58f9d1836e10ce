using Bunit;
using Web.Components.Chat;

namespace Web.Tests.Components;

public sealed class MarkdownViewTests : ChatTestContext
{
    [Fact]
    public void Render_HostileModelOutput_PutsNoScriptHandlerOrJavascriptLinkInTheDom()
    {
        const string hostile = """
            Here you go:

            <script>document.title='pwned'</script>
            <img src=x onerror="alert(1)">
            <a href="javascript:alert(2)">raw link</a>
            [md link](javascript:alert(3)) and <javascript:alert(4)>
            <iframe src="https://evil.example"></iframe>

            ```html
            <script>alert(5)</script>
            ```
            """;

        var cut = Render<MarkdownView>(p => p.Add(x => x.Markdown, hostile));

        Assert.Empty(cut.FindAll("script"));
        Assert.Empty(cut.FindAll("img"));
        Assert.Empty(cut.FindAll("iframe"));
        Assert.Empty(cut.FindAll("a"));
        Assert.Empty(cut.FindAll("[onerror]"));
        // The text is still shown to the reader, as text.
        Assert.Contains("<script>document.title='pwned'</script>", cut.Find(".markdown").TextContent, StringComparison.Ordinal);
        Assert.Equal("<script>alert(5)</script>", cut.Find("pre code").TextContent.Trim());
    }

    [Fact]
    public void Render_MarkdownFeatures_ProduceStructure()
    {
        var cut = Render<MarkdownView>(p => p.Add(x => x.Markdown, "**bold** and `code`\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |"));

        Assert.Equal("bold", cut.Find("strong").TextContent);
        Assert.Equal("code", cut.Find("code").TextContent);
        Assert.Equal(2, cut.FindAll("ul li").Count);
        Assert.Single(cut.FindAll("table"));
    }
}
