using Gateway.Triton.Wire;
using Triton.Inference;

namespace Gateway.Triton.Contracts;

/// <summary>
/// A backend tensor contract: how one generation becomes a <see cref="TritonRequest"/> (Triton's <c>ModelInferRequest</c>) and how
/// streamed responses become new token ids or text. Cumulative vs delta semantics live here only.
/// One class per contract (<c>fastertransformer</c>, <c>vllm</c>, <c>tensorrtllm</c>).
/// </summary>
public interface ITritonContract
{
    string Name { get; }

    TritonRequest CreateRequest(TritonGenerationInput input);

    ITritonResponseDecoder CreateDecoder(TritonGenerationInput input);

    /// <summary>Whether the backend can constrain its output to a JSON schema (guided / structured decoding).</summary>
    bool SupportsGuidedDecoding => true;

    /// <summary>Whether the backend takes a structural tag (free text, then a constrained tool call: strict tools under tool_choice auto).</summary>
    bool SupportsStructuralTags => false;
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

/// <summary>
/// Decodes the responses of one request, in order, straight from the wire
/// (<see cref="TritonResponse"/>). A token contract appends the ids generated since the previous
/// response to <see cref="TritonOutput.Tokens"/> and the gateway detokenizes them; a text contract
/// (<see cref="StreamsText"/>: vLLM, TensorRT-LLM's ensemble) appends the text generated since the
/// previous response to <see cref="TritonOutput.Text"/> and reports the backend's exact counts. The
/// gateway applies its own stop-string matching to the text either way.
/// </summary>
public interface ITritonResponseDecoder
{
    bool StreamsText { get; }

    TritonStep Decode(TritonResponse response, TritonOutput output);
}

/// <summary>Where a decoder puts one response's new tokens or text; reused for every response of a stream.</summary>
public sealed class TritonOutput
{
    public List<int> Tokens { get; } = new(8);

    public System.Text.StringBuilder Text { get; } = new();

    public void Clear()
    {
        Tokens.Clear();
        Text.Clear();
    }
}

/// <param name="IsFinal">No more responses will come for this request.</param>
/// <param name="EndOfText">The model produced its end id (token contracts; not passed on as a token).</param>
/// <param name="OutputTokens">Text contracts: tokens the backend generated since the previous response (exact, from the backend).</param>
/// <param name="PromptTokens">Text contracts: the backend's exact prompt token count, when this response carries it.</param>
/// <param name="FinishReason">Why the backend ended the generation, when this response says so.</param>
public readonly record struct TritonStep(bool IsFinal, bool EndOfText = false, int OutputTokens = 0, int? PromptTokens = null, FinishReason? FinishReason = null);

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
    public static TritonRequest NewStreamRequest(TritonGenerationInput input, int rawCapacity)
    {
        var request = new TritonRequest(input.ModelName, input.ModelVersion, input.RequestId, rawCapacity);
        request.AddParameter(EnableEmptyFinalResponse, true);
        if (input.Priority > 0)
        {
            request.AddParameter("priority", (long)input.Priority);
        }
        return request;
    }

}
