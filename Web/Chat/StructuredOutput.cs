using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Web.Conversations;

namespace Web.Chat;

/// <summary>The <c>response_format</c> the chat asks for.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ResponseFormatKind>))]
public enum ResponseFormatKind
{
    Text,
    JsonObject,
    JsonSchema,
}

/// <summary>The <c>tool_choice</c>: the model decides, must call one, must not call, or must call the named function.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ToolChoiceKind>))]
public enum ToolChoiceKind
{
    Auto,
    Required,
    None,
    Named,
}

/// <summary>
/// Structured output and tools for one request, made only by <see cref="StructuredOutput.From"/>:
/// <see cref="Schema"/> is a JSON object and <see cref="Tools"/> a JSON array of function tools,
/// both as the user wrote them (the gateway checks them in depth and names what is wrong).
/// </summary>
public sealed partial record StructuredOutput
{
    /// <summary>OpenAI's rule for <c>json_schema.name</c> and function names.</summary>
    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex NamePattern();

    private StructuredOutput()
    {
    }

    public ResponseFormatKind Format { get; private init; }

    public string SchemaName { get; private init; } = "";

    /// <summary>The schema's JSON text (an object) for <see cref="ResponseFormatKind.JsonSchema"/>.</summary>
    public string? Schema { get; private init; }

    public bool Strict { get; private init; }

    /// <summary>The <c>tools</c> JSON text (a non-empty array), or null for none.</summary>
    public string? Tools { get; private init; }

    public ToolChoiceKind ToolChoice { get; private init; }

    /// <summary>The function a <see cref="ToolChoiceKind.Named"/> choice forces.</summary>
    public string? ToolName { get; private init; }

    /// <summary>Whether the answer is meant to be JSON (and is shown highlighted).</summary>
    public bool WantsJson => Format != ResponseFormatKind.Text;

    /// <summary>True when none of it is asked for: a plain chat request.</summary>
    public bool IsPlain => Format == ResponseFormatKind.Text && Tools is null;

    /// <summary>Checks the settings' response format and tools; an invalid part is reported and nothing is made.</summary>
    public static StructuredCheck From(ChatSettings settings)
    {
        // A stored entry may hold explicit nulls; they read as empty.
        settings = settings with
        {
            SchemaName = settings.SchemaName ?? "",
            Schema = settings.Schema ?? "",
            Tools = settings.Tools ?? "",
            ToolChoiceName = settings.ToolChoiceName ?? "",
        };
        string? schemaError = null;
        string? schema = null;
        if (settings.ResponseFormat == ResponseFormatKind.JsonSchema)
        {
            if (!NamePattern().IsMatch(settings.SchemaName))
            {
                schemaError = "The schema name must be 1 to 64 letters, digits, '_' or '-'.";
            }
            else
            {
                (schema, schemaError) = ParseSchema(settings.Schema);
            }
        }

        var (tools, names, toolsError) = ParseTools(settings.Tools);
        if (toolsError is null && tools is not null && settings.ToolChoice == ToolChoiceKind.Named && !names.Contains(settings.ToolChoiceName))
        {
            toolsError = string.IsNullOrWhiteSpace(settings.ToolChoiceName)
                ? "Name the function the model must call."
                : $"No tool is named '{settings.ToolChoiceName}'.";
        }

        if (schemaError is not null || toolsError is not null)
        {
            return new StructuredCheck(null, schemaError, toolsError);
        }
        return new StructuredCheck(new StructuredOutput
        {
            Format = settings.ResponseFormat,
            SchemaName = settings.SchemaName,
            Schema = schema,
            Strict = settings.SchemaStrict,
            Tools = tools,
            ToolChoice = tools is null ? ToolChoiceKind.Auto : settings.ToolChoice,
            ToolName = tools is not null && settings.ToolChoice == ToolChoiceKind.Named ? settings.ToolChoiceName : null,
        }, null, null);
    }

    private static (string? Schema, string? Error) ParseSchema(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return (null, "Enter a JSON schema (a JSON object), or pick another response format.");
        }
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? (text.Trim(), null)
                : (null, $"The schema must be a JSON object, not {Kind(document.RootElement)}.");
        }
        catch (JsonException exception)
        {
            return (null, "The schema is not valid JSON: " + Describe(exception));
        }
    }

    private static (string? Tools, HashSet<string> Names, string? Error) ParseTools(string text)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(text))
        {
            return (null, names, null);
        }
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() == 0)
            {
                return (null, names, "Tools must be a non-empty JSON array of function tools, e.g. [{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{...}}}].");
            }
            var i = 0;
            foreach (var tool in root.EnumerateArray())
            {
                if (tool.ValueKind != JsonValueKind.Object
                    || !tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                    || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                {
                    return (null, names, $"Tool {i + 1} needs a \"function\" object with a \"name\".");
                }
                if (!NamePattern().IsMatch(name.GetString()!))
                {
                    return (null, names, $"Tool {i + 1}'s name must be 1 to 64 letters, digits, '_' or '-'.");
                }
                names.Add(name.GetString()!);
                i++;
            }
            return (text.Trim(), names, null);
        }
        catch (JsonException exception)
        {
            return (null, names, "Tools are not valid JSON: " + Describe(exception));
        }
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    // The reader's own words, without its 0-based position suffix; the place 1-based instead.
    private static string Describe(JsonException exception)
    {
        var message = exception.Message;
        foreach (var suffix in (ReadOnlySpan<string>)[" Path:", " LineNumber:"])
        {
            var at = message.IndexOf(suffix, StringComparison.Ordinal);
            if (at > 0)
            {
                message = message[..at];
            }
        }
        message = message.TrimEnd();
        return exception.LineNumber is { } line && exception.BytePositionInLine is { } column
            ? $"{message} (line {line + 1}, column {column + 1})"
            : message;
    }
}

/// <summary>The outcome of <see cref="StructuredOutput.From"/>: the output, or what is wrong with the schema and the tools.</summary>
public sealed record StructuredCheck(StructuredOutput? Output, string? SchemaError, string? ToolsError)
{
    public bool IsValid => Output is not null;

    /// <summary>Both errors in one sentence for the error banner.</summary>
    public string Problem => string.Join(" ", new[] { SchemaError, ToolsError }.Where(e => e is not null));
}
