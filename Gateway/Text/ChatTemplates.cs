using System.Text;

namespace Gateway.Text;

/// <summary>One chat message after the face has flattened it to text.</summary>
public sealed record ChatTurn(string Role, string Content);

/// <summary>Turns chat messages into one prompt for a plain text-completion model.</summary>
public interface IChatTemplate
{
    string Name { get; }

    string Render(IReadOnlyList<ChatTurn> messages);

    /// <summary>Stop strings the template always adds (the start of the next user turn).</summary>
    IReadOnlyList<string> StopStrings { get; }
}

public static class ChatTemplates
{
    public const string GptPlain = "gpt-plain";

    public static IReadOnlyList<string> Names { get; } = [GptPlain];

    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    public static IChatTemplate Get(string name) => name.ToLowerInvariant() switch
    {
        GptPlain => GptPlainChatTemplate.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown chat template"),
    };
}

/// <summary>
/// <c>gpt-plain</c>, for base GPT models (GPT-J, GPT-2) that were never chat-tuned:
/// system and developer messages first, each followed by a blank line; then one line per turn,
/// <c>User: …</c> / <c>Assistant: …</c>; the prompt ends with <c>Assistant:</c> for the model to
/// continue. The stop string <c>"\nUser:"</c> is always added so the model does not write the
/// user's next turn.
/// </summary>
internal sealed class GptPlainChatTemplate : IChatTemplate
{
    public static readonly GptPlainChatTemplate Instance = new();

    public string Name => ChatTemplates.GptPlain;

    public IReadOnlyList<string> StopStrings { get; } = ["\nUser:"];

    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        var prompt = new StringBuilder();
        foreach (var message in messages)
        {
            if (message.Role is "system" or "developer")
            {
                prompt.Append(message.Content).Append("\n\n");
            }
        }
        foreach (var message in messages)
        {
            switch (message.Role)
            {
                case "user":
                    prompt.Append("User: ").Append(message.Content).Append('\n');
                    break;
                case "assistant":
                    prompt.Append("Assistant: ").Append(message.Content).Append('\n');
                    break;
            }
        }
        prompt.Append("Assistant:");
        return prompt.ToString();
    }
}
