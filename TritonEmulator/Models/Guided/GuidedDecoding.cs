using System.Text.Json;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// A request's output constraint as a GBNF grammar (root rule <c>root</c>), read from what the
/// backends take: vLLM's <c>structured_outputs</c> (Triton 25.12 on) or <c>guided_decoding</c>
/// (earlier), a JSON string or object with one of <c>json</c> (a schema), <c>json_object</c>,
/// <c>regex</c>, <c>choice</c>, <c>grammar</c> (GBNF / EBNF in <c>::=</c> form) and the whitespace
/// switch <c>disable_any_whitespace</c>; TensorRT-LLM's <c>guided_decoding_guide_type</c>
/// (<c>json</c>, <c>json_schema</c>, <c>regex</c>, <c>ebnf_grammar</c>) with <c>guided_decoding_guide</c>.
/// </summary>
internal sealed record GuidedDecoding(string Kind, string Grammar)
{
    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
    {
        // Options that pick a grammar library or its fallbacks: one engine here.
        "backend", "disable_fallback", "disable_additional_properties", "whitespace_pattern", "_backend", "_backend_was_auto",
    };

    public static GuidedDecoding FromVllm(string key, JsonElement value)
    {
        JsonElement spec;
        if (value.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var document = JsonDocument.Parse(value.GetString()!);
                spec = document.RootElement.Clone();
            }
            catch (JsonException exception)
            {
                throw new FormatException($"'{key}' is not valid JSON: {exception.Message}");
            }
        }
        else
        {
            spec = value;
        }
        if (spec.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"'{key}' must be a JSON object of structured output parameters");
        }
        var compact = spec.TryGetProperty("disable_any_whitespace", out var ws) && ws.ValueKind == JsonValueKind.True;
        GuidedDecoding? guide = null;
        var kinds = 0;
        foreach (var property in spec.EnumerateObject())
        {
            var v = property.Value;
            if (v.ValueKind is JsonValueKind.Null or JsonValueKind.False && property.Name != "disable_any_whitespace")
            {
                continue;
            }
            switch (property.Name)
            {
                case "json":
                    kinds++;
                    guide = new("json", JsonSchemaGrammar.FromSchema(v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText(), compact));
                    break;
                case "json_object":
                    kinds++;
                    guide = new("json_object", JsonSchemaGrammar.AnyObject(compact));
                    break;
                case "regex":
                    kinds++;
                    guide = new("regex", "root ::= " + RegexGrammar.ToGbnf(v.GetString() ?? "", insideJsonString: false) + "\n");
                    break;
                case "choice":
                    kinds++;
                    guide = new("choice", JsonSchemaGrammar.Choice([.. v.EnumerateArray().Select(c => c.ValueKind == JsonValueKind.String ? c.GetString()! : c.GetRawText())]));
                    break;
                case "grammar":
                    kinds++;
                    guide = new("grammar", v.GetString() ?? "");
                    break;
                case "disable_any_whitespace":
                    break;
                case "structural_tag":
                    throw new FormatException($"'{key}.structural_tag' is not supported by this engine");
                default:
                    if (!Ignored.Contains(property.Name))
                    {
                        throw new FormatException($"unexpected structured output parameter '{property.Name}' in '{key}'");
                    }
                    break;
            }
        }
        return kinds switch
        {
            0 => throw new FormatException($"'{key}' sets no constraint (one of json, json_object, regex, choice, grammar)"),
            > 1 => throw new FormatException($"You can only use one kind of structured outputs constraint but multiple are specified in '{key}'"),
            _ => guide!,
        };
    }

    public static GuidedDecoding FromTensorRtLlm(string type, string? guide) => type switch
    {
        "json" => new("json", JsonAnyValue()),
        // TensorRT-LLM's guide has no whitespace switch: blanks are bounded to one between tokens, so
        // max_tokens is not spent on indentation.
        "json_schema" => new("json_schema", JsonSchemaGrammar.FromSchema(guide ?? throw Missing(type), compact: true)),
        "regex" => new("regex", "root ::= " + RegexGrammar.ToGbnf(guide ?? throw Missing(type), insideJsonString: false) + "\n"),
        "ebnf_grammar" => new("ebnf_grammar", guide ?? throw Missing(type)),
        _ => throw new FormatException($"guided_decoding_guide_type '{type}' is not one of json, json_schema, regex, ebnf_grammar"),
    };

    private static string JsonAnyValue() => JsonSchemaGrammar.FromSchema("true", compact: true);

    private static FormatException Missing(string type) => new($"guided_decoding_guide is required with guided_decoding_guide_type '{type}'");
}
