using Microsoft.AspNetCore.Components;
using Microsoft.JSInterop;

namespace Web.Chat;

/// <summary>The few things only the browser can do: keyboard handling, clipboard, scrolling.</summary>
internal sealed class ChatInterop(IJSRuntime js) : IAsyncDisposable
{
    private Task<IJSObjectReference>? _module;

    private Task<IJSObjectReference> Module => _module ??= js.InvokeAsync<IJSObjectReference>("import", "./chat.js").AsTask();

    /// <summary>Enter submits the textarea's form; Shift+Enter inserts a newline.</summary>
    public async Task AttachComposerAsync(ElementReference textarea) =>
        await (await Module).InvokeVoidAsync("attachComposer", textarea);

    /// <summary>Keeps the transcript scrolled to the newest text unless the reader scrolled up.</summary>
    public async Task FollowTranscriptAsync(ElementReference scroller) =>
        await (await Module).InvokeVoidAsync("followTranscript", scroller);

    public async Task<bool> CopyAsync(string text) =>
        await (await Module).InvokeAsync<bool>("copyText", text);

    public async ValueTask DisposeAsync()
    {
        if (_module is { IsCompletedSuccessfully: true } module && module.Result is { } reference)
        {
            try
            {
                await reference.DisposeAsync();
            }
            catch (JSDisconnectedException)
            {
                // The browser is gone; nothing to release there.
            }
        }
    }
}
