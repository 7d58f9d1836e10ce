using Microsoft.Extensions.Options;

namespace Gateway.OpenAi;

/// <summary>
/// SSE keep-alive (section <c>Gateway:Sse</c>): a stream that has sent nothing for
/// <see cref="KeepAliveAfter"/> gets an SSE comment (<c>: keep-alive</c>), repeated every
/// <see cref="KeepAliveInterval"/>, so idle proxy timeouts (GCLB, ALB, nginx) never cut a long
/// prompt's wait for its first token. OpenAI SDKs ignore comments.
/// </summary>
public sealed class SseOptions
{
    public const string SectionName = "Gateway:Sse";

    public TimeSpan KeepAliveAfter { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(10);
}

internal sealed class SseOptionsValidator : IValidateOptions<SseOptions>
{
    public ValidateOptionsResult Validate(string? name, SseOptions options)
    {
        var failures = new List<string>();
        if (options.KeepAliveAfter <= TimeSpan.Zero)
        {
            failures.Add($"Gateway:Sse:KeepAliveAfter must be positive (was {options.KeepAliveAfter}).");
        }
        if (options.KeepAliveInterval <= TimeSpan.Zero)
        {
            failures.Add($"Gateway:Sse:KeepAliveInterval must be positive (was {options.KeepAliveInterval}).");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
