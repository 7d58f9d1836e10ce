using Markdig;
using Markdig.Renderers;
using Markdig.Renderers.Html;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;

namespace Web.Markdown;

/// <summary>Renders model output (untrusted) as HTML that is safe to put in the page.</summary>
public interface IMarkdownRenderer
{
    string ToHtml(string markdown);
}

/// <summary>
/// Markdig with raw HTML disabled (it comes out as escaped text), links kept only for http(s)
/// and mailto (anything else, <c>javascript:</c> included, becomes plain text) and opened in a
/// new tab without a referrer, and images shown as links so model output never makes the
/// browser fetch anything on its own.
/// </summary>
internal sealed class MarkdownRenderer : IMarkdownRenderer
{
    private const string LinkRel = "noopener noreferrer nofollow";

    private readonly MarkdownPipeline _pipeline = new MarkdownPipelineBuilder()
        .UsePipeTables()
        .UseEmphasisExtras()
        .UseAutoLinks()
        .UseTaskLists()
        .UseSoftlineBreakAsHardlineBreak()
        .DisableHtml()
        .Build();

    public string ToHtml(string markdown)
    {
        var document = Markdig.Markdown.Parse(markdown, _pipeline);
        MakeLinksSafe(document);

        using var writer = new StringWriter();
        var renderer = new HtmlRenderer(writer);
        _pipeline.Setup(renderer);
        renderer.Render(document);
        writer.Flush();
        return writer.ToString();
    }

    private static void MakeLinksSafe(MarkdownDocument document)
    {
        List<Inline>? unsafeLinks = null;
        foreach (var inline in document.Descendants<Inline>())
        {
            switch (inline)
            {
                case LinkInline link when IsSafe(link.Url):
                    link.IsImage = false;
                    var attributes = link.GetAttributes();
                    attributes.AddPropertyIfNotExist("rel", LinkRel);
                    attributes.AddPropertyIfNotExist("target", "_blank");
                    break;
                case AutolinkInline autolink when !autolink.IsEmail && IsSafe(autolink.Url):
                    autolink.GetAttributes().AddPropertyIfNotExist("rel", LinkRel);
                    autolink.GetAttributes().AddPropertyIfNotExist("target", "_blank");
                    break;
                case LinkInline:
                case AutolinkInline { IsEmail: false }:
                    (unsafeLinks ??= []).Add(inline);
                    break;
            }
        }
        if (unsafeLinks is null)
        {
            return;
        }
        foreach (var inline in unsafeLinks)
        {
            var text = inline switch
            {
                LinkInline link => TextOf(link) is { Length: > 0 } label ? label : link.Url ?? "",
                AutolinkInline autolink => autolink.Url,
                _ => "",
            };
            inline.ReplaceBy(new LiteralInline(text), copyChildren: false);
        }
    }

    private static string TextOf(ContainerInline container)
    {
        var builder = new System.Text.StringBuilder();
        foreach (var literal in container.Descendants<LiteralInline>())
        {
            builder.Append(literal.Content.AsSpan());
        }
        foreach (var code in container.Descendants<CodeInline>())
        {
            builder.Append(code.Content);
        }
        return builder.ToString();
    }

    internal static bool IsSafe(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeMailto);
}
