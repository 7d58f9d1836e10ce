namespace Gateway.Structured;

/// <summary>What the backend must constrain its output to.</summary>
public enum GuideKind
{
    /// <summary>Any JSON object (<c>response_format: json_object</c>).</summary>
    JsonObject,

    /// <summary>An instance of a JSON schema (<c>json_schema</c>, or a tool call's arguments).</summary>
    JsonSchema,

    /// <summary>Free text until a tool-call marker, then a call held to its tool's schema (<see cref="ToolCallTags"/>); <see cref="OutputGuide.Schema"/> is the structural tag.</summary>
    StructuralTag,
}

/// <summary>A constraint on the generated text: a JSON object, an instance of <see cref="Schema"/> (JSON text), or a structural tag (<see cref="Schema"/> holds it).</summary>
public sealed record OutputGuide(GuideKind Kind, string? Schema)
{
    public static OutputGuide AnyJsonObject { get; } = new(GuideKind.JsonObject, null);
}

/// <summary>One <c>tools[]</c> entry of type function; <see cref="Parameters"/> is the schema as JSON text.</summary>
public sealed record ToolDefinition(string Name, string? Description, string Parameters, bool Strict);

public enum ToolChoiceMode
{
    /// <summary>Never call a tool (the tools are still shown to the model).</summary>
    None,

    /// <summary>The model decides: free text, parsed by the model's tool-call parser.</summary>
    Auto,

    /// <summary>At least one call to some tool: constrained.</summary>
    Required,

    /// <summary>Exactly one call to <see cref="ToolCalling.Function"/>: constrained to its parameters.</summary>
    Named,
}

/// <summary>The request's tools and how they may be called.</summary>
public sealed record ToolCalling(IReadOnlyList<ToolDefinition> Tools, ToolChoiceMode Mode, string? Function, bool ParallelCalls)
{
    public ToolDefinition? Named => Function is null ? null : Tools.FirstOrDefault(t => t.Name == Function);
}

/// <summary>A tool call in a conversation (an assistant message's <c>tool_calls[]</c>) or in an answer.</summary>
public sealed record ChatToolCall(string Id, string Name, string Arguments);
