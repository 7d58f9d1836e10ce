using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;

namespace Web.Json;

/// <summary>
/// Pretty-prints JSON as HTML: two-space indentation and <c>span</c>s with the classes
/// <c>json-key</c>, <c>json-string</c>, <c>json-number</c>, <c>json-bool</c>, <c>json-null</c> and
/// <c>json-punct</c>. The text comes from a model (untrusted): every token is HTML-encoded, and
/// strings keep their JSON escapes as written, so the output shows exactly the JSON that came back.
/// </summary>
public static class JsonHighlighter
{
    private const int Indent = 2;

    // Encodes markup characters (< > & " ') but leaves letters of every script readable.
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(UnicodeRanges.All);

    /// <summary>The highlighted HTML, or null when <paramref name="json"/> is not one complete JSON value.</summary>
    public static string? TryHighlight(string json)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return null;
        }
        var rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(json.Length));
        try
        {
            var length = Encoding.UTF8.GetBytes(json, rented);
            return Highlight(rented.AsSpan(0, length));
        }
        catch (JsonException)
        {
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Whether <paramref name="json"/> is one complete JSON value (objects and arrays at any depth the reader allows).</summary>
    public static bool IsJson(string json) => TryHighlight(json) is not null;

    private static string Highlight(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false });
        var html = new StringBuilder(utf8.Length * 2);
        var depth = 0;
        // Whether the next value follows a sibling (needs a comma) and whether it is an object's value (after "key": ).
        var needsComma = false;
        var afterKey = false;
        var emptyContainer = false;
        while (reader.Read())
        {
            var token = reader.TokenType;
            if (token is JsonTokenType.EndObject or JsonTokenType.EndArray)
            {
                depth--;
                if (!emptyContainer)
                {
                    NewLine(html, depth);
                }
                Punct(html, token == JsonTokenType.EndObject ? "}" : "]");
                needsComma = true;
                emptyContainer = false;
                continue;
            }

            if (!afterKey)
            {
                if (needsComma)
                {
                    Punct(html, ",");
                }
                if (depth > 0)
                {
                    NewLine(html, depth);
                }
            }
            afterKey = false;
            emptyContainer = false;

            switch (token)
            {
                case JsonTokenType.StartObject:
                case JsonTokenType.StartArray:
                    Punct(html, token == JsonTokenType.StartObject ? "{" : "[");
                    depth++;
                    needsComma = false;
                    emptyContainer = true;
                    continue;
                case JsonTokenType.PropertyName:
                    Span(html, "json-key", Quoted(ref reader));
                    Punct(html, ":");
                    html.Append(' ');
                    afterKey = true;
                    continue;
                case JsonTokenType.String:
                    Span(html, "json-string", Quoted(ref reader));
                    break;
                case JsonTokenType.Number:
                    Span(html, "json-number", Raw(ref reader));
                    break;
                case JsonTokenType.True:
                case JsonTokenType.False:
                    Span(html, "json-bool", Raw(ref reader));
                    break;
                case JsonTokenType.Null:
                    Span(html, "json-null", "null");
                    break;
            }
            needsComma = true;
        }
        // A reader over a final block throws on a truncated value; an empty input reads nothing.
        return reader.BytesConsumed == 0 ? throw new JsonException("No JSON value.") : html.ToString();
    }

    // The token as written (escapes kept), between its quotes.
    private static string Quoted(ref Utf8JsonReader reader) => string.Concat("\"", Raw(ref reader), "\"");

    private static string Raw(ref Utf8JsonReader reader) =>
        reader.HasValueSequence ? Encoding.UTF8.GetString(reader.ValueSequence) : Encoding.UTF8.GetString(reader.ValueSpan);

    private static void Span(StringBuilder html, string cssClass, string text) =>
        html.Append("<span class=\"").Append(cssClass).Append("\">").Append(Encoder.Encode(text)).Append("</span>");

    private static void Punct(StringBuilder html, string text) =>
        html.Append("<span class=\"json-punct\">").Append(text).Append("</span>");

    private static void NewLine(StringBuilder html, int depth) => html.Append('\n').Append(' ', depth * Indent);
}
