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
    /// <summary>
    /// A structural tag's triggers: generation runs free until one of them appears, then the grammar
    /// holds from the trigger on (llama.cpp's lazy grammar); null = the grammar holds from the first token.
    /// </summary>
    public IReadOnlyList<string>? Triggers { get; init; }

    /// <summary>llama.cpp's lazy-grammar patterns for <see cref="Triggers"/>: matched from the start of the output, the grammar fed from group 1 (the trigger) on.</summary>
    public string[] TriggerPatterns() => [.. (Triggers ?? []).Select(t => @"[\s\S]*?(" + EscapeRegex(t) + @"[\s\S]*)")];

    private static string EscapeRegex(string text)
    {
        var builder = new System.Text.StringBuilder(text.Length * 2);
        foreach (var c in text)
        {
            if (@"\^$.|?*+()[]{}/".Contains(c, StringComparison.Ordinal))
            {
                builder.Append('\\');
            }
            builder.Append(c);
        }
        return builder.ToString();
    }

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
                    kinds++;
                    guide = StructuralTag(key, v, compact);
                    break;
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
            0 => throw new FormatException($"'{key}' sets no constraint (one of json, json_object, regex, choice, grammar, structural_tag)"),
            > 1 => throw new FormatException($"You can only use one kind of structured outputs constraint but multiple are specified in '{key}'"),
            _ => guide!,
        };
    }

    /// <summary>
    /// vLLM's <c>structural_tag</c> (a JSON string): <c>{"type": "structural_tag", "structures": [{"begin",
    /// "schema", "end"}], "triggers": [...]}</c>. Free text until a trigger; from it on one structure:
    /// its begin text, an instance of its schema, its end text; then the answer ends (one call).
    /// </summary>
    private static GuidedDecoding StructuralTag(string key, JsonElement value, bool compact)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText());
        }
        catch (JsonException exception)
        {
            throw new FormatException($"'{key}.structural_tag' is not valid JSON: {exception.Message}");
        }
        using (document)
        {
            var tag = document.RootElement;
            if (tag.ValueKind != JsonValueKind.Object
                || !tag.TryGetProperty("structures", out var structures) || structures.ValueKind != JsonValueKind.Array
                || !tag.TryGetProperty("triggers", out var triggerList) || triggerList.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException($"'{key}.structural_tag' must be an object with 'structures' and 'triggers' arrays");
            }
            var triggers = triggerList.EnumerateArray().Select(t => t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } text
                ? text : throw new FormatException($"'{key}.structural_tag.triggers' must be non-empty strings")).ToList();
            if (triggers.Count == 0)
            {
                throw new FormatException($"'{key}.structural_tag.triggers' must list at least one trigger");
            }
            var tags = new List<(string, JsonElement, string)>();
            foreach (var structure in structures.EnumerateArray())
            {
                if (structure.ValueKind != JsonValueKind.Object
                    || !structure.TryGetProperty("begin", out var begin) || begin.ValueKind != JsonValueKind.String
                    || !structure.TryGetProperty("schema", out var schema)
                    || !structure.TryGetProperty("end", out var end) || end.ValueKind != JsonValueKind.String)
                {
                    throw new FormatException($"each of '{key}.structural_tag.structures' must have string 'begin' and 'end' and a 'schema'");
                }
                var beginText = begin.GetString()!;
                if (!triggers.Any(t => beginText.StartsWith(t, StringComparison.Ordinal)))
                {
                    throw new FormatException($"structural tag begin '{beginText}' does not start with any of the triggers");
                }
                tags.Add((beginText, schema.Clone(), end.GetString()!));
            }
            return new GuidedDecoding("structural_tag", JsonSchemaGrammar.FromTags(tags, compact)) { Triggers = triggers };
        }
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
