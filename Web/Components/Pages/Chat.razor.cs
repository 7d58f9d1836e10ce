using Microsoft.AspNetCore.Components;
using Web.Chat;
using Web.Components.Chat;
using Web.Conversations;

namespace Web.Components.Pages;

/// <summary>
/// The chat page: conversations from localStorage, the model list from the gateway, and one
/// generation at a time. The page renders when a message is added or an answer ends; while an
/// answer streams only its <see cref="MessageItem"/> renders.
/// </summary>
public sealed partial class Chat : IDisposable
{
    private const int TitleLength = 48;

    private readonly CancellationTokenSource _circuit = new();
    private List<ConversationSummary> _index = [];
    private Conversation _active = new();
    private ChatSettings _settings = new();
    private IReadOnlyList<ModelSummary> _models = [];
    private ChatError? _error;
    private CancellationTokenSource? _generation;
    private bool _loaded;
    private bool _sidebarOpen;
    private Composer? _composer;
    private ElementReference _scroller;

    [Inject]
    private ConversationStore Store { get; set; } = null!;

    [Inject]
    private IChatBackend Backend { get; set; } = null!;

    [Inject]
    private AnswerStreamer Streamer { get; set; } = null!;

    [Inject]
    private ChatInterop Interop { get; set; } = null!;

    [Inject]
    private TimeProvider Time { get; set; } = null!;

    protected override void OnInitialized() => _active = NewConversation();

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (!firstRender)
        {
            return;
        }
        var token = _circuit.Token;
        await Interop.FollowTranscriptAsync(_scroller);

        _index = await Store.LoadIndexAsync(token);
        _settings = await Store.LoadSettingsAsync(token) ?? new ChatSettings();
        if (_index.Count > 0 && await Store.LoadAsync(_index[0].Id, token) is { } latest)
        {
            _active = latest;
        }
        _loaded = true;
        StateHasChanged();

        await LoadModelsAsync(token);
        StateHasChanged();
    }

    private async Task LoadModelsAsync(CancellationToken cancellationToken)
    {
        try
        {
            _models = await Backend.ListModelsAsync(cancellationToken);
            if (_models.Count > 0 && !_models.Any(m => m.Id == _settings.Model))
            {
                _settings = _settings with { Model = _models[0].Id };
            }
        }
        catch (ChatException exception)
        {
            _error = exception.Error;
        }
    }

    private async Task SendAsync(string text)
    {
        if (_generation is not null)
        {
            _composer?.Restore(text);
            return;
        }
        if (string.IsNullOrWhiteSpace(_settings.Model))
        {
            // The model list may have failed to load (gateway down); try again now.
            await LoadModelsAsync(_circuit.Token);
            if (string.IsNullOrWhiteSpace(_settings.Model))
            {
                _error ??= new ChatError(ChatErrorKind.NoBackend, "No model to talk to", "The gateway listed no models for this app. Try again in a moment.");
                _composer?.Restore(text);
                return;
            }
        }

        if (!TryStructured(out var structured))
        {
            _composer?.Restore(text);
            return;
        }

        _error = null;
        var question = new ChatTurn { Id = NewId(), Role = ChatRoles.User, Content = text, State = TurnState.Complete };
        _active.Turns.Add(question);
        if (string.IsNullOrWhiteSpace(_active.Title))
        {
            _active.Title = TitleFrom(text);
        }
        await GenerateAsync(question, previousAnswer: null, draft: text, structured);
    }

    private async Task RegenerateAsync()
    {
        if (_generation is not null || _active.Turns.Count == 0 || _active.Turns[^1].IsUser)
        {
            return;
        }
        if (!TryStructured(out var structured))
        {
            return;
        }
        _error = null;
        var previous = _active.Turns[^1];
        _active.Turns.RemoveAt(_active.Turns.Count - 1);
        await GenerateAsync(question: null, previous, draft: null, structured);
    }

    /// <summary>
    /// Checks the settings' response format and tools again before use (they may come from storage
    /// or another tab): invalid JSON is never sent; the banner says what to fix.
    /// </summary>
    private bool TryStructured(out StructuredOutput? structured)
    {
        var check = StructuredOutput.From(_settings);
        structured = check.Output;
        if (check.IsValid)
        {
            return true;
        }
        _error = new ChatError(ChatErrorKind.InvalidRequest, "Fix the settings before sending", check.Problem + " Open Settings to correct it.");
        return false;
    }

    /// <summary>Streams an answer to the conversation as it stands.</summary>
    private async Task GenerateAsync(ChatTurn? question, ChatTurn? previousAnswer, string? draft, StructuredOutput? structured)
    {
        var conversation = _active;
        var prompt = new ChatPrompt
        {
            Model = _settings.Model,
            Messages = PromptMessages(conversation),
            Temperature = _settings.Temperature,
            MaxTokens = _settings.MaxTokens,
            Structured = structured is { IsPlain: false } ? structured : null,
        };
        var answer = new ChatTurn
        {
            Id = NewId(),
            Role = ChatRoles.Assistant,
            State = TurnState.Streaming,
            Format = structured is { WantsJson: true } ? ContentFormats.Json : null,
        };
        conversation.Turns.Add(answer);

        using var generation = CancellationTokenSource.CreateLinkedTokenSource(_circuit.Token);
        _generation = generation;
        StateHasChanged();
        AnswerOutcome outcome;
        try
        {
            outcome = await Streamer.StreamAsync(prompt, answer, generation.Token);
        }
        finally
        {
            _generation = null;
        }

        if (outcome.State == TurnState.Failed)
        {
            _error = outcome.Error;
            if (!outcome.ReceivedText)
            {
                // Nothing came back: undo the turn so the conversation reads as before, and
                // give the typed message back.
                conversation.Turns.Remove(answer);
                if (question is not null)
                {
                    conversation.Turns.Remove(question);
                }
                if (previousAnswer is not null)
                {
                    conversation.Turns.Add(previousAnswer);
                }
                if (draft is not null)
                {
                    _composer?.Restore(draft);
                }
            }
        }

        if (!_circuit.IsCancellationRequested)
        {
            if (conversation.Turns.Count > 0)
            {
                await SaveAsync(conversation);
            }
            StateHasChanged();
            if (_composer is not null)
            {
                await _composer.FocusAsync();
            }
        }
    }

    private void Stop() => _generation?.Cancel();

    private static List<PromptMessage> PromptMessages(Conversation conversation)
    {
        var messages = new List<PromptMessage>(conversation.Turns.Count + 1);
        if (!string.IsNullOrWhiteSpace(conversation.SystemPrompt))
        {
            messages.Add(new PromptMessage(ChatRoles.System, conversation.SystemPrompt));
        }
        foreach (var turn in conversation.Turns)
        {
            var content = turn.PromptText;
            if (turn.IsUser || content.Length > 0)
            {
                messages.Add(new PromptMessage(turn.Role, content));
            }
        }
        return messages;
    }

    private async Task NewChatAsync()
    {
        _sidebarOpen = false;
        if (_generation is null)
        {
            _error = null;
            if (_active.Turns.Count > 0)
            {
                _active = NewConversation();
            }
        }
        if (_composer is not null)
        {
            await _composer.FocusAsync();
        }
    }

    private async Task SelectAsync(string id)
    {
        _sidebarOpen = false;
        if (_generation is not null || id == _active.Id)
        {
            return;
        }
        if (await Store.LoadAsync(id, _circuit.Token) is { } conversation)
        {
            _active = conversation;
            _error = null;
        }
        else
        {
            // Removed in another tab: drop it from the list.
            _index.RemoveAll(c => c.Id == id);
            await Store.SaveIndexAsync(_index, _circuit.Token);
        }
    }

    private async Task RenameAsync((string Id, string Title) rename)
    {
        if (rename.Id == _active.Id)
        {
            _active.Title = rename.Title;
            if (_active.Turns.Count > 0)
            {
                await SaveAsync(_active, touch: false);
            }
            return;
        }
        if (await Store.LoadAsync(rename.Id, _circuit.Token) is { } other)
        {
            other.Title = rename.Title;
            await SaveAsync(other, touch: false);
        }
    }

    private async Task DeleteAsync(string id)
    {
        if (_generation is not null && id == _active.Id)
        {
            return;
        }
        _index.RemoveAll(c => c.Id == id);
        await Store.DeleteAsync(id, _index, _circuit.Token);
        if (id == _active.Id)
        {
            _active = _index.Count > 0 && await Store.LoadAsync(_index[0].Id, _circuit.Token) is { } next ? next : NewConversation();
        }
    }

    private async Task SettingsChangedAsync(ChatSettings settings)
    {
        _settings = settings;
        await Store.SaveSettingsAsync(settings, _circuit.Token);
    }

    private async Task SystemPromptChangedAsync(string systemPrompt)
    {
        _active.SystemPrompt = systemPrompt;
        if (_active.Turns.Count > 0)
        {
            await SaveAsync(_active, touch: false);
        }
    }

    private async Task SaveAsync(Conversation conversation, bool touch = true)
    {
        if (touch)
        {
            conversation.UpdatedAt = Time.GetUtcNow();
        }
        var existing = _index.FindIndex(c => c.Id == conversation.Id);
        if (existing >= 0)
        {
            _index.RemoveAt(existing);
        }
        // Most recently used first; a rename keeps the place.
        _index.Insert(touch || existing < 0 ? 0 : existing, conversation.Summary);
        await Store.SaveAsync(conversation, _index, _circuit.Token);
    }

    private Conversation NewConversation() => new() { Id = NewId(), UpdatedAt = Time.GetUtcNow() };

    private string NewId() => Guid.CreateVersion7(Time.GetUtcNow()).ToString("N");

    private static string TitleFrom(string text)
    {
        var line = text.AsSpan().Trim();
        var end = line.IndexOfAny('\r', '\n');
        if (end >= 0)
        {
            line = line[..end];
        }
        return line.Length <= TitleLength ? line.ToString() : string.Concat(line[..(TitleLength - 1)].TrimEnd(), "…");
    }

    public void Dispose()
    {
        _circuit.Cancel();
        _circuit.Dispose();
    }
}
