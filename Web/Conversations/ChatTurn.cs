using System.Text;
using System.Text.Json.Serialization;

namespace Web.Conversations;

/// <summary>Where a message stands.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TurnState>))]
public enum TurnState
{
    Complete,
    Streaming,
    Stopped,
    Failed,
}

/// <summary>
/// One message of a conversation. An answer being generated grows through <see cref="Append"/>
/// (from the stream's thread) while the UI reads <see cref="Content"/> (from the circuit's);
/// <see cref="Changed"/> tells the one component that shows it to render again.
/// </summary>
public sealed class ChatTurn
{
    private readonly Lock _gate = new();
    private readonly StringBuilder _text = new();
    private string? _content;
    private int _version;
    private ToolCallAccumulator? _toolCalls;
    private IReadOnlyList<ToolCall>? _toolCallsSnapshot;

    public string Id { get; init; } = "";

    /// <summary><c>user</c> or <c>assistant</c>.</summary>
    public string Role { get; init; } = "";

    public string Content
    {
        get
        {
            lock (_gate)
            {
                return _content ??= _text.ToString();
            }
        }
        set
        {
            lock (_gate)
            {
                _text.Clear().Append(value);
                _content = value;
                _version++;
            }
        }
    }

    public TurnState State { get; set; }

    /// <summary><see cref="ContentFormats.Json"/> when the answer was asked for as JSON (response_format); null for text.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Format { get; init; }

    /// <summary>
    /// The functions the model called, in the order it called them; null when it called none (and
    /// then not stored, so conversations saved before tools existed read and write as they were).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ToolCall>? ToolCalls
    {
        get
        {
            lock (_gate)
            {
                return _toolCallsSnapshot ??= _toolCalls?.ToList();
            }
        }
        init
        {
            _toolCalls = value is { Count: > 0 } ? new ToolCallAccumulator(value) : null;
        }
    }

    /// <summary>Timing and token counts of an answer.</summary>
    public AnswerStats? Stats { get; set; }

    /// <summary>Why an answer ended early (stopped, or the error's title).</summary>
    public string? Note { get; set; }

    /// <summary>
    /// The turn as text for the next request and the clipboard: the content, then each tool call as
    /// <c>name(arguments)</c> (the chat runs no tools, so a call goes back as what the model said).
    /// </summary>
    [JsonIgnore]
    public string PromptText
    {
        get
        {
            var content = Content;
            if (ToolCalls is not { Count: > 0 } calls)
            {
                return content;
            }
            var text = new StringBuilder(content);
            foreach (var call in calls)
            {
                if (text.Length > 0)
                {
                    text.Append('\n');
                }
                text.Append(call.Name).Append('(').Append(call.Arguments).Append(')');
            }
            return text.ToString();
        }
    }

    [JsonIgnore]
    public bool IsUser => Role == ChatRoles.User;

    /// <summary>Increases with every change; a component renders again only when it moved.</summary>
    [JsonIgnore]
    public int Version
    {
        get
        {
            lock (_gate)
            {
                return _version;
            }
        }
    }

    /// <summary>Raised (on any thread) after the text or the state changed.</summary>
    public event Action? Changed;

    /// <summary>Adds streamed text; no string is built until someone reads <see cref="Content"/>.</summary>
    public void Append(string text)
    {
        if (text.Length == 0)
        {
            return;
        }
        lock (_gate)
        {
            _text.Append(text);
            _content = null;
            _version++;
        }
        Changed?.Invoke();
    }

    /// <summary>
    /// Adds a streamed piece of a tool call: the call at <paramref name="index"/> (OpenAI's
    /// <c>delta.tool_calls[].index</c>) takes the id and name when they come and appends the
    /// argument text.
    /// </summary>
    public void AppendToolCall(int index, string? id, string? name, string? arguments)
    {
        lock (_gate)
        {
            (_toolCalls ??= new ToolCallAccumulator()).Add(index, id, name, arguments);
            _toolCallsSnapshot = null;
            _version++;
        }
        Changed?.Invoke();
    }

    /// <summary>Ends the answer in <paramref name="state"/>.</summary>
    public void Finish(TurnState state, AnswerStats? stats, string? note)
    {
        lock (_gate)
        {
            State = state;
            Stats = stats;
            Note = note;
            _version++;
        }
        Changed?.Invoke();
    }
}

/// <summary>Values of <see cref="ChatTurn.Format"/>.</summary>
public static class ContentFormats
{
    public const string Json = "json";
}

/// <summary>One function call of an answer: the call's id, the function and its arguments (JSON text as the model wrote it).</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

public static class ChatRoles
{
    public const string User = "user";
    public const string Assistant = "assistant";
    public const string System = "system";
}

/// <summary>Per-answer numbers shown under it.</summary>
public sealed record AnswerStats
{
    /// <summary>Milliseconds from sending to the first token.</summary>
    public double TimeToFirstTokenMs { get; init; }

    /// <summary>Generation speed after the first token.</summary>
    public double TokensPerSecond { get; init; }

    public int PromptTokens { get; init; }

    public int CompletionTokens { get; init; }

    /// <summary><c>stop</c>, <c>length</c>, or empty when the answer did not finish.</summary>
    public string FinishReason { get; init; } = "";

    public string Model { get; init; } = "";
}
