namespace Web.Chat;

/// <summary>The model side of the chat: the gateway's gRPC streaming face.</summary>
public interface IChatBackend
{
    /// <summary>The models the web app's key may use.</summary>
    Task<IReadOnlyList<ModelSummary>> ListModelsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Streams one answer: <see cref="AnswerDelta"/>s, then one <see cref="AnswerFinal"/>.
    /// Cancelling <paramref name="cancellationToken"/> cancels the gRPC call (and so the backend request).
    /// Failures surface as <see cref="ChatException"/>.
    /// </summary>
    IAsyncEnumerable<AnswerEvent> StreamChatAsync(ChatPrompt prompt, CancellationToken cancellationToken);
}

/// <summary>A model the picker offers.</summary>
public sealed record ModelSummary(string Id, int ContextWindow, int MaxOutputTokens);

/// <summary>One message sent to the model.</summary>
public sealed record PromptMessage(string Role, string Content);

/// <summary>Everything one generation needs.</summary>
public sealed record ChatPrompt
{
    public required string Model { get; init; }
    public required IReadOnlyList<PromptMessage> Messages { get; init; }
    public float? Temperature { get; init; }
    public int? MaxTokens { get; init; }

    /// <summary>Response format and tools; null (or <see cref="StructuredOutput.IsPlain"/>) for a plain chat.</summary>
    public StructuredOutput? Structured { get; init; }
}

/// <summary>A streamed event of one answer.</summary>
public abstract record AnswerEvent;

/// <summary>New text and the number of tokens it accounts for.</summary>
public sealed record AnswerDelta(string Text, int TokenCount) : AnswerEvent;

/// <summary>
/// A streamed piece of a tool call (OpenAI's <c>delta.tool_calls[]</c>): the call's index, and its
/// id and function name on its first piece; argument text to append.
/// </summary>
public sealed record AnswerToolCallDelta(int Index, string? Id, string? Name, string? Arguments) : AnswerEvent;

/// <summary>The end of an answer, with the gateway's accounting.</summary>
public sealed record AnswerFinal(string FinishReason, int PromptTokens, int CompletionTokens, double TimeToFirstTokenMs, string Model) : AnswerEvent;
