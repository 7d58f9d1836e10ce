using Gateway.Generation;
using Triton.Inference;

namespace Gateway.Triton.Contracts;

/// <summary>
/// A backend tensor contract: how one generation becomes a <see cref="ModelInferRequest"/> and how
/// streamed responses become new token ids. Cumulative vs delta semantics live here only. One class
/// per contract (<c>fastertransformer</c>, <c>vllm</c>, <c>tensorrtllm</c>). A token contract's
/// decoder yields token ids that the gateway detokenizes; a text contract's decoder (vLLM, TensorRT-LLM's ensemble) also
/// implements <see cref="ITritonTextResponseDecoder"/> and yields text and exact token counts.
/// </summary>
public interface ITritonContract
{
    string Name { get; }

    ModelInferRequest CreateRequest(TritonGenerationInput input);

    ITritonResponseDecoder CreateDecoder(TritonGenerationInput input);

    /// <summary>Whether the backend can constrain its output to a JSON schema (guided / structured decoding).</summary>
    bool SupportsGuidedDecoding => true;
}

/// <summary>Everything a contract needs to build one request.</summary>
public sealed record TritonGenerationInput(
    string RequestId,
    string ModelName,
    string ModelVersion,
    IReadOnlyList<int> PromptIds,
    int MaxTokens,
    SamplingParameters Sampling,
    IReadOnlyList<IReadOnlyList<int>> StopWordIds,
    int EndId,
    int StartId,
    int Priority)
{
    /// <summary>The prompt as text (chat template applied), for text contracts.</summary>
    public string Prompt { get; init; } = "";

    /// <summary>The stop strings as text (client's plus the template's), for text contracts.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>The constraint on the output (structured outputs / a forced tool call); null = free text.</summary>
    public Structured.OutputGuide? Guide { get; init; }
}

/// <summary>Decodes the responses of one request, in order.</summary>
public interface ITritonResponseDecoder
{
    /// <summary>Appends the ids generated since the previous response to <paramref name="newTokens"/>.</summary>
    TritonStep Decode(ModelInferResponse response, List<int> newTokens);
}

/// <summary>
/// Decodes the responses of one request of a text contract (text in, text out), in order. The
/// gateway still applies its own stop-string matching to the text.
/// </summary>
public interface ITritonTextResponseDecoder
{
    /// <summary>Appends the text generated since the previous response to <paramref name="text"/>.</summary>
    TritonTextStep DecodeText(ModelInferResponse response, System.Text.StringBuilder text);
}

/// <param name="IsFinal">No more responses will come for this request.</param>
/// <param name="OutputTokens">Tokens the backend generated since the previous response (exact, from the backend).</param>
/// <param name="PromptTokens">The backend's exact prompt token count, when this response carries it.</param>
/// <param name="FinishReason">Why the backend ended the generation, when this response says so.</param>
public readonly record struct TritonTextStep(bool IsFinal, int OutputTokens, int? PromptTokens, FinishReason? FinishReason);

/// <param name="IsFinal">No more responses will come for this request.</param>
/// <param name="EndOfText">The model produced its end id (not passed on as a token).</param>
public readonly record struct TritonStep(bool IsFinal, bool EndOfText);

public static class TritonContracts
{
    public const string FasterTransformer = "fastertransformer";

    public const string Vllm = "vllm";

    public const string TensorRtLlm = "tensorrtllm";

    public static IReadOnlyList<string> Names { get; } = [FasterTransformer, Vllm, TensorRtLlm];

    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Request parameter asking Triton (≥ 23.06) for an empty final response.</summary>
    public const string EnableEmptyFinalResponse = "triton_enable_empty_final_response";

    /// <summary>Response parameter marking the last response of a request (Triton ≥ 23.06).</summary>
    public const string FinalResponse = "triton_final_response";

    /// <summary>
    /// A request for one generation on <c>ModelStreamInfer</c>, before its tensors: id, the empty final
    /// response asked for, and Triton's <c>priority</c> when the caller has one.
    /// </summary>
    public static ModelInferRequest NewStreamRequest(TritonGenerationInput input)
    {
        var request = new ModelInferRequest
        {
            ModelName = input.ModelName,
            ModelVersion = input.ModelVersion,
            Id = input.RequestId,
        };
        request.Parameters[EnableEmptyFinalResponse] = new InferParameter { BoolParam = true };
        if (input.Priority > 0)
        {
            request.Parameters["priority"] = new InferParameter { Int64Param = input.Priority };
        }
        return request;
    }

    /// <summary>The final flag when the server sends it; null on Triton &lt; 23.06.</summary>
    public static bool? ReadFinalFlag(ModelInferResponse response) =>
        response.Parameters.TryGetValue(FinalResponse, out var parameter)
        && parameter.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.BoolParam
            ? parameter.BoolParam
            : null;
}
