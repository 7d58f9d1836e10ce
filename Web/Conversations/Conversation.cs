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
}
