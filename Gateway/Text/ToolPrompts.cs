using System.Text;
using System.Text.Json;
using Gateway.Structured;

namespace Gateway.Text;

/// <summary>
/// Puts tools into a conversation the way the model's tool-call format expects (the same format
/// its parser reads back, <see cref="ToolCallParsers"/>): the tool signatures and how to call them
/// go into the system message; an assistant message's <c>tool_calls</c> are written in the format;
/// a <c>tool</c> message becomes the format's tool result, carrying its <c>tool_call_id</c>. The
/// chat template then renders the turns (role <c>tool</c> in its own way).
/// </summary>
public static class ToolPrompts
{
    public static IReadOnlyList<ChatTurn> Prepare(IReadOnlyList<ChatTurn> messages, ToolCalling? tools, string parser)
    {
        var hasToolTurns = false;
        foreach (var message in messages)
        {
            hasToolTurns |= message.Role == "tool" || message.ToolCalls is { Count: > 0 };
        }
        var showTools = tools is { Tools.Count: > 0, Mode: not ToolChoiceMode.None };
        if (!showTools && !hasToolTurns)
        {
            return messages;
        }
        parser = parser.ToLowerInvariant();
        var turns = new List<ChatTurn>(messages.Count + 1);
        var instructions = showTools ? Instructions(tools!.Tools, parser) : null;
        foreach (var message in messages)
        {
            if (instructions is not null && message.Role is "system" or "developer")
            {
                turns.Add(message with { Content = message.Content + "\n\n" + instructions });
                instructions = null;
                continue;
            }
            turns.Add(message.Role switch
            {
                "assistant" when message.ToolCalls is { Count: > 0 } calls => message with { Content = AssistantCalls(message.Content, calls, parser) },
                "tool" => message with { Content = ToolResult(message.ToolCallId ?? "", message.Content, parser) },
                _ => message,
            });
        }
        if (instructions is not null)
        {
            turns.Insert(0, new ChatTurn("system", instructions));
        }
        return turns;
    }

    private static string Instructions(IReadOnlyList<ToolDefinition> tools, string parser)
    {
        var builder = new StringBuilder();
        switch (parser)
        {
            case ToolCallParsers.Mistral:
                builder.Append("[AVAILABLE_TOOLS][");
                for (var i = 0; i < tools.Count; i++)
                {
                    builder.Append(i > 0 ? ", " : "").Append(Signature(tools[i]));
                }
                builder.Append("][/AVAILABLE_TOOLS]\n")
                    .Append("To call tools, answer with [TOOL_CALLS] followed by a JSON array of {\"name\": <function name>, \"arguments\": <arguments object>} objects.");
                break;
            case ToolCallParsers.Llama3Json:
                builder.Append("You have access to the following functions:\n\n");
                foreach (var tool in tools)
                {
                    builder.Append(Signature(tool)).Append("\n\n");
                }
                builder.Append("To call a function, respond only with a JSON object of the form {\"name\": <function name>, \"parameters\": <dictionary of argument names and values>}. Do not use variables.");
                break;
            default:
                builder.Append("# Tools\n\nYou may call one or more functions. Their signatures are listed within <tools></tools> XML tags:\n<tools>\n");
                foreach (var tool in tools)
                {
                    builder.Append(Signature(tool)).Append('\n');
                }
                builder.Append("</tools>\n\nFor each function call, return a JSON object with the function name and arguments within <tool_call></tool_call> XML tags:\n")
                    .Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
                break;
        }
        return builder.ToString();
    }

    /// <summary>The OpenAI tool object, compact: <c>{"type":"function","function":{"name","description","parameters"}}</c>.</summary>
    private static string Signature(ToolDefinition tool)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", tool.Name);
            if (tool.Description is not null)
            {
                json.WriteString("description", tool.Description);
            }
            json.WritePropertyName("parameters");
            json.WriteRawValue(tool.Parameters);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static string AssistantCalls(string content, IReadOnlyList<ChatToolCall> calls, string parser)
    {
        var builder = new StringBuilder(content);
        switch (parser)
        {
            case ToolCallParsers.Mistral:
                builder.Append("[TOOL_CALLS][");
                for (var i = 0; i < calls.Count; i++)
                {
                    builder.Append(i > 0 ? ", " : "").Append("{\"name\": ").Append(JsonSerializer.Serialize(calls[i].Name, TextJsonContext.Default.String))
                        .Append(", \"arguments\": ").Append(calls[i].Arguments).Append(", \"id\": ").Append(JsonSerializer.Serialize(calls[i].Id, TextJsonContext.Default.String)).Append('}');
                }
                builder.Append(']');
                break;
            case ToolCallParsers.Llama3Json:
                for (var i = 0; i < calls.Count; i++)
                {
                    builder.Append(i > 0 ? "; " : "").Append("{\"name\": ").Append(JsonSerializer.Serialize(calls[i].Name, TextJsonContext.Default.String))
                        .Append(", \"parameters\": ").Append(calls[i].Arguments).Append('}');
                }
                break;
            default:
                foreach (var call in calls)
                {
                    if (builder.Length > 0)
                    {
                        builder.Append('\n');
                    }
                    builder.Append("<tool_call>\n{\"name\": ").Append(JsonSerializer.Serialize(call.Name, TextJsonContext.Default.String))
                        .Append(", \"arguments\": ").Append(call.Arguments).Append("}\n</tool_call>");
                }
                break;
        }
        return builder.ToString();
    }

    private static string ToolResult(string toolCallId, string content, string parser)
    {
        var id = JsonSerializer.Serialize(toolCallId, TextJsonContext.Default.String);
        var text = JsonSerializer.Serialize(content, TextJsonContext.Default.String);
        return parser switch
        {
            ToolCallParsers.Mistral => $"[TOOL_RESULTS]{{\"call_id\": {id}, \"content\": {text}}}[/TOOL_RESULTS]",
            ToolCallParsers.Llama3Json => $"{{\"tool_call_id\": {id}, \"output\": {text}}}",
            _ => $"<tool_response>\n{{\"tool_call_id\": {id}, \"content\": {text}}}\n</tool_response>",
        };
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class TextJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
