using System.Text;
using System.Text.Json;

namespace Gateway.Structured;

/// <summary>A tool call read from generated text; <see cref="Arguments"/> is compact JSON text.</summary>
public sealed record ParsedToolCall(string Name, string Arguments);

/// <summary>What a stream parser found in the text pushed so far: a piece of content or a whole tool call.</summary>
public readonly record struct ToolCallEvent(string? Content, ParsedToolCall? Call);

/// <summary>
/// The tool-call formats models are trained on, as vLLM's parsers of the same names read them:
/// <c>hermes</c> (<c>&lt;tool_call&gt;{"name":…,"arguments":{…}}&lt;/tool_call&gt;</c>, Hermes / Qwen / chatml models),
/// <c>llama3_json</c> (the answer is <c>{"name":…,"parameters":{…}}</c>, optionally after <c>&lt;|python_tag|&gt;</c>,
/// several joined by <c>;</c>) and <c>mistral</c> (<c>[TOOL_CALLS]</c> then a JSON array of
/// <c>{"name":…,"arguments":{…}}</c>). Text that does not parse stays content, as in vLLM.
/// </summary>
public static class ToolCallParsers
{
    public const string Hermes = "hermes";
    public const string Llama3Json = "llama3_json";
    public const string Mistral = "mistral";

    public static IReadOnlyList<string> Names { get; } = [Hermes, Llama3Json, Mistral];

    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Parses a whole answer: the content outside the calls (null when none) and the calls.</summary>
    public static (string? Content, IReadOnlyList<ParsedToolCall> Calls) Parse(string parser, string text)
    {
        var stream = new ToolCallStreamParser(parser);
        var events = new List<ToolCallEvent>();
        stream.Push(text, events);
        stream.Finish(events);
        var content = new StringBuilder();
        var calls = new List<ParsedToolCall>();
        foreach (var e in events)
        {
            if (e.Call is { } call)
            {
                calls.Add(call);
            }
            else
            {
                content.Append(e.Content);
            }
        }
        var trimmed = content.ToString();
        if (calls.Count > 0)
        {
            trimmed = trimmed.Trim();
        }
        return (trimmed.Length == 0 && calls.Count > 0 ? null : trimmed, calls);
    }

    /// <summary>
    /// The calls in the answer of a <c>required</c> tool choice: the JSON array of
    /// <c>{"name", "parameters"}</c> the constraint produced.
    /// </summary>
    public static IReadOnlyList<ParsedToolCall>? ParseRequiredArray(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
            var calls = new List<ParsedToolCall>();
            foreach (var item in document.RootElement.EnumerateArray())
            {
                if (ToCall(item, "parameters") is not { } call)
                {
                    return null;
                }
                calls.Add(call);
            }
            return calls;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A call object with <c>name</c> and <paramref name="argumentsKey"/> (or the other usual key).</summary>
    internal static ParsedToolCall? ToCall(JsonElement item, string argumentsKey)
    {
        if (item.ValueKind != JsonValueKind.Object
            || !item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        if (!item.TryGetProperty(argumentsKey, out var arguments)
            && !item.TryGetProperty(argumentsKey == "arguments" ? "parameters" : "arguments", out arguments))
        {
            return new ParsedToolCall(name.GetString()!, "{}");
        }
        return arguments.ValueKind switch
        {
            JsonValueKind.Object => new ParsedToolCall(name.GetString()!, arguments.GetRawText()),
            // Some models write the arguments as a JSON string.
            JsonValueKind.String when IsJsonObject(arguments.GetString()!) => new ParsedToolCall(name.GetString()!, arguments.GetString()!),
            _ => null,
        };
    }

    private static bool IsJsonObject(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

/// <summary>
/// Reads tool calls out of streamed text as it arrives: content is passed on at once (less a tail
/// that may begin the format's marker), and each call is reported as soon as its JSON is complete.
/// </summary>
public sealed class ToolCallStreamParser
{
    private const string HermesStart = "<tool_call>";
    private const string HermesEnd = "</tool_call>";
    private const string MistralStart = "[TOOL_CALLS]";
    private const string PythonTag = "<|python_tag|>";

    private readonly string _parser;
    private readonly StringBuilder _buffer = new();
    private bool _inCalls;
    private string _marker = "";
    private bool _abandoned;
    private bool _sawContent;
    private int _callsFound;

    /// <param name="parser">The format's name (<see cref="ToolCallParsers.Names"/>).</param>
    /// <param name="startInCalls">The text is calls from its first character (the JSON array of a constrained <c>required</c> choice: use <c>mistral</c>).</param>
    public ToolCallStreamParser(string parser, bool startInCalls = false)
    {
        _parser = parser.ToLowerInvariant();
        _inCalls = startInCalls;
        if (!ToolCallParsers.IsKnown(_parser))
        {
            throw new ArgumentOutOfRangeException(nameof(parser), parser, "unknown tool-call parser");
        }
    }

    public void Push(ReadOnlySpan<char> text, List<ToolCallEvent> events)
    {
        _buffer.Append(text);
        Drain(events, final: false);
    }

    /// <summary>The end of the text: what is left is content, unless it held calls.</summary>
    public void Finish(List<ToolCallEvent> events)
    {
        Drain(events, final: true);
        if (_buffer.Length > 0)
        {
            var rest = _buffer.ToString();
            _buffer.Clear();
            // A call that never closed (or never parsed) is the model's text after all.
            if (!(_inCalls && _callsFound > 0 && string.IsNullOrWhiteSpace(Strip(rest))))
            {
                events.Add(new ToolCallEvent(_inCalls && _callsFound == 0 ? _marker + rest : rest, null));
            }
        }
    }

    private static string Strip(string rest) => rest.Replace(HermesEnd, "", StringComparison.Ordinal).Trim().TrimEnd(']', ';').Trim();

    private void Drain(List<ToolCallEvent> events, bool final)
    {
        while (true)
        {
            if (!_inCalls)
            {
                if (!TakeContent(events, final))
                {
                    return;
                }
                continue;
            }
            if (!TakeCall(events, final))
            {
                return;
            }
        }
    }

    /// <summary>Passes content on up to the start of the calls; true when the calls start.</summary>
    private bool TakeContent(List<ToolCallEvent> events, bool final)
    {
        var text = _buffer.ToString();
        if (_abandoned)
        {
            // A marker that led to no call: from here on everything is content.
            return Emit(events, text, text.Length, final);
        }
        switch (_parser)
        {
            case ToolCallParsers.Llama3Json:
                {
                    // Llama 3 answers with a call or with text: the first non-blank characters decide.
                    var start = 0;
                    while (start < text.Length && char.IsWhiteSpace(text[start]))
                    {
                        start++;
                    }
                    if (_sawContent || start == text.Length)
                    {
                        return Emit(events, text, text.Length, final);
                    }
                    var rest = text.AsSpan(start);
                    if (rest[0] == '{' || rest.StartsWith(PythonTag, StringComparison.Ordinal))
                    {
                        _buffer.Remove(0, start + (rest[0] == '{' ? 0 : PythonTag.Length));
                        _marker = rest[0] == '{' ? "" : PythonTag;
                        _inCalls = true;
                        return true;
                    }
                    if (PythonTag.StartsWith(rest.ToString(), StringComparison.Ordinal) && !final)
                    {
                        return false;
                    }
                    _sawContent = true;
                    return Emit(events, text, text.Length, final);
                }
            default:
                {
                    var marker = _parser == ToolCallParsers.Hermes ? HermesStart : MistralStart;
                    var at = text.IndexOf(marker, StringComparison.Ordinal);
                    if (at < 0)
                    {
                        return Emit(events, text, final ? text.Length : text.Length - HeldBack(text, marker), final);
                    }
                    if (at > 0)
                    {
                        events.Add(new ToolCallEvent(text[..at], null));
                    }
                    _buffer.Remove(0, at + marker.Length);
                    _marker = marker;
                    _inCalls = true;
                    return true;
                }
        }
    }

    private bool Emit(List<ToolCallEvent> events, string text, int end, bool final)
    {
        if (end > 0)
        {
            events.Add(new ToolCallEvent(text[..end], null));
            _buffer.Remove(0, end);
        }
        return false;
    }

    private static int HeldBack(string text, string marker)
    {
        for (var length = Math.Min(marker.Length - 1, text.Length); length > 0; length--)
        {
            if (text.AsSpan(text.Length - length).SequenceEqual(marker.AsSpan(0, length)))
            {
                return length;
            }
        }
        return 0;
    }

    /// <summary>Reports the next complete call in the buffer; true when one was taken.</summary>
    private bool TakeCall(List<ToolCallEvent> events, bool final)
    {
        var text = _buffer.ToString();
        var start = 0;
        // Separators between calls: blanks, the array's '[' and ',', Llama's ';', Hermes' next marker.
        while (start < text.Length)
        {
            if (char.IsWhiteSpace(text[start]) || text[start] is ',' or ';' || (_parser == ToolCallParsers.Mistral && text[start] == '['))
            {
                start++;
                continue;
            }
            if (_parser == ToolCallParsers.Hermes && text.AsSpan(start).StartsWith(HermesStart, StringComparison.Ordinal))
            {
                start += HermesStart.Length;
                continue;
            }
            if (_parser == ToolCallParsers.Hermes && text.AsSpan(start).StartsWith(HermesEnd, StringComparison.Ordinal))
            {
                start += HermesEnd.Length;
                continue;
            }
            break;
        }
        if (start == text.Length || text[start] != '{')
        {
            if (start < text.Length && _parser == ToolCallParsers.Hermes && text[start] == '<' && !final)
            {
                return false; // perhaps the next "<tool_call>"
            }
            if (start < text.Length && _parser == ToolCallParsers.Hermes && !final
                && (HermesStart.StartsWith(text[start..], StringComparison.Ordinal) || HermesEnd.StartsWith(text[start..], StringComparison.Ordinal)))
            {
                return false;
            }
            if (start < text.Length && !(text[start] == ']' && _parser == ToolCallParsers.Mistral))
            {
                // Not a call: the calls are over; the rest is content.
                LeaveCalls(start);
                return true;
            }
            return false;
        }
        var end = JsonValueEnd(text, start);
        if (end < 0)
        {
            return false; // incomplete: wait for more text
        }
        var json = text[start..end];
        ParsedToolCall? call = null;
        try
        {
            using var document = JsonDocument.Parse(json);
            call = ToolCallParsers.ToCall(document.RootElement, _parser == ToolCallParsers.Llama3Json ? "parameters" : "arguments");
        }
        catch (JsonException)
        {
        }
        if (call is null)
        {
            // Not a call after all: the text goes out as content.
            LeaveCalls(0);
            return true;
        }
        _callsFound++;
        events.Add(new ToolCallEvent(null, call));
        var consumed = end;
        if (_parser == ToolCallParsers.Hermes)
        {
            var close = text.IndexOf(HermesEnd, end, StringComparison.Ordinal);
            if (close >= 0 && string.IsNullOrWhiteSpace(text[end..close]))
            {
                consumed = close + HermesEnd.Length;
            }
        }
        _buffer.Remove(0, consumed);
        return true;
    }

    /// <summary>Back to content; before any call, the marker was the model's text too.</summary>
    private void LeaveCalls(int skip)
    {
        _inCalls = false;
        _sawContent = true;
        if (_callsFound == 0)
        {
            _buffer.Insert(0, _marker);
            _abandoned = true;
        }
        else
        {
            _buffer.Remove(0, skip);
        }
        _marker = "";
    }

    /// <summary>The end (exclusive) of the JSON object starting at <paramref name="start"/>, or -1 while it is incomplete.</summary>
    private static int JsonValueEnd(string text, int start)
    {
        var depth = 0;
        var inString = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }
                continue;
            }
            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    depth--;
                    if (depth == 0)
                    {
                        return i + 1;
                    }
                    break;
            }
        }
        return -1;
    }
}
