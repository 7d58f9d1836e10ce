using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Functional;

/// <summary>Reads OpenAI's data-only SSE one event at a time, as a client sees it arrive.</summary>
internal sealed class SseReader(Stream body) : IDisposable
{
    private readonly StreamReader _reader = new(body);

    /// <summary>SSE comment lines (<c>: keep-alive</c>) seen so far; SDKs skip them, so does <see cref="NextAsync"/>.</summary>
    public List<string> Comments { get; } = [];

    /// <summary>Comments seen before the first data line.</summary>
    public int CommentsBeforeFirstData { get; private set; } = -1;

    /// <summary>The next event's data, or null at the end of the body.</summary>
    public async Task<string?> NextAsync(CancellationToken cancellationToken = default)
    {
        string? data = null;
        while (await _reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                {
                    return data;
                }
                continue;
            }
            if (line.StartsWith(':'))
            {
                Comments.Add(line);
                continue;
            }
            Assert.StartsWith("data: ", line);
            if (CommentsBeforeFirstData < 0)
            {
                CommentsBeforeFirstData = Comments.Count;
            }
            Assert.Null(data); // one data line per event
            data = line["data: ".Length..];
        }
        Assert.Null(data); // every event ends with a blank line
        return null;
    }

    /// <summary>The next line, which must be an SSE comment (blank lines between are skipped).</summary>
    public async Task<string> NextCommentAsync(CancellationToken cancellationToken = default)
    {
        while (await _reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith(':'))
            {
                Comments.Add(line);
                return line;
            }
            Assert.True(line.Length == 0, "expected an SSE comment, got: " + line);
        }
        throw new EndOfStreamException("the body ended before a comment");
    }

    public async Task<List<string>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var events = new List<string>();
        while (await NextAsync(cancellationToken) is { } data)
        {
            events.Add(data);
        }
        return events;
    }

    public void Dispose() => _reader.Dispose();
}

internal static class Json
{
    public static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement;
}

internal static class TokenizerTestExtensions
{
    /// <summary>The text of one token on its own (tests pick stop strings at token boundaries).</summary>
    public static string CreateDetokenizerText(this Gateway.Text.ITextTokenizer tokenizer, int id)
    {
        var detokenizer = tokenizer.CreateDetokenizer();
        var text = new StringBuilder();
        detokenizer.Append(id, text);
        detokenizer.Flush(text);
        return text.ToString();
    }
}

/// <summary>A streamed <c>/v1/completions</c> answer read off the wire: the text, how many non-empty deltas, the finish reason and the usage chunk.</summary>
internal readonly record struct StreamedCompletion(string Text, int Deltas, string? Finish, JsonElement? Usage)
{
    /// <summary>Reads every event up to <c>[DONE]</c> (which must be the last).</summary>
    public static async Task<StreamedCompletion> ReadAsync(HttpResponseMessage response)
    {
        using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
        var events = await sse.ReadAllAsync();
        Assert.Equal("[DONE]", events[^1]);
        var text = new StringBuilder();
        var deltas = 0;
        string? finish = null;
        JsonElement? usage = null;
        foreach (var chunk in events[..^1].Select(Json.Parse))
        {
            if (chunk.GetProperty("choices").GetArrayLength() > 0)
            {
                var choice = chunk.GetProperty("choices")[0];
                var piece = choice.GetProperty("text").GetString()!;
                deltas += piece.Length > 0 ? 1 : 0;
                text.Append(piece);
                finish = choice.GetProperty("finish_reason").GetString() ?? finish;
            }
            if (chunk.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            {
                usage = u;
            }
        }
        return new StreamedCompletion(text.ToString(), deltas, finish, usage);
    }
}
