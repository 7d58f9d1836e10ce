using System.Text;
using Gateway.Structured;

namespace Gateway.Text;

/// <summary>One chat message after the face has flattened it to text.</summary>
public sealed record ChatTurn(string Role, string Content)
{
    /// <summary>An assistant message's tool calls.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>A <c>tool</c> message's <c>tool_call_id</c>: the call it answers.</summary>
    public string? ToolCallId { get; init; }
}

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

    public const string ChatMl = "chatml";

    public const string Zephyr = "zephyr";

    public const string Llama2 = "llama2";

    public static IReadOnlyList<string> Names { get; } = [GptPlain, ChatMl, Zephyr, Llama2];

    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    public static IChatTemplate Get(string name) => name.ToLowerInvariant() switch
    {
        GptPlain => GptPlainChatTemplate.Instance,
        ChatMl => ChatMlChatTemplate.Instance,
        Zephyr => ZephyrChatTemplate.Instance,
        Llama2 => Llama2ChatTemplate.Instance,
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
                case "tool":
                    prompt.Append("Tool: ").Append(message.Content).Append('\n');
                    break;
            }
        }
        prompt.Append("Assistant:");
        return prompt.ToString();
    }
}

/// <summary>
/// <c>chatml</c> (Qwen, OpenHermes, many fine-tunes): every message as
/// <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> (<c>developer</c> is written as
/// <c>system</c>; a tool result as role <c>tool</c>, as Hermes-2-Pro's template does), then <c>&lt;|im_start|&gt;assistant\n</c> for the model to continue. Stop string:
/// <c>&lt;|im_end|&gt;</c>.
/// </summary>
internal sealed class ChatMlChatTemplate : IChatTemplate
{
    public static readonly ChatMlChatTemplate Instance = new();

    public string Name => ChatTemplates.ChatMl;

    public IReadOnlyList<string> StopStrings { get; } = ["<|im_end|>"];

    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        var prompt = new StringBuilder();
        foreach (var message in messages)
        {
            var role = message.Role == "developer" ? "system" : message.Role;
            prompt.Append("<|im_start|>").Append(role).Append('\n').Append(message.Content).Append("<|im_end|>\n");
        }
        prompt.Append("<|im_start|>assistant\n");
        return prompt.ToString();
    }
}

/// <summary>
/// <c>zephyr</c> (Zephyr, TinyLlama-1.1B-Chat): every message as <c>&lt;|{role}|&gt;\n{content}&lt;/s&gt;\n</c>
/// (<c>developer</c> is written as <c>system</c>), then <c>&lt;|assistant|&gt;\n</c>. Stop strings:
/// <c>&lt;/s&gt;</c> and <c>&lt;|user|&gt;</c>.
/// </summary>
internal sealed class ZephyrChatTemplate : IChatTemplate
{
    public static readonly ZephyrChatTemplate Instance = new();

    public string Name => ChatTemplates.Zephyr;

    public IReadOnlyList<string> StopStrings { get; } = ["</s>", "<|user|>"];

    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        var prompt = new StringBuilder();
        foreach (var message in messages)
        {
            var role = message.Role switch { "developer" => "system", "tool" => "user", _ => message.Role };
            prompt.Append("<|").Append(role).Append("|>\n").Append(message.Content).Append("</s>\n");
        }
        prompt.Append("<|assistant|>\n");
        return prompt.ToString();
    }
}

/// <summary>
/// <c>llama2</c> (Llama-2-chat): <c>[INST] &lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user} [/INST]</c>,
/// each answer as <c> {assistant} &lt;/s&gt;&lt;s&gt;</c> before the next <c>[INST] {user} [/INST]</c>.
/// System and developer messages (joined by blank lines) go into the first user turn. The leading
/// <c>&lt;s&gt;</c> of Meta's format is left out: the backend's tokenizer adds the BOS token itself.
/// Stop strings: <c>&lt;/s&gt;</c> and <c>[INST]</c>.
/// </summary>
internal sealed class Llama2ChatTemplate : IChatTemplate
{
    public static readonly Llama2ChatTemplate Instance = new();

    public string Name => ChatTemplates.Llama2;

    public IReadOnlyList<string> StopStrings { get; } = ["</s>", "[INST]"];

    public string Render(IReadOnlyList<ChatTurn> messages)
    {
        string? system = null;
        foreach (var message in messages)
        {
            if (message.Role is "system" or "developer")
            {
                system = system is null ? message.Content : system + "\n\n" + message.Content;
            }
        }
        var prompt = new StringBuilder();
        var open = false;
        foreach (var message in messages)
        {
            switch (message.Role)
            {
                case "user" or "tool":
                    if (open)
                    {
                        // Two user turns in a row: close the first with an empty answer.
                        prompt.Append(" </s><s>");
                    }
                    prompt.Append("[INST] ");
                    if (system is not null)
                    {
                        prompt.Append("<<SYS>>\n").Append(system).Append("\n<</SYS>>\n\n");
                        system = null;
                    }
                    prompt.Append(message.Content).Append(" [/INST]");
                    open = true;
                    break;
                case "assistant":
                    prompt.Append(' ').Append(message.Content).Append(" </s><s>");
                    open = false;
                    break;
            }
        }
        if (!open)
        {
            // No user turn waits for an answer (only a system prompt, or the last message was the assistant's).
            prompt.Append("[INST] ");
            if (system is not null)
            {
                prompt.Append("<<SYS>>\n").Append(system).Append("\n<</SYS>>\n\n");
            }
            prompt.Append(" [/INST]");
        }
        return prompt.ToString();
    }
}
