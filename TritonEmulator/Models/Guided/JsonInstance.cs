using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// A schema-valid JSON instance for the timing engine, which has no logits to constrain: compact JSON
/// built from the schema with a seeded random source (the same keywords as <see cref="JsonSchemaGrammar"/>,
/// except <c>pattern</c>, which it refuses). Required properties only, the first <c>anyOf</c> branch that is
/// not a reference loop, arrays of <c>minItems</c> (at least one when allowed), short lowercase strings.
/// </summary>
internal sealed class JsonInstance
{
    private readonly JsonElement _root;
    private readonly Random _random;
    private readonly StringBuilder _text = new();

    private JsonInstance(JsonElement root, ulong seed)
    {
        _root = root;
        _random = new Random(unchecked((int)(seed ^ (seed >> 32))));
    }

    public static string Generate(string schemaJson, ulong seed)
    {
        using var document = JsonDocument.Parse(schemaJson);
        var instance = new JsonInstance(document.RootElement, seed);
        instance.Write(document.RootElement, 0);
        return instance._text.ToString();
    }

    private void Write(JsonElement schema, int depth)
    {
        if (depth > 32)
        {
            throw new FormatException("the JSON schema nests deeper than the timing engine writes (recursive without an end?)");
        }
        if (schema.ValueKind == JsonValueKind.True || schema.ValueKind == JsonValueKind.Object && !schema.EnumerateObject().Any())
        {
            _text.Append("{}");
            return;
        }
        if (schema.TryGetProperty("$ref", out var reference))
        {
            var target = reference.GetString() ?? "";
            var resolved = _root;
            if (target != "#" && !TryResolve(target, out resolved))
            {
                throw new FormatException($"JSON schema reference '{target}' cannot be resolved");
            }
            Write(resolved, depth + 1);
            return;
        }
        if (schema.TryGetProperty("const", out var constant))
        {
            _text.Append(constant.GetRawText());
            return;
        }
        if (schema.TryGetProperty("enum", out var values))
        {
            var options = values.EnumerateArray().ToList();
            _text.Append(Compact(options[_random.Next(options.Count)]));
            return;
        }
        foreach (var union in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(union, out var anyOf))
            {
                var options = anyOf.EnumerateArray().ToList();
                // A branch without a reference ends for sure; else the first.
                var pick = options.FirstOrDefault(static o => !o.GetRawText().Contains("$ref", StringComparison.Ordinal));
                Write(pick.ValueKind == JsonValueKind.Undefined ? options[0] : pick, depth + 1);
                return;
            }
        }
        var type = schema.TryGetProperty("type", out var t)
            ? t.ValueKind == JsonValueKind.Array ? t.EnumerateArray().Select(static x => x.GetString()).FirstOrDefault(static x => x != "null") ?? "null" : t.GetString()
            : schema.TryGetProperty("properties", out _) ? "object" : schema.TryGetProperty("items", out _) ? "array" : "object";
        switch (type)
        {
            case "object":
                _text.Append('{');
                var first = true;
                if (schema.TryGetProperty("properties", out var properties))
                {
                    var required = schema.TryGetProperty("required", out var r) ? r.EnumerateArray().Select(static x => x.GetString()).ToHashSet() : [];
                    foreach (var property in properties.EnumerateObject())
                    {
                        if (!required.Contains(property.Name))
                        {
                            continue;
                        }
                        _text.Append(first ? "" : ",").Append(JsonSerializer.Serialize(property.Name)).Append(':');
                        first = false;
                        Write(property.Value, depth + 1);
                    }
                }
                _text.Append('}');
                break;
            case "array":
                var min = schema.TryGetProperty("minItems", out var minItems) ? minItems.GetInt32() : 0;
                var max = schema.TryGetProperty("maxItems", out var maxItems) ? maxItems.GetInt32() : int.MaxValue;
                var count = Math.Min(Math.Max(min, 1), max);
                _text.Append('[');
                for (var i = 0; i < count; i++)
                {
                    _text.Append(i > 0 ? "," : "");
                    if (schema.TryGetProperty("items", out var items))
                    {
                        Write(items, depth + 1);
                    }
                    else
                    {
                        _text.Append('0');
                    }
                }
                _text.Append(']');
                break;
            case "string":
                String(schema);
                break;
            case "integer" or "number":
                var (lo, hi) = Bounds(schema);
                var from = lo ?? (hi is { } h ? BigInteger.Min(h, 0) : 0);
                var to = hi ?? from + 100;
                if (from > to)
                {
                    throw new FormatException("the number's bounds hold no whole number");
                }
                var span = (long)BigInteger.Min(to - from, 1000);
                _text.Append((from + _random.NextInt64(span + 1)).ToString(CultureInfo.InvariantCulture));
                break;
            case "boolean":
                _text.Append(_random.Next(2) == 0 ? "true" : "false");
                break;
            case "null":
                _text.Append("null");
                break;
            default:
                throw new FormatException($"JSON schema type '{type}' is not a type");
        }
    }

    private void String(JsonElement schema)
    {
        if (schema.TryGetProperty("pattern", out _))
        {
            throw new FormatException("'pattern' is not supported by the timing engine's structured outputs (use the llama.cpp engine)");
        }
        if (schema.TryGetProperty("format", out var format))
        {
            var value = format.GetString() switch
            {
                "date" => "2026-01-15",
                "time" => "12:30:00Z",
                "date-time" => "2026-01-15T12:30:00Z",
                "uuid" => "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
                var other => throw new FormatException($"string format '{other}' is not supported"),
            };
            _text.Append('"').Append(value).Append('"');
            return;
        }
        var min = schema.TryGetProperty("minLength", out var minLength) ? minLength.GetInt32() : 0;
        var max = schema.TryGetProperty("maxLength", out var maxLength) ? maxLength.GetInt32() : Math.Max(min, 12);
        var length = Math.Clamp(5, min, max);
        _text.Append('"');
        for (var i = 0; i < length; i++)
        {
            _text.Append((char)('a' + _random.Next(26)));
        }
        _text.Append('"');
    }

    private static (BigInteger? Lo, BigInteger? Hi) Bounds(JsonElement schema)
    {
        BigInteger? lo = null, hi = null;
        if (schema.TryGetProperty("minimum", out var minimum))
        {
            lo = new BigInteger(Math.Ceiling(minimum.GetDouble()));
        }
        if (schema.TryGetProperty("exclusiveMinimum", out var exclusiveMinimum) && exclusiveMinimum.ValueKind == JsonValueKind.Number)
        {
            var bound = new BigInteger(Math.Floor(exclusiveMinimum.GetDouble()) + 1);
            lo = lo is { } l ? BigInteger.Max(l, bound) : bound;
        }
        if (schema.TryGetProperty("maximum", out var maximum))
        {
            hi = new BigInteger(Math.Floor(maximum.GetDouble()));
        }
        if (schema.TryGetProperty("exclusiveMaximum", out var exclusiveMaximum) && exclusiveMaximum.ValueKind == JsonValueKind.Number)
        {
            var bound = new BigInteger(Math.Ceiling(exclusiveMaximum.GetDouble()) - 1);
            hi = hi is { } h ? BigInteger.Min(h, bound) : bound;
        }
        return (lo, hi);
    }

    private bool TryResolve(string target, out JsonElement resolved)
    {
        resolved = default;
        foreach (var prefix in (ReadOnlySpan<string>)["#/$defs/", "#/definitions/"])
        {
            if (target.StartsWith(prefix, StringComparison.Ordinal)
                && _root.TryGetProperty(prefix[2..^1], out var defs) && defs.TryGetProperty(target[prefix.Length..], out resolved))
            {
                return true;
            }
        }
        return false;
    }

    private static string Compact(JsonElement value)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            value.WriteTo(writer);
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
