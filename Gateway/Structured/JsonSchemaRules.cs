using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Errors;

namespace Gateway.Structured;

/// <summary>
/// Checks a JSON schema before it goes to the backend, the way OpenAI checks <c>response_format</c>
/// and tool parameters: keywords the constrained decoder cannot express are refused (all of them
/// listed), and with <c>strict: true</c> OpenAI's structured-output rules apply (the root is an
/// object, every object sets <c>additionalProperties: false</c> and requires every property). The
/// supported keywords are what the engine's schema-to-grammar conversion covers.
/// </summary>
public static class JsonSchemaRules
{
    /// <summary>Keywords a grammar is built from.</summary>
    public static IReadOnlySet<string> Supported { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "$ref", "$defs", "definitions",
        "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        // Annotations: no effect on the output.
        "description", "title", "$schema", "$id", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly",
    };

    /// <summary>The string formats the grammar spells out.</summary>
    public static IReadOnlySet<string> Formats { get; } = new HashSet<string>(StringComparer.Ordinal) { "date", "time", "date-time", "uuid" };

    private static readonly HashSet<string> Types = new(StringComparer.Ordinal) { "object", "array", "string", "number", "integer", "boolean", "null" };

    /// <summary>Throws a 400 naming <paramref name="param"/> when the schema cannot be honoured; returns the schema's JSON text.</summary>
    public static string Check(JsonElement schema, bool strict, string param, string what)
    {
        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(param, $"Invalid schema for {what}: schema must be a JSON Schema of 'type: \"object\"', got '{Kind(schema)}'.");
        }
        var unsupported = new List<string>();
        var problems = new List<string>();
        Walk(schema, schema, [], strict, unsupported, problems, depth: 0);
        if (strict && !(schema.TryGetProperty("type", out var rootType) && rootType.ValueKind == JsonValueKind.String && rootType.GetString() == "object"))
        {
            problems.Insert(0, "In context=(), schema must be a JSON Schema of 'type: \"object\"'.");
        }
        if (unsupported.Count > 0)
        {
            throw Invalid(param, $"Invalid schema for {what}: these keywords are not supported by constrained decoding on this gateway: {string.Join(", ", unsupported)}. Supported: {string.Join(", ", Supported.Order(StringComparer.Ordinal))}.");
        }
        if (problems.Count > 0)
        {
            throw Invalid(param, $"Invalid schema for {what}: {problems[0]}");
        }
        return schema.GetRawText();
    }

    private static void Walk(JsonElement root, JsonElement node, List<string> path, bool strict, List<string> unsupported, List<string> problems, int depth)
    {
        var context = "(" + string.Join(", ", path.Select(p => $"'{p}'")) + ")";
        if (depth > 64)
        {
            problems.Add($"In context={context}, the schema nests deeper than 64 levels.");
            return;
        }
        if (node.ValueKind == JsonValueKind.True)
        {
            return; // any value
        }
        if (node.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"In context={context}, schema must be an object or true, got '{Kind(node)}'.");
            return;
        }
        foreach (var property in node.EnumerateObject())
        {
            if (!Supported.Contains(property.Name))
            {
                unsupported.Add(path.Count == 0 ? $"'{property.Name}'" : $"'{property.Name}' (at {string.Join("/", path)})");
            }
        }
        string[] types = [];
        if (node.TryGetProperty("type", out var type))
        {
            types = type.ValueKind switch
            {
                JsonValueKind.String => [type.GetString()!],
                JsonValueKind.Array => [.. type.EnumerateArray().Select(t => t.ValueKind == JsonValueKind.String ? t.GetString()! : "?")],
                _ => ["?"],
            };
            foreach (var t in types)
            {
                if (!Types.Contains(t))
                {
                    problems.Add($"In context={context}, '{t}' is not a valid type (expected one of object, array, string, number, integer, boolean, null).");
                }
            }
        }
        if (node.TryGetProperty("format", out var format) && (format.ValueKind != JsonValueKind.String || !Formats.Contains(format.GetString()!)))
        {
            unsupported.Add($"'format: {format.GetRawText()}' (at {Context(path)}; supported formats: {string.Join(", ", Formats)})");
        }
        if (node.TryGetProperty("pattern", out var pattern) && (pattern.ValueKind != JsonValueKind.String || !RegexSubset.IsSupported(pattern.GetString()!, out _)))
        {
            RegexSubset.IsSupported(pattern.ValueKind == JsonValueKind.String ? pattern.GetString()! : "", out var why);
            unsupported.Add($"'pattern: {pattern.GetRawText()}' (at {Context(path)}: {why})");
        }
        foreach (var bound in (ReadOnlySpan<string>)["minLength", "maxLength", "minItems", "maxItems"])
        {
            if (node.TryGetProperty(bound, out var value) && !(value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n >= 0))
            {
                problems.Add($"In context={context}, '{bound}' must be a non-negative integer.");
            }
        }
        if (node.TryGetProperty("enum", out var values) && (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0))
        {
            problems.Add($"In context={context}, 'enum' must be a non-empty array.");
        }
        if (node.TryGetProperty("$ref", out var reference))
        {
            var target = reference.ValueKind == JsonValueKind.String ? reference.GetString()! : "";
            if (!TryResolve(root, target, out _))
            {
                problems.Add($"In context={context}, reference '{target}' could not be resolved (references must point into '#/$defs' or '#/definitions', or be '#').");
            }
        }
        var isObject = types.Contains("object") || (types.Length == 0 && node.TryGetProperty("properties", out _));
        if (isObject)
        {
            node.TryGetProperty("properties", out var properties);
            if (properties.ValueKind is not (JsonValueKind.Object or JsonValueKind.Undefined))
            {
                problems.Add($"In context={context}, 'properties' must be an object.");
            }
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (node.TryGetProperty("required", out var requiredList))
            {
                if (requiredList.ValueKind != JsonValueKind.Array || requiredList.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                {
                    problems.Add($"In context={context}, 'required' must be an array of strings.");
                }
                else
                {
                    required.UnionWith(requiredList.EnumerateArray().Select(r => r.GetString()!));
                }
            }
            var additional = node.TryGetProperty("additionalProperties", out var additionalValue) ? additionalValue : default;
            if (strict)
            {
                if (additional.ValueKind != JsonValueKind.False)
                {
                    problems.Add($"In context={context}, 'additionalProperties' is required to be supplied and to be false.");
                }
                if (properties.ValueKind == JsonValueKind.Object)
                {
                    var missing = properties.EnumerateObject().Select(p => p.Name).Where(n => !required.Contains(n)).ToList();
                    if (missing.Count > 0)
                    {
                        problems.Add($"In context={context}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing[0]}'.");
                    }
                }
            }
            else if (additional.ValueKind == JsonValueKind.Object || (additional.ValueKind == JsonValueKind.True && properties.ValueKind == JsonValueKind.Object))
            {
                unsupported.Add($"'additionalProperties: {additional.GetRawText()}' alongside 'properties' (at {Context(path)}; use false, or an object schema without properties for any object)");
            }
            if (properties.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in properties.EnumerateObject())
                {
                    Walk(root, property.Value, [.. path, "properties", property.Name], strict, unsupported, problems, depth + 1);
                }
            }
        }
        if (node.TryGetProperty("items", out var items))
        {
            Walk(root, items, [.. path, "items"], strict, unsupported, problems, depth + 1);
        }
        if (node.TryGetProperty("anyOf", out var anyOf))
        {
            if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0)
            {
                problems.Add($"In context={context}, 'anyOf' must be a non-empty array.");
            }
            else
            {
                if (strict && path.Count == 0)
                {
                    problems.Add("In context=(), the root schema must not be 'anyOf': it must be an object.");
                }
                var i = 0;
                foreach (var option in anyOf.EnumerateArray())
                {
                    Walk(root, option, [.. path, "anyOf", (i++).ToString(System.Globalization.CultureInfo.InvariantCulture)], strict, unsupported, problems, depth + 1);
                }
            }
        }
        foreach (var defsKey in (ReadOnlySpan<string>)["$defs", "definitions"])
        {
            if (node.TryGetProperty(defsKey, out var defs) && defs.ValueKind == JsonValueKind.Object)
            {
                foreach (var def in defs.EnumerateObject())
                {
                    Walk(root, def.Value, [.. path, defsKey, def.Name], strict, unsupported, problems, depth + 1);
                }
            }
        }
    }

    /// <summary>Resolves <c>#</c>, <c>#/$defs/name</c> or <c>#/definitions/name</c> against the root.</summary>
    public static bool TryResolve(JsonElement root, string reference, out JsonElement target)
    {
        target = default;
        if (reference == "#")
        {
            target = root;
            return true;
        }
        foreach (var prefix in (ReadOnlySpan<string>)["#/$defs/", "#/definitions/"])
        {
            if (reference.StartsWith(prefix, StringComparison.Ordinal)
                && root.TryGetProperty(prefix[2..^1], out var defs) && defs.ValueKind == JsonValueKind.Object
                && defs.TryGetProperty(reference[prefix.Length..], out target))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The schema a <c>required</c> tool choice constrains the answer to (vLLM's shape): a JSON array
    /// of one or more <c>{"name": …, "parameters": {…}}</c> objects (at most one when parallel calls
    /// are off). Each tool's <c>$defs</c> move to the root under a prefixed name.
    /// </summary>
    public static string RequiredToolsSchema(IReadOnlyList<ToolDefinition> tools, bool parallel)
    {
        var options = new JsonArray();
        var defs = new JsonObject();
        for (var i = 0; i < tools.Count; i++)
        {
            var parameters = JsonNode.Parse(tools[i].Parameters)!;
            var prefix = $"tool{i}_";
            if (parameters is JsonObject parametersObject)
            {
                foreach (var key in (ReadOnlySpan<string>)["$defs", "definitions"])
                {
                    if (parametersObject[key] is JsonObject own)
                    {
                        parametersObject.Remove(key);
                        foreach (var (name, value) in own.ToList())
                        {
                            own.Remove(name);
                            defs[prefix + name] = value;
                        }
                    }
                }
            }
            RewriteRefs(parameters, prefix, i);
            if (parameters.ToJsonString().Contains($"\"#/$defs/{prefix}root\"", StringComparison.Ordinal))
            {
                defs[prefix + "root"] = parameters.DeepClone();
            }
            foreach (var (_, value) in defs.Where(d => d.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList())
            {
                RewriteRefs(value, prefix, i);
            }
            options.Add(new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject
                {
                    ["name"] = new JsonObject { ["const"] = tools[i].Name },
                    ["parameters"] = parameters,
                },
                ["required"] = new JsonArray("name", "parameters"),
                ["additionalProperties"] = false,
            });
        }
        var schema = new JsonObject
        {
            ["type"] = "array",
            ["minItems"] = 1,
            ["items"] = new JsonObject { ["anyOf"] = options },
        };
        if (!parallel)
        {
            schema["maxItems"] = 1;
        }
        if (defs.Count > 0)
        {
            schema["$defs"] = defs;
        }
        return schema.ToJsonString();
    }

    private static void RewriteRefs(JsonNode? node, string prefix, int tool)
    {
        switch (node)
        {
            case JsonObject obj:
                if (obj["$ref"] is JsonValue reference && reference.TryGetValue<string>(out var target))
                {
                    obj["$ref"] = target switch
                    {
                        "#" => $"#/$defs/{prefix}root",
                        _ when target.StartsWith("#/$defs/", StringComparison.Ordinal) => "#/$defs/" + prefix + target["#/$defs/".Length..],
                        _ when target.StartsWith("#/definitions/", StringComparison.Ordinal) => "#/$defs/" + prefix + target["#/definitions/".Length..],
                        _ => target,
                    };
                }
                foreach (var (_, child) in obj.ToList())
                {
                    RewriteRefs(child, prefix, tool);
                }
                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    RewriteRefs(child, prefix, tool);
                }
                break;
        }
    }

    private static string Context(List<string> path) => path.Count == 0 ? "the root" : string.Join("/", path);

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "object",
    };

    private static GatewayException Invalid(string param, string message) =>
        new(GatewayError.InvalidRequest, message, param, "invalid_json_schema");
}
