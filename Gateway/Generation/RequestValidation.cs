using Gateway.Errors;
using Gateway.Triton.Contracts;

namespace Gateway.Generation;

/// <summary>
/// The checks both faces make on what they map into a <see cref="GenerationRequest"/>: every
/// refusal is a 400 (<see cref="GatewayError.InvalidRequest"/> or <see cref="GatewayError.Unsupported"/>)
/// that names the parameter as the client spelled it.
/// </summary>
internal static class RequestValidation
{
    /// <summary>Sampling within OpenAI's ranges (temperature 0–2, top_p 0–1, penalties −2–2, top_k ≥ 0).</summary>
    public static SamplingParameters MapSampling(double? temperature, double? topP, int? topK, long? seed, double? presence, double? frequency)
    {
        CheckRange(temperature, "temperature", 0, 2);
        CheckRange(topP, "top_p", 0, 1);
        CheckRange(presence, "presence_penalty", -2, 2);
        CheckRange(frequency, "frequency_penalty", -2, 2);
        if (topK is < 0)
        {
            throw Invalid("top_k", $"Invalid 'top_k': {topK}. Expected a value >= 0 (0 = off).");
        }
        return new SamplingParameters
        {
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            Seed = seed,
            PresencePenalty = presence,
            FrequencyPenalty = frequency,
        };
    }

    public static void CheckRange(double? value, string param, double min, double max)
    {
        if (value is { } v && (double.IsNaN(v) || v < min || v > max))
        {
            throw Invalid(param, $"Invalid '{param}': {v}. Expected a value between {min} and {max}.");
        }
    }

    public static GatewayException Invalid(string param, string message, string code = "invalid_value") =>
        new(GatewayError.InvalidRequest, message, param, code);

    public static GatewayException Unsupported(string param, string message) =>
        new(GatewayError.Unsupported, message, param, "unsupported_parameter");
}
