using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// JSON schema → llama.cpp GBNF, so that every token the sampler may pick keeps the text a prefix of
/// a schema-valid instance. Covers <c>type</c> (one or a list), <c>properties</c> / <c>required</c>
/// (properties in declared order, optional ones may be left out), <c>additionalProperties</c>
/// (an object without <c>properties</c> is any object; with them only they may appear),
/// <c>enum</c>, <c>const</c>, <c>anyOf</c>, <c>$ref</c> into <c>$defs</c> / <c>definitions</c> (recursion
/// included), strings with <c>minLength</c> / <c>maxLength</c>, <c>pattern</c> (the regular subset,
/// matched whole, as xgrammar does) and <c>format</c> date / time / date-time / uuid, integers with
/// exact <c>minimum</c> / <c>maximum</c> (exclusive too), numbers with bounds (then written as whole
/// numbers inside the bounds), booleans, null, arrays with <c>items</c> / <c>minItems</c> / <c>maxItems</c>.
/// Whitespace is bounded: at most one blank between tokens when blanks are disabled
/// (<c>disable_any_whitespace</c>), else a space or one newline and up to 20 indent characters.
/// Anything else is refused with a <see cref="FormatException"/> naming the keyword.
/// </summary>
internal sealed class JsonSchemaGrammar
{
    private static readonly HashSet<string> Known = new(StringComparer.Ordinal)
    {
        "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions",
        "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "description", "title", "$schema", "$id", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly",
    };

    private readonly Dictionary<string, string> _rules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _refs = new(StringComparer.Ordinal);
    private JsonElement _root;

    private JsonSchemaGrammar(JsonElement root, bool compact)
    {
        _root = root;
        _rules["ws"] = compact ? "| \" \"" : "| \" \" | \"\\n\" [ \\t]{0,20}";
        _rules["char"] = "[^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})";
        _rules["string"] = "\"\\\"\" char* \"\\\"\"";
        _rules["integer"] = "\"-\"? ([0-9] | [1-9] [0-9]{0,15})";
        _rules["number"] = "\"-\"? ([0-9] | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?";
        _rules["boolean"] = "\"true\" | \"false\"";
        _rules["null"] = "\"null\"";
        _rules["value"] = "object | array | string | number | boolean | null";
        _rules["object"] = "\"{\" ws (string ws \":\" ws value (ws \",\" ws string ws \":\" ws value)*)? ws \"}\"";
        _rules["array"] = "\"[\" ws (value (ws \",\" ws value)*)? ws \"]\"";
    }

    /// <summary>The grammar of instances of <paramref name="schemaJson"/>; root rule <c>root</c>.</summary>
    public static string FromSchema(string schemaJson, bool compact)
    {
        using var document = JsonDocument.Parse(schemaJson);
        var grammar = new JsonSchemaGrammar(document.RootElement.Clone(), compact);
        grammar._rules["root"] = "\"\""; // reserved: no other rule takes the name
        grammar._rules["root"] = grammar.Visit(document.RootElement, "schema", 0);
        return grammar.Write();
    }

    /// <summary>
    /// One of <paramref name="tags"/>: each its <c>begin</c> text, an instance of its schema, then its
    /// <c>end</c> text (a structural tag's structures; each schema's references resolve in that schema).
    /// </summary>
    public static string FromTags(IReadOnlyList<(string Begin, JsonElement Schema, string End)> tags, bool compact)
    {
        if (tags.Count == 0)
        {
            throw new FormatException("a structural tag must list at least one structure");
        }
        var grammar = new JsonSchemaGrammar(default, compact);
        grammar._rules["root"] = "\"\"";
        var alternatives = new List<string>(tags.Count);
        for (var i = 0; i < tags.Count; i++)
        {
            grammar._root = tags[i].Schema;
            grammar._refs.Clear();
            var body = grammar.Visit(tags[i].Schema, "tag-" + i.ToString(CultureInfo.InvariantCulture), 0);
            alternatives.Add(grammar.NewRule("tag-" + i.ToString(CultureInfo.InvariantCulture) + "-call", Literal(tags[i].Begin) + " " + body + " " + Literal(tags[i].End)));
        }
        grammar._rules["root"] = string.Join(" | ", alternatives);
        return grammar.Write();
    }

    /// <summary>Any JSON object (<c>json_object</c>).</summary>
    public static string AnyObject(bool compact)
    {
        var grammar = new JsonSchemaGrammar(default, compact);
        grammar._rules["root"] = "object";
        return grammar.Write();
    }

    /// <summary>Exactly one of <paramref name="choices"/> (vLLM's <c>choice</c>).</summary>
    public static string Choice(IReadOnlyList<string> choices)
    {
        if (choices.Count == 0)
        {
            throw new FormatException("structured outputs 'choice' must list at least one string");
        }
        return "root ::= " + string.Join(" | ", choices.Select(Literal)) + "\n";
    }

    private string Write()
    {
        var text = new StringBuilder();
        text.Append("root ::= ").Append(_rules["root"]).Append('\n');
        foreach (var (name, body) in _rules)
        {
            if (name != "root")
            {
                text.Append(name).Append(" ::= ").Append(body).Append('\n');
            }
        }
        return text.ToString();
    }

    private string NewRule(string hint, string body)
    {
        var name = Sanitize(hint);
        for (var i = 1; _rules.ContainsKey(name); i++)
        {
            name = Sanitize(hint) + "-" + i.ToString(CultureInfo.InvariantCulture);
        }
        _rules[name] = body;
        return name;
    }

    private static string Sanitize(string hint)
    {
        var builder = new StringBuilder(hint.Length);
        foreach (var c in hint)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
        }
        return builder.Length == 0 ? "r" : builder.ToString();
    }

    private string Visit(JsonElement schema, string hint, int depth)
    {
        if (depth > 64)
        {
            throw new FormatException("the JSON schema nests deeper than 64 levels");
        }
        if (schema.ValueKind == JsonValueKind.True)
        {
            return "value";
        }
        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"a JSON schema must be an object or true, got {schema.ValueKind}");
        }
        foreach (var property in schema.EnumerateObject())
        {
            if (!Known.Contains(property.Name))
            {
                throw new FormatException($"JSON schema keyword '{property.Name}' is not supported by this engine's structured outputs");
            }
        }
        if (schema.TryGetProperty("$ref", out var reference))
        {
            return Ref(reference.GetString() ?? "");
        }
        if (schema.TryGetProperty("const", out var constant))
        {
            return Literal(constant.GetRawText().Length > 0 ? Compact(constant) : "null");
        }
        if (schema.TryGetProperty("enum", out var values))
        {
            var options = values.EnumerateArray().Select(v => Literal(Compact(v))).ToList();
            return options.Count == 0 ? throw new FormatException("'enum' must not be empty") : "(" + string.Join(" | ", options) + ")";
        }
        foreach (var union in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(union, out var anyOf))
            {
                var options = new List<string>();
                var i = 0;
                foreach (var option in anyOf.EnumerateArray())
                {
                    options.Add(Visit(option, $"{hint}-{i++}", depth + 1));
                }
                return options.Count == 0 ? throw new FormatException($"'{union}' must not be empty") : NewRule(hint, string.Join(" | ", options));
            }
        }
        if (schema.TryGetProperty("type", out var type))
        {
            if (type.ValueKind == JsonValueKind.Array)
            {
                var options = type.EnumerateArray().Select(t => ForType(t.GetString() ?? "", schema, hint, depth)).ToList();
                return NewRule(hint, string.Join(" | ", options));
            }
            return ForType(type.GetString() ?? "", schema, hint, depth);
        }
        if (schema.TryGetProperty("properties", out _))
        {
            return ForType("object", schema, hint, depth);
        }
        if (schema.TryGetProperty("items", out _))
        {
            return ForType("array", schema, hint, depth);
        }
        return "value";
    }

    private string Ref(string target)
    {
        if (_refs.TryGetValue(target, out var known))
        {
            return known;
        }
        JsonElement resolved;
        string hint;
        if (target == "#")
        {
            (resolved, hint) = (_root, "root-ref");
        }
        else
        {
            string? name = null;
            resolved = default;
            foreach (var prefix in (ReadOnlySpan<string>)["#/$defs/", "#/definitions/"])
            {
                if (target.StartsWith(prefix, StringComparison.Ordinal)
                    && _root.TryGetProperty(prefix[2..^1], out var defs) && defs.TryGetProperty(target[prefix.Length..], out resolved))
                {
                    name = target[prefix.Length..];
                    break;
                }
            }
            hint = name ?? throw new FormatException($"JSON schema reference '{target}' cannot be resolved (only '#', '#/$defs/…' and '#/definitions/…')");
        }
        // Named before it is visited, so a recursive reference finds it.
        var rule = NewRule("def-" + hint, "\"\"");
        _refs[target] = rule;
        _rules[rule] = Visit(resolved, rule + "-body", 1);
        return rule;
    }

    private string ForType(string type, JsonElement schema, string hint, int depth) => type switch
    {
        "object" => Object(schema, hint, depth),
        "array" => Array(schema, hint, depth),
        "string" => String(schema, hint),
        "integer" => Integer(schema, hint),
        "number" => Number(schema, hint),
        "boolean" => "boolean",
        "null" => "null",
        _ => throw new FormatException($"JSON schema type '{type}' is not a type"),
    };

    private string Object(JsonElement schema, string hint, int depth)
    {
        if (!schema.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object || !properties.EnumerateObject().Any())
        {
            var closed = schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False;
            return closed ? Literal("{") + " ws " + Literal("}") : "object";
        }
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var requiredList))
        {
            foreach (var name in requiredList.EnumerateArray())
            {
                required.Add(name.GetString() ?? "");
            }
        }
        var entries = new List<(string Pair, bool Required)>();
        foreach (var property in properties.EnumerateObject())
        {
            var value = Visit(property.Value, $"{hint}-{property.Name}", depth + 1);
            entries.Add((NewRule($"{hint}-{property.Name}-kv", Literal(JsonSerializer.Serialize(property.Name)) + " ws \":\" ws " + value), required.Contains(property.Name)));
        }
        // rest(i, first): the properties from i on, with or without a comma before the next one.
        var names = new string?[entries.Count + 1, 2];
        string Rest(int i, bool first)
        {
            if (i == entries.Count)
            {
                return "";
            }
            var slot = first ? 0 : 1;
            if (names[i, slot] is { } name)
            {
                return name;
            }
            var (pair, isRequired) = entries[i];
            var take = (first ? "" : "ws \",\" ws ") + pair + " " + Rest(i + 1, false);
            var body = isRequired ? take : "(" + take + ") | " + Empty(Rest(i + 1, first));
            return names[i, slot] = NewRule($"{hint}-after-{i}{(first ? "" : "-c")}", body);
        }
        return NewRule(hint, Literal("{") + " ws " + Rest(0, true) + " ws " + Literal("}"));
    }

    private static string Empty(string rule) => rule.Length == 0 ? "\"\"" : rule;

    private string Array(JsonElement schema, string hint, int depth)
    {
        var item = schema.TryGetProperty("items", out var items) ? Visit(items, hint + "-item", depth + 1) : "value";
        var min = Bound(schema, "minItems") ?? 0;
        var max = Bound(schema, "maxItems");
        if (max < min)
        {
            throw new FormatException($"maxItems {max} is below minItems {min}");
        }
        if (max == 0)
        {
            return Literal("[") + " ws " + Literal("]");
        }
        var more = "(ws \",\" ws " + item + ")" + Repeat(Math.Max(0, min - 1), max is { } m ? m - 1 : null);
        var body = item + " " + more;
        return NewRule(hint, Literal("[") + " ws " + (min == 0 ? "(" + body + ")?" : body) + " ws " + Literal("]"));
    }

    private static string Repeat(int min, int? max) => max switch
    {
        null => min == 0 ? "*" : min == 1 ? "+" : "{" + min.ToString(CultureInfo.InvariantCulture) + ",}",
        var m when m == min => "{" + min.ToString(CultureInfo.InvariantCulture) + "}",
        var m => "{" + min.ToString(CultureInfo.InvariantCulture) + "," + m.Value.ToString(CultureInfo.InvariantCulture) + "}",
    };

    private static int? Bound(JsonElement schema, string key) =>
        schema.TryGetProperty(key, out var value) ? value.TryGetInt32(out var n) && n >= 0 ? n : throw new FormatException($"'{key}' must be a non-negative integer") : null;

    private string String(JsonElement schema, string hint)
    {
        if (schema.TryGetProperty("format", out var format))
        {
            var body = format.GetString() switch
            {
                "date" => Date,
                "time" => Time,
                "date-time" => Date + " \"T\" " + Time,
                "uuid" => "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}",
                var other => throw new FormatException($"string format '{other}' is not supported by this engine's structured outputs"),
            };
            return NewRule(hint, "\"\\\"\" " + body + " \"\\\"\"");
        }
        if (schema.TryGetProperty("pattern", out var pattern))
        {
            return NewRule(hint, "\"\\\"\" " + RegexGrammar.ToGbnf(pattern.GetString() ?? "", insideJsonString: true) + " \"\\\"\"");
        }
        var min = Bound(schema, "minLength") ?? 0;
        var max = Bound(schema, "maxLength");
        if (min == 0 && max is null)
        {
            return "string";
        }
        if (max < min)
        {
            throw new FormatException($"maxLength {max} is below minLength {min}");
        }
        return NewRule(hint, "\"\\\"\" char" + Repeat(min, max) + " \"\\\"\"");
    }

    private const string Date = "[0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01])";
    private const string Time = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])";

    private string Integer(JsonElement schema, string hint)
    {
        var (lo, hi) = IntegerBounds(schema);
        return lo is null && hi is null ? "integer" : NewRule(hint, IntegerRange(lo, hi));
    }

    /// <summary>Bounded numbers are written as the whole numbers inside the bounds: always schema-valid.</summary>
    private string Number(JsonElement schema, string hint)
    {
        var (lo, hi) = IntegerBounds(schema);
        if (lo is null && hi is null)
        {
            return "number";
        }
        if (lo > hi)
        {
            throw new FormatException("the number's bounds hold no whole number; this engine writes bounded numbers as whole numbers");
        }
        return NewRule(hint, IntegerRange(lo, hi));
    }

    private static (BigInteger? Lo, BigInteger? Hi) IntegerBounds(JsonElement schema)
    {
        BigInteger? lo = null, hi = null;
        if (schema.TryGetProperty("minimum", out var minimum))
        {
            lo = Ceiling(minimum.GetDouble());
        }
        if (schema.TryGetProperty("exclusiveMinimum", out var exclusiveMinimum) && exclusiveMinimum.ValueKind == JsonValueKind.Number)
        {
            var value = exclusiveMinimum.GetDouble();
            var bound = Math.Floor(value) + 1;
            lo = lo is { } l ? BigInteger.Max(l, new BigInteger(bound)) : new BigInteger(bound);
        }
        if (schema.TryGetProperty("maximum", out var maximum))
        {
            hi = Floor(maximum.GetDouble());
        }
        if (schema.TryGetProperty("exclusiveMaximum", out var exclusiveMaximum) && exclusiveMaximum.ValueKind == JsonValueKind.Number)
        {
            var value = exclusiveMaximum.GetDouble();
            var bound = Math.Ceiling(value) - 1;
            hi = hi is { } h ? BigInteger.Min(h, new BigInteger(bound)) : new BigInteger(bound);
        }
        if (lo > hi)
        {
            throw new FormatException($"the integer bounds are empty (minimum {lo} > maximum {hi})");
        }
        return (lo, hi);
    }

    private static BigInteger Ceiling(double value) => new(Math.Ceiling(value));

    private static BigInteger Floor(double value) => new(Math.Floor(value));

    /// <summary>The decimal integers in [lo, hi] (either end open when null), as GBNF alternatives.</summary>
    internal static string IntegerRange(BigInteger? lo, BigInteger? hi)
    {
        const int MaxDigits = 16;
        var options = new List<string>();
        // Non-negative part.
        if (hi is null || hi >= 0)
        {
            var from = lo is { } l && l > 0 ? l : BigInteger.Zero;
            options.AddRange(hi is { } h ? NonNegative(from, h) : AtLeast(from, MaxDigits));
        }
        // Negative part: "-" then the magnitude.
        if (lo is null || lo < 0)
        {
            var fromMagnitude = hi is { } h && h < 0 ? -h : BigInteger.One;
            var magnitudes = lo is { } l ? NonNegative(fromMagnitude, -l) : AtLeast(fromMagnitude, MaxDigits);
            options.AddRange(magnitudes.Select(m => "\"-\" (" + m + ")"));
        }
        return options.Count == 0 ? throw new FormatException("the integer bounds are empty") : "(" + string.Join(" | ", options) + ")";
    }

    /// <summary>Integers ≥ <paramref name="from"/>: the range up to the next power of ten, then any longer number.</summary>
    private static List<string> AtLeast(BigInteger from, int maxDigits)
    {
        var digits = from.IsZero ? 1 : from.ToString(CultureInfo.InvariantCulture).Length;
        var options = NonNegative(from, BigInteger.Pow(10, digits) - 1);
        if (digits < maxDigits)
        {
            options.Add("[1-9] [0-9]{" + digits.ToString(CultureInfo.InvariantCulture) + "," + (maxDigits - 1).ToString(CultureInfo.InvariantCulture) + "}");
        }
        return options;
    }

    private static List<string> NonNegative(BigInteger lo, BigInteger hi)
    {
        var options = new List<string>();
        if (lo > hi)
        {
            return options;
        }
        var loText = lo.ToString(CultureInfo.InvariantCulture);
        var hiText = hi.ToString(CultureInfo.InvariantCulture);
        while (loText.Length < hiText.Length)
        {
            var top = new string('9', loText.Length);
            options.Add(SameLength(loText, top));
            loText = "1" + new string('0', loText.Length);
        }
        options.Add(SameLength(loText, hiText));
        return options;
    }

    /// <summary>The numbers between two digit strings of the same length.</summary>
    private static string SameLength(string lo, string hi)
    {
        if (lo.Length == 0)
        {
            return "\"\"";
        }
        if (lo == hi)
        {
            return Literal(lo);
        }
        if (lo.Length == 1)
        {
            return $"[{lo}-{hi}]";
        }
        if (lo[0] == hi[0])
        {
            return $"\"{lo[0]}\" ({SameLength(lo[1..], hi[1..])})";
        }
        var rest = lo.Length - 1;
        var parts = new List<string>();
        var lowTail = lo[1..];
        var highTail = hi[1..];
        var firstLow = lo[0];
        var lastHigh = hi[0];
        if (lowTail.All(c => c == '0'))
        {
            firstLow--; // the whole first block is covered by the middle range
        }
        else
        {
            parts.Add($"\"{lo[0]}\" ({SameLength(lowTail, new string('9', rest))})");
        }
        var includeLast = highTail.All(c => c == '9');
        var middleFrom = (char)(firstLow + 1);
        var middleTo = includeLast ? lastHigh : (char)(lastHigh - 1);
        if (middleFrom <= middleTo)
        {
            parts.Add((middleFrom == middleTo ? $"\"{middleFrom}\"" : $"[{middleFrom}-{middleTo}]") + " [0-9]{" + rest.ToString(CultureInfo.InvariantCulture) + "}");
        }
        if (!includeLast)
        {
            parts.Add($"\"{hi[0]}\" ({SameLength(new string('0', rest), highTail)})");
        }
        return string.Join(" | ", parts);
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

    /// <summary>A GBNF string literal.</summary>
    internal static string Literal(string text)
    {
        var builder = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"':
                    builder.Append("\\\"");
                    break;
                case '\\':
                    builder.Append("\\\\");
                    break;
                case '\n':
                    builder.Append("\\n");
                    break;
                case '\r':
                    builder.Append("\\r");
                    break;
                case '\t':
                    builder.Append("\\t");
                    break;
                case < ' ':
                    builder.Append("\\x").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
                    break;
                default:
                    builder.Append(c);
                    break;
            }
        }
        return builder.Append('"').ToString();
    }
}
