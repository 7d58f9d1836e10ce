using Gateway.Generation;
using Triton.Inference;

namespace Gateway.Triton.Contracts;

/// <summary>
/// A backend tensor contract: how one generation becomes a <see cref="ModelInferRequest"/> and how
/// streamed responses become new token ids. Cumulative vs delta semantics live here only. One class
/// per contract (<c>fastertransformer</c> now; <c>tensorrtllm</c> and <c>vllm</c> later).
/// </summary>
public interface ITritonContract
{
    string Name { get; }

    ModelInferRequest CreateRequest(TritonGenerationInput input);

    ITritonResponseDecoder CreateDecoder(TritonGenerationInput input);
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
    int Priority);

/// <summary>Decodes the responses of one request, in order.</summary>
public interface ITritonResponseDecoder
{
    /// <summary>Appends the ids generated since the previous response to <paramref name="newTokens"/>.</summary>
    TritonStep Decode(ModelInferResponse response, List<int> newTokens);
}

/// <param name="IsFinal">No more responses will come for this request.</param>
/// <param name="EndOfText">The model produced its end id (not passed on as a token).</param>
public readonly record struct TritonStep(bool IsFinal, bool EndOfText);

public static class TritonContracts
{
    public const string FasterTransformer = "fastertransformer";

    public static IReadOnlyList<string> Names { get; } = [FasterTransformer];

    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Request parameter asking Triton (≥ 23.06) for an empty final response.</summary>
    public const string EnableEmptyFinalResponse = "triton_enable_empty_final_response";

    /// <summary>Response parameter marking the last response of a request (Triton ≥ 23.06).</summary>
    public const string FinalResponse = "triton_final_response";

    /// <summary>The final flag when the server sends it; null on Triton &lt; 23.06.</summary>
    public static bool? ReadFinalFlag(ModelInferResponse response) =>
        response.Parameters.TryGetValue(FinalResponse, out var parameter)
        && parameter.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.BoolParam
            ? parameter.BoolParam
            : null;
}
