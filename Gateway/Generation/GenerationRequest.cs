using Gateway.Structured;
using Gateway.Text;
using Gateway.Triton.Contracts;

namespace Gateway.Generation;

/// <summary>One request as both faces hand it to the pipeline, already validated for shape.</summary>
public sealed record GenerationRequest
{
    public required string Model { get; init; }

    /// <summary>Chat messages (chat endpoints) or null for a plain prompt.</summary>
    public IReadOnlyList<ChatTurn>? Messages { get; init; }

    /// <summary>The prompt of a text completion (when <see cref="Messages"/> is null).</summary>
    public string? Prompt { get; init; }

    public int? MaxTokens { get; init; }

    /// <summary>How the client named the max-tokens parameter, for error messages.</summary>
    public string MaxTokensParam { get; init; } = "max_tokens";

    public SamplingParameters Sampling { get; init; } = new();

    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>0 = default; 1 is the highest (Triton's convention).</summary>
    public int Priority { get; init; }

    /// <summary>A sub-tenant for fair queueing (the <c>Gateway:Routing:TenantHeader</c> header), within the API key's tenant.</summary>
    public string? SubTenant { get; init; }

    /// <summary>The constraint on the output (response_format, or a named / required tool choice); null = free text.</summary>
    public OutputGuide? Guide { get; init; }

    /// <summary>The parameter the constraint came from, for errors (<c>response_format</c> or <c>tool_choice</c>).</summary>
    public string? GuideParam { get; init; }

    /// <summary>The request's tools and tool choice; null when it has none.</summary>
    public ToolCalling? Tools { get; init; }

    public bool IsChat => Messages is not null;
}

public readonly record struct TokenUsage(int PromptTokens, int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}
