using System.Text.Json;
using Microsoft.JSInterop;

namespace Web.Conversations;

/// <summary>
/// Keeps conversations in the browser's <c>localStorage</c>: an index of summaries, one entry per
/// conversation, and the generation settings. Scoped to the circuit (it talks to one browser).
/// </summary>
internal sealed class ConversationStore(IJSRuntime js, ILogger<ConversationStore> logger)
{
    private const string Prefix = "llm-chat:v1:";
    private const string IndexKey = Prefix + "index";
    private const string SettingsKey = Prefix + "settings";

    private static string ConversationKey(string id) => Prefix + "conversation:" + id;

    public async Task<List<ConversationSummary>> LoadIndexAsync(CancellationToken cancellationToken)
    {
        var index = await ReadAsync(IndexKey, ConversationJsonContext.Default.ListConversationSummary, cancellationToken);
        return index ?? [];
    }

    public async Task<Conversation?> LoadAsync(string id, CancellationToken cancellationToken)
    {
        var conversation = await ReadAsync(ConversationKey(id), ConversationJsonContext.Default.Conversation, cancellationToken);
        foreach (var turn in conversation?.Turns ?? [])
        {
            // An answer saved mid-stream (the tab closed) is over: it will never grow again.
            if (turn.State == TurnState.Streaming)
            {
                turn.State = TurnState.Stopped;
            }
        }
        return conversation;
    }

    public Task<ChatSettings?> LoadSettingsAsync(CancellationToken cancellationToken) =>
        ReadAsync(SettingsKey, ConversationJsonContext.Default.ChatSettings, cancellationToken);

    /// <summary>Writes the conversation and the index that lists it.</summary>
    public async Task SaveAsync(Conversation conversation, IReadOnlyList<ConversationSummary> index, CancellationToken cancellationToken)
    {
        await WriteAsync(ConversationKey(conversation.Id), JsonSerializer.Serialize(conversation, ConversationJsonContext.Default.Conversation), cancellationToken);
        await SaveIndexAsync(index, cancellationToken);
    }

    public Task SaveIndexAsync(IReadOnlyList<ConversationSummary> index, CancellationToken cancellationToken) =>
        WriteAsync(IndexKey, JsonSerializer.Serialize([.. index], ConversationJsonContext.Default.ListConversationSummary), cancellationToken);

    public Task SaveSettingsAsync(ChatSettings settings, CancellationToken cancellationToken) =>
        WriteAsync(SettingsKey, JsonSerializer.Serialize(settings, ConversationJsonContext.Default.ChatSettings), cancellationToken);

    public async Task DeleteAsync(string id, IReadOnlyList<ConversationSummary> index, CancellationToken cancellationToken)
    {
        await js.InvokeVoidAsync("localStorage.removeItem", cancellationToken, ConversationKey(id));
        await SaveIndexAsync(index, cancellationToken);
    }

    private async Task<T?> ReadAsync<T>(string key, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken)
        where T : class
    {
        var json = await js.InvokeAsync<string?>("localStorage.getItem", cancellationToken, key);
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(json, type);
        }
        catch (JsonException exception)
        {
            // A damaged entry must not break the page: start without it.
            Log.UnreadableEntry(logger, key, exception);
            return null;
        }
    }

    private async Task WriteAsync(string key, string json, CancellationToken cancellationToken) =>
        await js.InvokeVoidAsync("localStorage.setItem", cancellationToken, key, json);
}

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Ignoring unreadable local storage entry {Key}")]
    public static partial void UnreadableEntry(ILogger logger, string key, Exception exception);
}
