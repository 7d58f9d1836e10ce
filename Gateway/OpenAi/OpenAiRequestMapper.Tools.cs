using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Structured;
using Gateway.Text;
using static Gateway.Generation.RequestValidation;

namespace Gateway.OpenAi;

/// <summary>
/// <c>tools</c>, <c>tool_choice</c>, <c>parallel_tool_calls</c>, <c>response_format</c> and the
/// tool turns of a conversation, checked as OpenAI checks them (the same parameter names and, where
/// known, the same messages).
/// </summary>
internal static partial class OpenAiRequestMapper
{
    /// <summary>OpenAI's limit on <c>tools</c>.</summary>
    public const int MaxTools = 128;

    private const string EmptyParameters = """{"type":"object","properties":{}}""";

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex FunctionName();

    private static ChatTurn MapTurn(ChatMessage message, string param, List<ChatTurn> previous)
    {
        IReadOnlyList<ChatToolCall>? calls = null;
        if (message.ToolCalls is { ValueKind: not JsonValueKind.Null } toolCalls)
        {
            if (message.Role != "assistant")
            {
                throw Invalid($"{param}.tool_calls", $"Invalid parameter: only messages with role 'assistant' can have 'tool_calls' (got role '{message.Role}').", "invalid_parameter");
            }
            calls = MapAssistantCalls(toolCalls, $"{param}.tool_calls");
        }
        string? toolCallId = null;
        if (message.Role == "tool")
        {
            if (message.ToolCallId is not { ValueKind: JsonValueKind.String } id)
            {
                throw message.ToolCallId is null or { ValueKind: JsonValueKind.Null }
                    ? Invalid($"{param}.tool_call_id", $"Missing required parameter: '{param}.tool_call_id'.", "missing_required_parameter")
                    : Invalid($"{param}.tool_call_id", $"Invalid type for '{param}.tool_call_id': expected a string.", "invalid_type");
            }
            toolCallId = id.GetString()!;
            var answered = false;
            for (var i = previous.Count - 1; i >= 0 && !answered; i--)
            {
                if (previous[i].Role == "assistant")
                {
                    answered = previous[i].ToolCalls?.Any(c => c.Id == toolCallId) == true;
                    break;
                }
                if (previous[i].Role != "tool")
                {
                    break;
                }
            }
            if (!answered)
            {
                throw Invalid($"{param}.role",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (no call with id '" + toolCallId + "').",
                    "invalid_parameter");
            }
        }
        var content = message.Role == "assistant" && calls is { Count: > 0 } && message.Content is null or { ValueKind: JsonValueKind.Null }
            ? ""
            : FlattenContent(message.Content, message.Role!, param);
        return new ChatTurn(message.Role!, content) { ToolCalls = calls, ToolCallId = toolCallId };
    }

    private static List<ChatToolCall> MapAssistantCalls(JsonElement toolCalls, string param)
    {
        if (toolCalls.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(param, $"Invalid type for '{param}': expected an array of tool calls.", "invalid_type");
        }
        var calls = new List<ChatToolCall>();
        var i = 0;
        foreach (var call in toolCalls.EnumerateArray())
        {
            var at = $"{param}[{i++}]";
            if (call.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(at, $"Invalid type for '{at}': expected an object.", "invalid_type");
            }
            var id = RequiredString(call, "id", at);
            if (call.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.GetString() == "function"))
            {
                throw Invalid($"{at}.type", $"Invalid value: {type.GetRawText()}. Supported values are: 'function'.");
            }
            if (!call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"{at}.function", $"Missing required parameter: '{at}.function'.", "missing_required_parameter");
            }
            var name = RequiredString(function, "name", $"{at}.function");
            var arguments = RequiredString(function, "arguments", $"{at}.function");
            calls.Add(new ChatToolCall(id, name, arguments));
        }
        return calls;
    }

    private static string RequiredString(JsonElement element, string key, string at)
    {
        if (!element.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw Invalid($"{at}.{key}", $"Missing required parameter: '{at}.{key}'.", "missing_required_parameter");
        }
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw Invalid($"{at}.{key}", $"Invalid type for '{at}.{key}': expected a string, but got {Kind(value)} instead.", "invalid_type");
    }

    private static ToolCalling? MapTools(JsonElement? toolsElement, JsonElement? toolChoice, bool? parallel)
    {
        var hasChoice = toolChoice is { ValueKind: not JsonValueKind.Null };
        if (toolsElement is null or { ValueKind: JsonValueKind.Null })
        {
            if (hasChoice)
            {
                throw Invalid("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
            }
            if (parallel is not null)
            {
                throw Invalid("parallel_tool_calls", "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.");
            }
            return null;
        }
        var toolsValue = toolsElement.Value;
        if (toolsValue.ValueKind != JsonValueKind.Array)
        {
            throw Invalid("tools", $"Invalid type for 'tools': expected an array of objects, but got {Kind(toolsValue)} instead.", "invalid_type");
        }
        var count = toolsValue.GetArrayLength();
        if (count == 0)
        {
            throw Invalid("tools", "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.");
        }
        if (count > MaxTools)
        {
            throw Invalid("tools", $"Invalid 'tools': array too long. Expected an array with maximum length {MaxTools}, but got an array with length {count} instead.");
        }
        var tools = new List<ToolDefinition>(count);
        var index = 0;
        foreach (var tool in toolsValue.EnumerateArray())
        {
            var at = $"tools[{index++}]";
            if (tool.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(at, $"Invalid type for '{at}': expected an object, but got {Kind(tool)} instead.", "invalid_type");
            }
            var type = RequiredString(tool, "type", at);
            if (type == "custom")
            {
                throw Unsupported($"{at}.type", "Custom tools are not supported by this gateway: use tools of type 'function'.");
            }
            if (type != "function")
            {
                throw Invalid($"{at}.type", $"Invalid value: '{type}'. Supported values are: 'function' and 'custom'.");
            }
            if (!tool.TryGetProperty("function", out var function) || function.ValueKind == JsonValueKind.Null)
            {
                throw Invalid($"{at}.function", $"Missing required parameter: '{at}.function'.", "missing_required_parameter");
            }
            if (function.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"{at}.function", $"Invalid type for '{at}.function': expected an object, but got {Kind(function)} instead.", "invalid_type");
            }
            var name = RequiredString(function, "name", $"{at}.function");
            if (!FunctionName().IsMatch(name))
            {
                throw Invalid($"{at}.function.name", $"Invalid '{at}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' (at most 64 characters).");
            }
            if (tools.Any(t => t.Name == name))
            {
                throw Invalid($"{at}.function.name", $"Invalid '{at}.function.name': duplicate function name '{name}' in 'tools'.");
            }
            string? description = null;
            if (function.TryGetProperty("description", out var d) && d.ValueKind != JsonValueKind.Null)
            {
                description = d.ValueKind == JsonValueKind.String ? d.GetString() : throw Invalid($"{at}.function.description", $"Invalid type for '{at}.function.description': expected a string.", "invalid_type");
            }
            var strict = false;
            if (function.TryGetProperty("strict", out var s) && s.ValueKind != JsonValueKind.Null)
            {
                strict = s.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw Invalid($"{at}.function.strict", $"Invalid type for '{at}.function.strict': expected a boolean.", "invalid_type"),
                };
            }
            var parameters = EmptyParameters;
            if (function.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null)
            {
                parameters = strict
                    ? JsonSchemaRules.Check(p, strict: true, $"{at}.function.parameters", $"function '{name}'")
                    : p.ValueKind == JsonValueKind.Object ? p.GetRawText() : throw Invalid($"{at}.function.parameters", $"Invalid type for '{at}.function.parameters': expected an object.", "invalid_type");
            }
            else if (strict)
            {
                parameters = """{"type":"object","properties":{},"required":[],"additionalProperties":false}""";
            }
            tools.Add(new ToolDefinition(name, description, parameters, strict));
        }

        var mode = ToolChoiceMode.Auto;
        string? named = null;
        if (hasChoice)
        {
            var choice = toolChoice!.Value;
            if (choice.ValueKind == JsonValueKind.String)
            {
                mode = choice.GetString() switch
                {
                    "none" => ToolChoiceMode.None,
                    "auto" => ToolChoiceMode.Auto,
                    "required" => ToolChoiceMode.Required,
                    var other => throw Invalid("tool_choice", $"Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
                };
            }
            else if (choice.ValueKind == JsonValueKind.Object)
            {
                var type = RequiredString(choice, "type", "tool_choice");
                if (type != "function")
                {
                    throw type is "allowed_tools" or "custom"
                        ? Unsupported("tool_choice.type", $"tool_choice of type '{type}' is not supported by this gateway: name a function, or use 'auto' / 'required'.")
                        : Invalid("tool_choice.type", $"Invalid value: '{type}'. Supported values are: 'function', 'allowed_tools' and 'custom'.");
                }
                if (!choice.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
                {
                    throw Invalid("tool_choice.function", "Missing required parameter: 'tool_choice.function'.", "missing_required_parameter");
                }
                named = RequiredString(function, "name", "tool_choice.function");
                if (!tools.Any(t => t.Name == named))
                {
                    throw Invalid("tool_choice", $"Invalid value for 'tool_choice': function '{named}' is not one of the functions in 'tools'.");
                }
                mode = ToolChoiceMode.Named;
            }
            else
            {
                throw Invalid("tool_choice", $"Invalid type for 'tool_choice': expected one of 'none', 'auto', 'required' or an object naming a function, but got {Kind(choice)} instead.", "invalid_type");
            }
        }
        // A named or required choice is constrained whether the tool is strict or not: its schema must be one the decoder can follow.
        for (var i = 0; i < tools.Count; i++)
        {
            if (!tools[i].Strict && (mode == ToolChoiceMode.Required || tools[i].Name == named))
            {
                using var document = JsonDocument.Parse(tools[i].Parameters);
                JsonSchemaRules.Check(document.RootElement, strict: false, $"tools[{i}].function.parameters", $"function '{tools[i].Name}'");
            }
        }
        return new ToolCalling(tools, mode, named, parallel ?? true);
    }

    private static OutputGuide? ToolGuide(ToolCalling? tools) => tools?.Mode switch
    {
        ToolChoiceMode.Named => new OutputGuide(GuideKind.JsonSchema, tools.Named!.Parameters),
        ToolChoiceMode.Required => new OutputGuide(GuideKind.JsonSchema, JsonSchemaRules.RequiredToolsSchema(tools.Tools, tools.ParallelCalls)),
        _ => null,
    };

    private static OutputGuide? MapResponseFormat(JsonElement? formatElement, List<ChatTurn> turns)
    {
        if (formatElement is null or { ValueKind: JsonValueKind.Null })
        {
            return null;
        }
        var format = formatElement.Value;
        if (format.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("response_format", $"Invalid type for 'response_format': expected an object, but got {Kind(format)} instead.", "invalid_type");
        }
        var type = RequiredString(format, "type", "response_format");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                // OpenAI's rule: the conversation must ask for JSON, or the model may write blanks until max_tokens.
                if (!turns.Any(t => t.Content.Contains("json", StringComparison.OrdinalIgnoreCase)))
                {
                    throw Invalid("messages", "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.");
                }
                return OutputGuide.AnyJsonObject;
            case "json_schema":
                if (!format.TryGetProperty("json_schema", out var jsonSchema) || jsonSchema.ValueKind == JsonValueKind.Null)
                {
                    throw Invalid("response_format.json_schema", "Missing required parameter: 'response_format.json_schema'.", "missing_required_parameter");
                }
                if (jsonSchema.ValueKind != JsonValueKind.Object)
                {
                    throw Invalid("response_format.json_schema", $"Invalid type for 'response_format.json_schema': expected an object, but got {Kind(jsonSchema)} instead.", "invalid_type");
                }
                var name = RequiredString(jsonSchema, "name", "response_format.json_schema");
                if (!FunctionName().IsMatch(name))
                {
                    throw Invalid("response_format.json_schema.name", "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' (at most 64 characters).");
                }
                var strict = jsonSchema.TryGetProperty("strict", out var s) && s.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False or JsonValueKind.Null => false,
                    _ => throw Invalid("response_format.json_schema.strict", "Invalid type for 'response_format.json_schema.strict': expected a boolean.", "invalid_type"),
                };
                if (!jsonSchema.TryGetProperty("schema", out var schema) || schema.ValueKind == JsonValueKind.Null)
                {
                    return strict
                        ? throw Invalid("response_format.json_schema.schema", "Missing required parameter: 'response_format.json_schema.schema' (required with strict: true).", "missing_required_parameter")
                        : OutputGuide.AnyJsonObject;
                }
                return new OutputGuide(GuideKind.JsonSchema, JsonSchemaRules.Check(schema, strict, "response_format", $"response_format '{name}'"));
            default:
                throw Invalid("response_format.type", $"Invalid value: '{type}'. Supported values are: 'text', 'json_object', and 'json_schema'.");
        }
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "an object",
    };
}
