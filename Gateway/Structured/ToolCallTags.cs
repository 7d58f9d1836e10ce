using System.Text;
using System.Text.Json;

namespace Gateway.Structured;

/// <summary>
/// Strict tools under <c>tool_choice: auto</c>: the model may answer in text or call a tool, so the
/// constraint cannot hold from the first token. A structural tag (vLLM's <c>structural_tag</c>, the
/// xgrammar form) leaves the text free until the model writes its format's tool-call marker, then holds
/// the call to <c>{"name": …, "arguments": &lt;the tool's schema&gt;}</c> in that format. Non-strict tools
/// of the same request are held to a JSON object.
/// </summary>
public static class ToolCallTags
{
    /// <summary>Whether <paramref name="tools"/> needs a structural tag: <c>auto</c> with a strict tool.</summary>
    public static bool Needed(ToolCalling? tools) => tools is { Mode: ToolChoiceMode.Auto } && tools.Tools.Any(t => t.Strict);

    /// <summary>The structural tag (JSON text) for <paramref name="parser"/>'s format.</summary>
    public static OutputGuide Guide(string parser, IReadOnlyList<ToolDefinition> tools)
    {
        var (trigger, begin, end, argumentsKey) = parser.ToLowerInvariant() switch
        {
            ToolCallParsers.Mistral => ("[TOOL_CALLS]", "[TOOL_CALLS][{\"name\": ", "}]", "arguments"),
            ToolCallParsers.Llama3Json => ("{\"name\": ", "{\"name\": ", "}", "parameters"),
            _ => ("<tool_call>", "<tool_call>\n{\"name\": ", "}\n</tool_call>", "arguments"),
        };
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "structural_tag");
            json.WriteStartArray("structures");
            foreach (var tool in tools)
            {
                json.WriteStartObject();
                json.WriteString("begin", begin + JsonSerializer.Serialize(tool.Name, Text.TextJsonContext.Default.String) + ", \"" + argumentsKey + "\": ");
                json.WritePropertyName("schema");
                json.WriteRawValue(tool.Strict ? tool.Parameters : """{"type":"object"}""");
                json.WriteString("end", end);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("triggers");
            json.WriteStringValue(trigger);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return new OutputGuide(GuideKind.StructuralTag, Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
