using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.OpenAi;

// Request shapes: polymorphic fields (content, stop, prompt) stay JsonElement and are checked by OpenAiRequestMapper.

internal sealed class ChatCompletionRequest
{
    public string? Model { get; set; }
    public List<ChatMessage>? Messages { get; set; }
    public int? MaxTokens { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? TopK { get; set; }
    public int? N { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    public JsonElement? Stop { get; set; }
    public long? Seed { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public bool? Logprobs { get; set; }
    public int? TopLogprobs { get; set; }
    public JsonElement? LogitBias { get; set; }
    public JsonElement? Tools { get; set; }
    public JsonElement? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public JsonElement? Functions { get; set; }
    public JsonElement? FunctionCall { get; set; }
    public JsonElement? ResponseFormat { get; set; }
    public JsonElement? Audio { get; set; }
    public JsonElement? Modalities { get; set; }
    public JsonElement? Prediction { get; set; }
    public string? User { get; set; }
    public int? Priority { get; set; }
}

internal sealed class ChatMessage
{
    public string? Role { get; set; }
    public JsonElement? Content { get; set; }
    public string? Name { get; set; }
    public JsonElement? ToolCalls { get; set; }
    public JsonElement? ToolCallId { get; set; }
}

internal sealed class StreamOptions
{
    public bool? IncludeUsage { get; set; }
}

internal sealed class CompletionRequest
{
    public string? Model { get; set; }
    public JsonElement? Prompt { get; set; }
    public int? MaxTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? TopK { get; set; }
    public int? N { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    public JsonElement? Stop { get; set; }
    public long? Seed { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public int? Logprobs { get; set; }
    public bool? Echo { get; set; }
    public int? BestOf { get; set; }
    public string? Suffix { get; set; }
    public JsonElement? LogitBias { get; set; }
    public string? User { get; set; }
    public int? Priority { get; set; }
}

// Response shapes.

internal sealed class Usage
{
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
    public int TotalTokens { get; set; }
}

internal sealed class ChatCompletion
{
    public required string Id { get; set; }
    public string Object { get; set; } = "chat.completion";
    public long Created { get; set; }
    public required string Model { get; set; }
    public required List<ChatChoice> Choices { get; set; }
    public Usage? Usage { get; set; }
}

internal sealed class ChatChoice
{
    public int Index { get; set; }
    public required AssistantMessage Message { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Logprobs => null; // no log probabilities; not `object`, so the source generator writes a fast path
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; set; }
}

internal sealed class AssistantMessage
{
    public string Role { get; set; } = "assistant";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Content { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Refusal { get; set; }
    public List<ToolCallJson>? ToolCalls { get; set; }
}

internal sealed class ToolCallJson
{
    public required string Id { get; set; }
    public string Type { get; set; } = "function";
    public required FunctionCallJson Function { get; set; }
}

internal sealed class FunctionCallJson
{
    public required string Name { get; set; }
    public required string Arguments { get; set; }
}

/// <summary>A streamed tool-call piece: the first carries id, type and name; later ones only argument text.</summary>
internal sealed class ToolCallDeltaJson
{
    public int Index { get; set; }
    public string? Id { get; set; }
    public string? Type { get; set; }
    public required FunctionDeltaJson Function { get; set; }
}

internal sealed class FunctionDeltaJson
{
    public string? Name { get; set; }
    public string? Arguments { get; set; }
}

internal sealed class ChatCompletionChunk
{
    public required string Id { get; set; }
    public string Object { get; set; } = "chat.completion.chunk";
    public long Created { get; set; }
    public required string Model { get; set; }
    public required List<ChunkChoice> Choices { get; set; }
    public Usage? Usage { get; set; }
}

internal sealed class ChunkChoice
{
    public int Index { get; set; }
    public required ChunkDelta Delta { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Logprobs => null; // no log probabilities; not `object`, so the source generator writes a fast path
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; set; }
}

internal sealed class ChunkDelta
{
    public string? Role { get; set; }
    public string? Content { get; set; }
    public List<ToolCallDeltaJson>? ToolCalls { get; set; }
}

internal sealed class TextCompletion
{
    public required string Id { get; set; }
    public string Object { get; set; } = "text_completion";
    public long Created { get; set; }
    public required string Model { get; set; }
    public required List<TextChoice> Choices { get; set; }
    public Usage? Usage { get; set; }
}

internal sealed class TextChoice
{
    public int Index { get; set; }
    public required string Text { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Logprobs => null; // no log probabilities; not `object`, so the source generator writes a fast path
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; set; }
}

internal sealed class ModelCard
{
    public required string Id { get; set; }
    public string Object { get; set; } = "model";
    public long Created { get; set; }
    public required string OwnedBy { get; set; }
    /// <summary>Extension (like vLLM's max_model_len): the context window in tokens.</summary>
    public int ContextWindow { get; set; }
    /// <summary>Extension: the largest max_tokens a request may ask for.</summary>
    public int MaxOutputTokens { get; set; }
}

internal sealed class ModelList
{
    public string Object { get; set; } = "list";
    public required List<ModelCard> Data { get; set; }
}

internal sealed class ErrorResponse
{
    public required ErrorBody Error { get; set; }
}

internal sealed class ErrorBody
{
    public required string Message { get; set; }
    public required string Type { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Param { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Code { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowTrailingCommas = false,
    ReadCommentHandling = JsonCommentHandling.Disallow,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(TextCompletion))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ErrorResponse))]
internal sealed partial class OpenAiJsonContext : JsonSerializerContext;
