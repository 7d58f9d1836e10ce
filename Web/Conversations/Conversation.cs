using Web.Chat;

namespace Web.Conversations;

/// <summary>One chat: its messages and its optional system prompt.</summary>
public sealed class Conversation
{
    public string Id { get; init; } = "";

    public string Title { get; set; } = "";

    public string SystemPrompt { get; set; } = "";

    public DateTimeOffset UpdatedAt { get; set; }

    public List<ChatTurn> Turns { get; init; } = [];

    public ConversationSummary Summary => new(Id, Title, UpdatedAt);
}

/// <summary>What the sidebar lists.</summary>
public sealed record ConversationSummary(string Id, string Title, DateTimeOffset UpdatedAt);

/// <summary>Generation settings, kept across reloads.</summary>
public sealed record ChatSettings
{
    public const float DefaultTemperature = 0.7f;
    public const int DefaultMaxTokens = 256;

    public string Model { get; init; } = "";

    public float Temperature { get; init; } = DefaultTemperature;

    public int MaxTokens { get; init; } = DefaultMaxTokens;

    // Structured output and tools. The texts are kept as typed, valid or not; StructuredOutput.From
    // checks them before use. These are `set`, not `init`: for a missing init-only property the
    // source-generated reader passes the type's default and drops the initializer, and settings
    // saved before these fields existed must read as the defaults below (strict on, name "answer").

    public ResponseFormatKind ResponseFormat { get; set; } = ResponseFormatKind.Text;

    public string SchemaName { get; set; } = DefaultSchemaName;

    /// <summary>The JSON schema text for <see cref="ResponseFormatKind.JsonSchema"/>.</summary>
    public string Schema { get; set; } = "";

    public bool SchemaStrict { get; set; } = true;

    /// <summary>A JSON array of OpenAI function tools; empty for none.</summary>
    public string Tools { get; set; } = "";

    public ToolChoiceKind ToolChoice { get; set; } = ToolChoiceKind.Auto;

    /// <summary>The function a <see cref="ToolChoiceKind.Named"/> choice forces.</summary>
    public string ToolChoiceName { get; set; } = "";

    public const string DefaultSchemaName = "answer";
}
