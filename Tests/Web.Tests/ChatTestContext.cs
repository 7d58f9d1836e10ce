using Bunit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Web.Chat;
using Web.Markdown;

namespace Web.Tests;

/// <summary>A bUnit context with the services the chat components inject.</summary>
public abstract class ChatTestContext : BunitContext, IAsyncLifetime
{
    protected FakeTimeProvider Time { get; } = new(DateTimeOffset.Parse("2025-01-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    protected ChatTestContext()
    {
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddSingleton<IMarkdownRenderer, MarkdownRenderer>();
        Services.AddSingleton<TimeProvider>(Time);
        Services.AddScoped<ChatInterop>();
    }

    Task IAsyncLifetime.InitializeAsync() => Task.CompletedTask;

    // Scoped services (ChatInterop) are only IAsyncDisposable; xunit 2 must dispose asynchronously.
    async Task IAsyncLifetime.DisposeAsync() => await DisposeAsync();
}
