using System.Globalization;
using System.Text.Json;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// vLLM's <c>SamplingParams</c> as the Triton vLLM backend reads them from the
/// <c>sampling_parameters</c> JSON: values may be JSON numbers or strings (the backend's sample
/// client sends <c>{"temperature": "0.1"}</c>); defaults are vLLM's (temperature 1, top_p 1,
/// top_k off, max_tokens 16, no penalties, no seed).
/// </summary>
internal sealed record SamplingParameters
{
    public const int DefaultMaxTokens = 16;

    public float Temperature { get; init; } = 1f;
    public float TopP { get; init; } = 1f;
    public int TopK { get; init; }
    public float MinP { get; init; }
    public float PresencePenalty { get; init; }
    public float FrequencyPenalty { get; init; }
    public float RepetitionPenalty { get; init; } = 1f;
    public int MaxTokens { get; init; } = DefaultMaxTokens;
    public int MinTokens { get; init; }
    public ulong? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }

    /// <summary>The output constraint (<c>structured_outputs</c> / <c>guided_decoding</c>), or null.</summary>
    public Guided.GuidedDecoding? Guide { get; init; }

    /// <summary>Parses the JSON object; throws <see cref="FormatException"/> with a message naming the key.</summary>
    public static SamplingParameters Parse(string json)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(string.IsNullOrWhiteSpace(json) ? "{}" : json);
            root = document.RootElement.Clone();
        }
        catch (JsonException exception)
        {
            throw new FormatException($"sampling_parameters is not valid JSON: {exception.Message}");
        }
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("sampling_parameters must be a JSON object");
        }
        var result = new SamplingParameters();
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            if (value.ValueKind == JsonValueKind.Null)
            {
                continue; // vLLM drops None values and keeps its defaults.
            }
            var key = property.Name;
            result = key switch
            {
                "temperature" => result with { Temperature = NonNegative(key, Float(key, value)) },
                "top_p" => result with { TopP = TopPValue(Float(key, value)) },
                "top_k" => result with { TopK = TopKValue(Int(key, value)) },
                "min_p" => result with { MinP = Float(key, value) },
                "presence_penalty" => result with { PresencePenalty = Penalty(key, Float(key, value)) },
                "frequency_penalty" => result with { FrequencyPenalty = Penalty(key, Float(key, value)) },
                "repetition_penalty" => result with { RepetitionPenalty = Positive(key, Float(key, value)) },
                "max_tokens" => result with { MaxTokens = AtLeastOne(key, Int(key, value)) },
                "min_tokens" => result with { MinTokens = (int)NonNegative(key, Int(key, value)) },
                "seed" => result with { Seed = unchecked((ulong)Long(key, value)) },
                "stop" => result with { Stop = Strings(key, value) },
                "stop_token_ids" => result with { StopTokenIds = Ints(key, value) },
                "ignore_eos" => result with { IgnoreEos = Bool(key, value) },
                "structured_outputs" or "guided_decoding" => result with { Guide = Guided.GuidedDecoding.FromVllm(key, value) },
                "n" or "best_of" when Int(key, value) == 1 => result,
                "skip_special_tokens" when Bool(key, value) => result,
                "include_stop_str_in_output" when !Bool(key, value) => result,
                "lora_name" => throw new FormatException("LoRA feature is not enabled."),
                "n" or "best_of" or "logprobs" or "prompt_logprobs" or "skip_special_tokens" or "include_stop_str_in_output"
                    or "logit_bias" or "use_beam_search"
                    => throw new FormatException($"sampling parameter '{key}' with value {value.GetRawText()} is not supported by this engine"),
                _ => throw new FormatException($"unexpected sampling parameter '{key}'"),
            };
        }
        if (result.MinTokens > result.MaxTokens)
        {
            throw new FormatException($"min_tokens must be less than or equal to max_tokens={result.MaxTokens}, got {result.MinTokens}.");
        }
        return result;
    }

    private static float Float(string key, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Number => (float)value.GetDouble(),
        JsonValueKind.String when double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => (float)d,
        _ => throw new FormatException($"sampling parameter '{key}' must be a number, got {value.GetRawText()}"),
    };

    private static long Long(string key, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Number when value.TryGetInt64(out var l) => l,
        JsonValueKind.String when long.TryParse(value.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        _ => throw new FormatException($"sampling parameter '{key}' must be an integer, got {value.GetRawText()}"),
    };

    private static int Int(string key, JsonElement value)
    {
        var l = Long(key, value);
        return l is < int.MinValue or > int.MaxValue
            ? throw new FormatException($"sampling parameter '{key}' is out of range: {l}")
            : (int)l;
    }

    private static bool Bool(string key, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String when bool.TryParse(value.GetString(), out var b) => b,
        _ => throw new FormatException($"sampling parameter '{key}' must be a boolean, got {value.GetRawText()}"),
    };

    private static List<string> Strings(string key, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            var single = value.GetString()!;
            return single.Length == 0 ? [] : [single];
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"sampling parameter '{key}' must be a string or a list of strings");
        }
        var list = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new FormatException($"sampling parameter '{key}' must be a string or a list of strings");
            }
            if (item.GetString() is { Length: > 0 } text)
            {
                list.Add(text);
            }
        }
        return list;
    }

    private static List<int> Ints(string key, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"sampling parameter '{key}' must be a list of integers");
        }
        var list = new List<int>();
        foreach (var item in value.EnumerateArray())
        {
            list.Add(Int(key, item));
        }
        return list;
    }

    private static float NonNegative(string key, float value) =>
        value < 0 ? throw new FormatException($"{key} must be non-negative, got {value.ToString(CultureInfo.InvariantCulture)}.") : value;

    private static float Positive(string key, float value) =>
        value <= 0 ? throw new FormatException($"{key} must be greater than zero, got {value.ToString(CultureInfo.InvariantCulture)}.") : value;

    private static float Penalty(string key, float value) =>
        value is < -2f or > 2f ? throw new FormatException($"{key} must be in [-2, 2], got {value.ToString(CultureInfo.InvariantCulture)}.") : value;

    private static float TopPValue(float value) =>
        value is <= 0f or > 1f ? throw new FormatException($"top_p must be in (0, 1], got {value.ToString(CultureInfo.InvariantCulture)}.") : value;

    private static int TopKValue(int value) =>
        value < -1 ? throw new FormatException($"top_k must be -1 (disable), or at least 1, got {value}.") : Math.Max(0, value);

    private static int AtLeastOne(string key, int value) =>
        value < 1 ? throw new FormatException($"{key} must be at least 1, got {value}.") : value;
}
