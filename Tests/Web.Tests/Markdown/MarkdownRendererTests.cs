using Web.Markdown;

namespace Web.Tests.Markdown;

public sealed class MarkdownRendererTests
{
    private readonly MarkdownRenderer _renderer = new();

    [Fact]
    public void ToHtml_ScriptTag_IsEscapedText()
    {
        var html = _renderer.ToHtml("Hello <script>alert('x')</script> world\n\n<script>\nalert(1)\n</script>");

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
    }

    [Fact]
    public void ToHtml_ImgWithOnError_IsEscapedText()
    {
        var html = _renderer.ToHtml("<img src=x onerror=\"alert(1)\">");

        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;img", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[click me](javascript:alert(1))", "click me")]
    [InlineData("[click me](JavaScript:alert(1))", "click me")]
    [InlineData("[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "data")]
    [InlineData("<javascript:alert(1)>", "javascript:alert(1)")]
    [InlineData("[rel](/admin)", "rel")]
    public void ToHtml_UnsafeLink_BecomesPlainText(string markdown, string text)
    {
        var html = _renderer.ToHtml(markdown);

        Assert.DoesNotContain("<a", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("href", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(text, html, StringComparison.Ordinal);
    }

    [Fact]
    public void ToHtml_HttpsLink_OpensInNewTabWithoutReferrer()
    {
        var html = _renderer.ToHtml("See [the docs](https://example.com/docs?a=1&b=2).");

        Assert.Contains("href=\"https://example.com/docs?a=1&amp;b=2\"", html, StringComparison.Ordinal);
        Assert.Contains("rel=\"noopener noreferrer nofollow\"", html, StringComparison.Ordinal);
        Assert.Contains("target=\"_blank\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void ToHtml_Image_BecomesLinkSoNothingLoadsByItself()
    {
        var html = _renderer.ToHtml("![a cat](https://example.com/cat.png)");

        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("<a href=\"https://example.com/cat.png\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void ToHtml_FencedCode_RendersPreCodeWithLanguageAndEscapedBody()
    {
        var html = _renderer.ToHtml("```csharp\nvar x = a < b && c > d;\n```");

        Assert.Contains("<pre><code class=\"language-csharp\">", html, StringComparison.Ordinal);
        Assert.Contains("var x = a &lt; b &amp;&amp; c &gt; d;", html, StringComparison.Ordinal);
    }

    [Fact]
    public void ToHtml_AttributeSyntax_IsNotAnExtension()
    {
        // Markdig's generic attributes extension would turn this into an onclick handler.
        var html = _renderer.ToHtml("# Title {onclick=alert(1)}\n\n[x](https://example.com){onmouseover=alert(1)}");

        Assert.DoesNotContain("onclick=\"", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("onmouseover=\"", html, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void ToHtml_PlainTextLineBreaks_AreKept()
    {
        var html = _renderer.ToHtml("first line\nsecond line");

        Assert.Contains("first line<br />", html, StringComparison.Ordinal);
    }
}
