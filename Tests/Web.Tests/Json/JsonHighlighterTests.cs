using AngleSharp.Html.Parser;
using Web.Json;

namespace Web.Tests.Json;

public sealed class JsonHighlighterTests
{
    private static AngleSharp.Dom.IDocument Parse(string html) => new HtmlParser().ParseDocument("<pre>" + html + "</pre>");

    [Fact]
    public void Highlight_Object_PrettyPrintsWithOneClassPerTokenKind()
    {
        var html = JsonHighlighter.TryHighlight("""{"city":"Paris","temp":21.5,"sunny":true,"rain":null,"tags":["a",1]}""");

        Assert.NotNull(html);
        var document = Parse(html);
        Assert.Equal(["\"city\"", "\"temp\"", "\"sunny\"", "\"rain\"", "\"tags\""], document.QuerySelectorAll(".json-key").Select(e => e.TextContent));
        Assert.Equal(["\"Paris\"", "\"a\""], document.QuerySelectorAll(".json-string").Select(e => e.TextContent));
        Assert.Equal(["21.5", "1"], document.QuerySelectorAll(".json-number").Select(e => e.TextContent));
        Assert.Equal(["true"], document.QuerySelectorAll(".json-bool").Select(e => e.TextContent));
        Assert.Equal(["null"], document.QuerySelectorAll(".json-null").Select(e => e.TextContent));
        Assert.Equal(
            """
            {
              "city": "Paris",
              "temp": 21.5,
              "sunny": true,
              "rain": null,
              "tags": [
                "a",
                1
              ]
            }
            """.ReplaceLineEndings("\n"),
            document.QuerySelector("pre")!.TextContent);
    }

    [Fact]
    public void Highlight_EmptyContainersAndScalars_StayOnOneLine()
    {
        Assert.Equal("{\n  \"a\": {},\n  \"b\": []\n}", Parse(JsonHighlighter.TryHighlight("""{ "a" : { }, "b":[ ] }""")!).QuerySelector("pre")!.TextContent);
        Assert.Equal("42", Parse(JsonHighlighter.TryHighlight(" 42 ")!).QuerySelector("pre")!.TextContent);
    }

    [Fact]
    public void Highlight_MarkupInStringsAndKeys_IsEscapedNotInjected()
    {
        const string json = """{"<img src=x onerror=alert(1)>":"</span><script>alert('x')</script>&amp;"}""";

        var html = JsonHighlighter.TryHighlight(json)!;

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        var document = Parse(html);
        Assert.Empty(document.QuerySelectorAll("script, img"));
        // Exactly the spans the highlighter made: a key, a string and the punctuation.
        Assert.Single(document.QuerySelectorAll(".json-key"));
        Assert.Equal("\"</span><script>alert('x')</script>&amp;\"", document.QuerySelector(".json-string")!.TextContent);
        Assert.Equal("\"<img src=x onerror=alert(1)>\"", document.QuerySelector(".json-key")!.TextContent);
    }

    [Fact]
    public void Highlight_KeepsEscapesAsWrittenAndNonAsciiReadable()
    {
        var html = JsonHighlighter.TryHighlight("""["line\nbreak \u003cb\u003e", "café ☕"]""")!;

        var strings = Parse(html).QuerySelectorAll(".json-string").Select(e => e.TextContent).ToList();
        Assert.Equal(["\"line\\nbreak \\u003cb\\u003e\"", "\"café ☕\""], strings);
        Assert.Contains("café ☕", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("""{"a":1""")]
    [InlineData("""{"a":1} trailing""")]
    [InlineData("""{"a":1,}""")]
    [InlineData("""{'a':1}""")]
    [InlineData("Sure! Here is the JSON")]
    public void Highlight_NotOneCompleteJsonValue_ReturnsNull(string text)
    {
        Assert.Null(JsonHighlighter.TryHighlight(text));
        Assert.False(JsonHighlighter.IsJson(text));
    }
}
