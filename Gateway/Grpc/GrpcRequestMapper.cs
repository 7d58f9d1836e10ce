using Gateway.Generation;
using Gateway.Text;
using Llm.Gateway.V1;
using static Gateway.Generation.RequestValidation;

namespace Gateway.Grpc;

/// <summary>
/// Checks a <c>llm.gateway.v1</c> request and turns it into a <see cref="GenerationRequest"/>, the
/// same record the REST face builds; the checks both faces make are <see cref="RequestValidation"/>'s.
/// Every refusal is INVALID_ARGUMENT naming the field.
/// </summary>
internal static class GrpcRequestMapper
{
    public static GenerationRequest MapChat(ChatRequest request)
    {
        if (request.Messages.Count == 0)
        {
            throw Invalid("messages", "messages must contain at least one message.");
        }
        var turns = new List<ChatTurn>(request.Messages.Count);
        for (var i = 0; i < request.Messages.Count; i++)
        {
            var message = request.Messages[i];
            if (message.Role is not ("system" or "developer" or "user" or "assistant"))
            {
                throw Invalid($"messages[{i}].role", $"messages[{i}].role '{message.Role}' is not one of system, developer, user, assistant.");
            }
            turns.Add(new ChatTurn(message.Role, message.Content));
        }
        return Map(request.Model, request.Sampling, request.Priority) with { Messages = turns };
    }

    public static GenerationRequest MapCompletion(CompletionRequest request) =>
        Map(request.Model, request.Sampling, request.Priority) with { Prompt = request.Prompt };

    private static GenerationRequest Map(string model, SamplingOptions? sampling, uint priority)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            throw Invalid("model", "model is required.");
        }
        sampling ??= new SamplingOptions();
        if (sampling.Stop.Count > 4 || sampling.Stop.Any(s => s.Length == 0))
        {
            throw Invalid("sampling.stop", "sampling.stop takes up to 4 non-empty strings.");
        }
        if (sampling.HasMaxTokens && sampling.MaxTokens > int.MaxValue)
        {
            throw Invalid("sampling.max_tokens", "sampling.max_tokens is too large.");
        }
        var mapped = MapSampling(
            sampling.HasTemperature ? sampling.Temperature : null,
            sampling.HasTopP ? sampling.TopP : null,
            sampling.HasTopK ? (int)Math.Min(sampling.TopK, int.MaxValue) : null,
            sampling.HasSeed ? unchecked((long)sampling.Seed) : null,
            sampling.HasPresencePenalty ? sampling.PresencePenalty : null,
            sampling.HasFrequencyPenalty ? sampling.FrequencyPenalty : null);
        return new GenerationRequest
        {
            Model = model,
            MaxTokens = sampling.HasMaxTokens && sampling.MaxTokens > 0 ? (int)sampling.MaxTokens : null,
            MaxTokensParam = "sampling.max_tokens",
            Sampling = mapped,
            Stop = [.. sampling.Stop],
            Priority = (int)Math.Min(priority, int.MaxValue),
        };
    }
}
