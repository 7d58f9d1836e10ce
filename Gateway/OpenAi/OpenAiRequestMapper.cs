using System.Text;
using System.Text.Json;
using Gateway.Generation;
using Gateway.Text;
using static Gateway.Generation.RequestValidation;

namespace Gateway.OpenAi;

/// <summary>
/// Checks an OpenAI request and turns it into a <see cref="GenerationRequest"/>. Every refusal is
/// a 400 that names the parameter; options the gateway cannot honour (n &gt; 1, tools, logprobs,
/// …) are refused with a message that says so instead of being silently ignored. The checks the
/// gRPC face makes too (sampling ranges, the errors' shape) are <see cref="RequestValidation"/>'s.
/// </summary>
internal static partial class OpenAiRequestMapper
{
    /// <summary>OpenAI's default <c>max_tokens</c> for the legacy completions endpoint.</summary>
    public const int DefaultCompletionMaxTokens = 16;

    public static GenerationRequest MapChat(ChatCompletionRequest request)
    {
        var model = RequireModel(request.Model);
        if (request.Messages is null)
        {
            throw Invalid("messages", "Missing required parameter: 'messages'.", "missing_required_parameter");
        }
        if (request.Messages.Count == 0)
        {
            throw Invalid("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
        }
        var turns = new List<ChatTurn>(request.Messages.Count);
        for (var i = 0; i < request.Messages.Count; i++)
        {
            var message = request.Messages[i];
            var param = $"messages[{i}]";
            if (message is null)
            {
                throw Invalid(param, $"Invalid '{param}': expected an object.");
            }
            switch (message.Role)
            {
                case null:
                    throw Invalid($"{param}.role", $"Missing required parameter: '{param}.role'.", "missing_required_parameter");
                case "system" or "developer" or "user" or "assistant" or "tool":
                    break;
                case "function":
                    throw Unsupported($"{param}.role", "Messages with role 'function' (deprecated function calling) are not supported: use tools and role 'tool'.");
                default:
                    throw Invalid($"{param}.role", $"Invalid value for '{param}.role': '{message.Role}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.");
            }
            turns.Add(MapTurn(message, param, turns));
        }
        if (request.N is { } n && n != 1)
        {
            throw n < 1
                ? Invalid("n", $"Invalid 'n': {n}. Expected a value >= 1.")
                : Unsupported("n", $"n > 1 is not supported by this gateway (got {n}); send separate requests instead.");
        }
        if (request.Logprobs == true)
        {
            throw Unsupported("logprobs", "logprobs is not supported by this gateway.");
        }
        if (request.TopLogprobs is not null)
        {
            throw Unsupported("top_logprobs", "top_logprobs is not supported by this gateway.");
        }
        RejectIfPresent(request.LogitBias, "logit_bias", "logit_bias is not supported by this gateway.");
        RejectIfPresent(request.Functions, "functions", "Function calling is not supported by this gateway.");
        RejectIfPresent(request.FunctionCall, "function_call", "Function calling is not supported by this gateway.");
        RejectIfPresent(request.Audio, "audio", "Audio output is not supported by this gateway.");
        RejectIfPresent(request.Prediction, "prediction", "Predicted outputs are not supported by this gateway.");
        var tools = MapTools(request.Tools, request.ToolChoice, request.ParallelToolCalls);
        var format = MapResponseFormat(request.ResponseFormat, turns);
        if (request.Modalities is { ValueKind: JsonValueKind.Array } modalities)
        {
            foreach (var modality in modalities.EnumerateArray())
            {
                if (modality.ValueKind != JsonValueKind.String || modality.GetString() != "text")
                {
                    throw Unsupported("modalities", "Only the 'text' modality is supported by this gateway.");
                }
            }
        }
        CheckStreamOptions(request.Stream, request.StreamOptions);

        int? maxTokens;
        string maxTokensParam;
        if (request.MaxCompletionTokens is not null)
        {
            (maxTokens, maxTokensParam) = (request.MaxCompletionTokens, "max_completion_tokens");
        }
        else
        {
            (maxTokens, maxTokensParam) = (request.MaxTokens, "max_tokens");
        }
        CheckMaxTokens(maxTokens, maxTokensParam);

        return new GenerationRequest
        {
            Model = model,
            Messages = turns,
            MaxTokens = maxTokens,
            MaxTokensParam = maxTokensParam,
            Sampling = MapSampling(request.Temperature, request.TopP, request.TopK, request.Seed, request.PresencePenalty, request.FrequencyPenalty),
            Stop = MapStop(request.Stop),
            Priority = MapPriority(request.Priority),
            Tools = tools,
            // A named or required tool choice constrains the answer to the call; else response_format does.
            Guide = ToolGuide(tools) ?? format,
            GuideParam = ToolGuide(tools) is not null ? "tool_choice" : format is not null ? "response_format" : null,
        };
    }

    public static GenerationRequest MapCompletion(CompletionRequest request)
    {
        var model = RequireModel(request.Model);
        var prompt = request.Prompt switch
        {
            null or { ValueKind: JsonValueKind.Null } => "",
            { ValueKind: JsonValueKind.String } s => s.GetString()!,
            { ValueKind: JsonValueKind.Array } array => SinglePrompt(array),
            _ => throw Invalid("prompt", "Invalid type for 'prompt': expected a string or an array of one string."),
        };
        if (request.N is { } n && n != 1)
        {
            throw n < 1
                ? Invalid("n", $"Invalid 'n': {n}. Expected a value >= 1.")
                : Unsupported("n", $"n > 1 is not supported by this gateway (got {n}); send separate requests instead.");
        }
        if (request.BestOf is { } bestOf && bestOf != 1)
        {
            throw Unsupported("best_of", "best_of > 1 is not supported by this gateway.");
        }
        if (request.Logprobs is not null)
        {
            throw Unsupported("logprobs", "logprobs is not supported by this gateway.");
        }
        if (request.Echo == true)
        {
            throw Unsupported("echo", "echo is not supported by this gateway.");
        }
        if (!string.IsNullOrEmpty(request.Suffix))
        {
            throw Unsupported("suffix", "suffix (insertion) is not supported by this gateway.");
        }
        RejectIfPresent(request.LogitBias, "logit_bias", "logit_bias is not supported by this gateway.");
        CheckStreamOptions(request.Stream, request.StreamOptions);
        var maxTokens = request.MaxTokens ?? DefaultCompletionMaxTokens;
        CheckMaxTokens(maxTokens, "max_tokens");
        return new GenerationRequest
        {
            Model = model,
            Prompt = prompt,
            MaxTokens = maxTokens,
            MaxTokensParam = "max_tokens",
            Sampling = MapSampling(request.Temperature, request.TopP, request.TopK, request.Seed, request.PresencePenalty, request.FrequencyPenalty),
            Stop = MapStop(request.Stop),
            Priority = MapPriority(request.Priority),
        };
    }

    /// <summary>The <c>stop</c> parameter: a string or 1–4 non-empty strings.</summary>
    public static IReadOnlyList<string> MapStop(JsonElement? stop)
    {
        switch (stop)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return [];
            case { ValueKind: JsonValueKind.String } single:
                var value = single.GetString()!;
                return value.Length == 0 ? throw Invalid("stop", "Invalid 'stop': stop strings must not be empty.") : [value];
            case { ValueKind: JsonValueKind.Array } array:
                var count = array.GetArrayLength();
                if (count is < 1 or > 4)
                {
                    throw Invalid("stop", $"Invalid 'stop': expected an array of 1 to 4 strings, got {count}.");
                }
                var stops = new List<string>(count);
                foreach (var item in array.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String || item.GetString() is not { Length: > 0 } text)
                    {
                        throw Invalid("stop", "Invalid 'stop': every stop sequence must be a non-empty string.");
                    }
                    stops.Add(text);
                }
                return stops;
            default:
                throw Invalid("stop", "Invalid type for 'stop': expected a string or an array of strings.");
        }
    }

    private static string FlattenContent(JsonElement? content, string role, string param)
    {
        switch (content)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return role == "assistant" ? "" : throw Invalid($"{param}.content", $"Missing required parameter: '{param}.content'.", "missing_required_parameter");
            case { ValueKind: JsonValueKind.String } text:
                return text.GetString()!;
            case { ValueKind: JsonValueKind.Array } parts:
                var builder = new StringBuilder();
                var index = 0;
                foreach (var part in parts.EnumerateArray())
                {
                    var partParam = $"{param}.content[{index++}]";
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                    {
                        throw Invalid($"{partParam}.type", $"Missing required parameter: '{partParam}.type'.", "missing_required_parameter");
                    }
                    if (type.GetString() != "text")
                    {
                        throw Unsupported($"{partParam}.type", $"Content parts of type '{type.GetString()}' are not supported: this gateway serves text-only models.");
                    }
                    if (!part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                    {
                        throw Invalid($"{partParam}.text", $"Missing required parameter: '{partParam}.text'.", "missing_required_parameter");
                    }
                    builder.Append(partText.GetString());
                }
                return builder.ToString();
            default:
                throw Invalid($"{param}.content", $"Invalid type for '{param}.content': expected a string or an array of content parts.");
        }
    }

    private static string SinglePrompt(JsonElement array)
    {
        var count = array.GetArrayLength();
        if (count == 0)
        {
            throw Invalid("prompt", "Invalid 'prompt': empty array.");
        }
        var first = array[0];
        if (first.ValueKind is JsonValueKind.Number or JsonValueKind.Array)
        {
            throw Unsupported("prompt", "Token-id prompts are not supported by this gateway; send text.");
        }
        if (count > 1)
        {
            throw Unsupported("prompt", $"Batched prompts are not supported by this gateway (got {count}); send one prompt per request.");
        }
        return first.ValueKind == JsonValueKind.String ? first.GetString()! : throw Invalid("prompt", "Invalid type for 'prompt[0]': expected a string.");
    }

    private static string RequireModel(string? model) =>
        string.IsNullOrWhiteSpace(model) ? throw Invalid("model", "Missing required parameter: 'model'.", "missing_required_parameter") : model;

    private static void CheckMaxTokens(int? maxTokens, string param)
    {
        if (maxTokens is < 1)
        {
            throw Invalid(param, $"Invalid '{param}': {maxTokens}. Expected a value >= 1.");
        }
    }

    private static int MapPriority(int? priority) =>
        priority is < 0 ? throw Invalid("priority", $"Invalid 'priority': {priority}. Expected 0 (default) or a level >= 1 (1 = highest).") : priority ?? 0;

    private static void CheckStreamOptions(bool? stream, StreamOptions? options)
    {
        if (options is not null && stream != true)
        {
            throw Invalid("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
        }
    }

    private static void RejectIfPresent(JsonElement? value, string param, string message)
    {
        if (value is { } element && element.ValueKind switch
        {
            JsonValueKind.Null => false,
            JsonValueKind.Array => element.GetArrayLength() > 0,
            JsonValueKind.Object => element.EnumerateObject().Any(),
            _ => true,
        })
        {
            throw Unsupported(param, message);
        }
    }
}
